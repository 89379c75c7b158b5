# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What gpubox's EC2 modules know about EC2's refusals, written once: which error codes mean capacity, a quota,
throttling or something else, which quota an instance type counts against and where to raise it, repeating a
throttled call, waiting for an instance to run, the table of attempts a failure shows, and the one RunInstances
request a box is launched with. Used by ec2_box_launch (RunInstances), ec2_box_start (StartInstances, and
RunInstances when it moves a box) and ec2_box_update, whose refusals are the same.
(https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)"""

from __future__ import annotations

import contextlib
import random
import time

from ansible_collections.gpubox.gpubox.plugins.module_utils.table import aligned
from ansible_collections.gpubox.gpubox.plugins.module_utils.tags import tag_dict, tag_list

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore.config
    import botocore.exceptions

GONE_STATES = ["shutting-down", "terminated"]
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
POLL_SECONDS = 5
# The longest pause between two repeats of a throttled request.
MAX_THROTTLE_PAUSE = 20.0

# Capacity: this type (or spot price) in this zone, right now. Another candidate may have it.
CAPACITY = {
    "InsufficientInstanceCapacity",  # on-demand; for spot: "There is no Spot capacity available ..."
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacityOnHost",
    "InsufficientCapacity",
    "UnfulfillableCapacity",
    "Unsupported",  # the type (or an option of the request) is not offered in this zone
    "SpotMaxPriceTooLow",  # spot costs more than the on-demand price (gpubox's maximum) in this zone
    "InsufficientFreeAddressesInSubnet",  # this zone's subnet is full
}
# Quotas: per account and region. Another zone cannot help; another market or quota class may.
QUOTA = {
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "InstanceLimitExceeded",
    "VolumeLimitExceeded",
    "MaxIOPSLimitExceeded",
}
# Not now: the same request again after a pause (botocore would have retried these itself).
THROTTLING = {
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "EC2ThrottledException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
}

# (market, quota class) -> (Service Quotas code, name), as Service Quotas shows them.
QUOTAS = {
    ("on-demand", "G"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("on-demand", "P"): ("L-417A185B", "Running On-Demand P instances"),
    ("on-demand", "Standard"): ("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"),
    ("spot", "G"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("spot", "P"): ("L-7212CCBC", "All P Spot Instance Requests"),
    ("spot", "Standard"): ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"),
}


class Ec2BoxError(Exception):
    """A box operation that cannot go on; the message says why."""


def classify(code: str) -> str:
    """capacity, quota, throttled or error."""
    if code in CAPACITY:
        return "capacity"
    if code in QUOTA:
        return "quota"
    if code in THROTTLING:
        return "throttled"
    return "error"


def quota_class(instance_type: str) -> str | None:
    """The vCPU quota an instance type counts against: G (G and VT), P, Standard, or None (F, X, Inf, DL, Trn...)."""
    family = instance_type.split(".", 1)[0].lower()
    if family.startswith(("g", "vt")):
        return "G"
    if family.startswith("p"):
        return "P"
    if family[:1] in set("acdhimrtz"):
        return "Standard"
    return None


def quotas_url(region: str, code: str = "", service: str = "ec2") -> str:
    page = f"https://{region}.console.aws.amazon.com/servicequotas/home/services/{service}/quotas"
    return f"{page}/{code}" if code else page


def quota_scope(code: str, candidate: dict) -> tuple[str, str]:
    """(market, quota class) a quota refusal closes; '*' for all. A vCPU quota is per market and class, the spot
    instance count per market, the EBS quotas for every launch."""
    if code in ("VolumeLimitExceeded", "MaxIOPSLimitExceeded"):
        return ("*", "*")
    if code == "VcpuLimitExceeded":
        return (candidate["market"], quota_class(candidate["instance_type"]) or candidate["instance_type"])
    return (candidate["market"], "*")


def in_scope(scope: tuple[str, str], candidate: dict) -> bool:
    market, cls = scope
    own = quota_class(candidate["instance_type"]) or candidate["instance_type"]
    return market in ("*", candidate["market"]) and cls in ("*", own)


def quota_text(region: str, code: str, candidate: dict) -> str:
    """Which quota refused the candidate, and where to raise it."""
    market, itype = candidate["market"], candidate["instance_type"]
    if code in ("VolumeLimitExceeded", "MaxIOPSLimitExceeded"):
        what = "EBS storage" if code == "VolumeLimitExceeded" else "EBS IOPS"
        return (
            f"the account's {what} quota in {region} is used up (every launch needs a volume): raise it at "
            f"{quotas_url(region, service='ebs')} or delete volumes you no longer need"
        )
    known = QUOTAS.get((market, quota_class(itype) or ""))
    if code in ("VcpuLimitExceeded", "MaxSpotInstanceCountExceeded") and known:
        quota = f"the {market} vCPU quota {known[0]} ({known[1]}) in {region}"
        url = quotas_url(region, known[0])
    elif code == "InstanceLimitExceeded":
        quota = f"the account's {market} instance limit for {itype} in {region}"
        url = quotas_url(region)
    else:
        quota = f"the account's {market} quota for {itype} in {region}"
        url = quotas_url(region)
    return (
        f"{quota} is used up; quotas are per region, so no other zone is tried for it. Raise it at {url} "
        f"(Service Quotas, region {region}), stop other instances, or declare another market or instance type family"
    )


def error_of(exc: Exception) -> tuple[str, str]:
    """(code, message) of a botocore error; a connection problem has the code ''. The one reading of AWS's errors:
    error_text and error_brief format it."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Code", "")), str(err.get("Message", exc))
    return "", str(exc)


def error_text(exc: Exception) -> str:
    """`Code: message` for a message to the user (the message alone when there is no code)."""
    code, message = error_of(exc)
    return f"{code}: {message}" if code else message


def error_brief(exc: Exception) -> dict[str, str]:
    """{code, message} for a report row: a code always (the exception's class without one), the message's first
    line without XML, at most 200 characters."""
    code, message = error_of(exc)
    first = (message.split("<", 1)[0].strip().splitlines() or [""])[0]
    return {"code": (code or type(exc).__name__)[:64], "message": first[:200]}


def connection_errors() -> tuple[type[Exception], ...]:
    """A request that may or may not have reached EC2 (repeating it is safe where it is idempotent)."""
    exc = botocore.exceptions
    return (exc.EndpointConnectionError, exc.ConnectionClosedError, exc.ReadTimeoutError, exc.ConnectTimeoutError)


def repeating(call, note, retries: int, delay: float, sleep=time.sleep):
    """`call` that repeats a throttled request (or one that met a transient error or lost its connection) up to
    `retries` times, pausing delay, 2*delay, 4*delay... (each with jitter, at most MAX_THROTTLE_PAUSE);
    note(code, message, pause) is told of every request that is repeated. The last error passes through."""

    def run(**params):
        for attempt in range(retries + 1):
            try:
                return call(**params)
            except botocore.exceptions.ClientError as e:
                code, message = error_of(e)
                if classify(code) != "throttled" or attempt == retries:
                    raise
            except connection_errors() as e:
                code, message = error_of(e)
                if attempt == retries:
                    raise
            pause = min(delay * 2**attempt, MAX_THROTTLE_PAUSE) * random.uniform(0.5, 1.0)  # jitter
            note(code or "connection", message, pause)
            if pause > 0:
                sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    return run


def attempt_row(candidate: dict, outcome: str, code: str = "", message: str = "", advice: str = "") -> dict:
    """One row of an attempt log: the candidate (type, zone, market) and what EC2 said."""
    return {
        "instance_type": candidate["instance_type"],
        "zone": candidate.get("zone") or "",
        "market": candidate["market"],
        "outcome": outcome,
        "code": code,
        "message": message,
        "advice": advice,
    }


def closed_by(closed: list[tuple[tuple[str, str], int]], candidate: dict) -> int | None:
    """The row of the attempt whose quota refusal covers this candidate (`closed`: each refused quota's scope and
    row), or None."""
    return next((row for scope, row in closed if in_scope(scope, candidate)), None)


def skipped(attempts: list[dict], closed: list, candidate: dict, unusable: str = "") -> bool:
    """Whether the candidate is not to be asked for: it cannot be used (`unusable` says why) or a quota that refused
    an earlier one covers it. Either way its row is added to the attempts."""
    if unusable:
        attempts.append(attempt_row(candidate, "skipped", "", unusable))
        return True
    refused_by = closed_by(closed, candidate)
    if refused_by is None:
        return False
    why = f"the quota that refused #{refused_by + 1} covers it"
    attempts.append(attempt_row(candidate, "skipped", attempts[refused_by]["code"], why))
    return True


def throttle_note(attempts: list[dict], candidate: dict):
    """The `note` that `repeating` calls for each throttled try of `candidate`: a row of the attempts table."""

    def note(code: str, message: str, pause: float) -> None:
        attempts.append(attempt_row(candidate, "throttled", code, f"{message} (repeated after {pause:.1f} s)"))

    return note


def note_refusal(exc: Exception, candidate: dict, region: str, attempts: list[dict], closed: list) -> tuple[str, str]:
    """A refused request, in the attempts: capacity and quota get their row (a quota also closes its scope, for
    closed_by); (kind, 'CODE: message') for the caller, who moves on after capacity or a quota and stops after
    anything else (kind throttled: still refused after its repeats; error)."""
    code, message = error_of(exc)
    kind = classify(code) if code else "throttled"
    if kind == "capacity":
        attempts.append(attempt_row(candidate, "capacity", code, message))
    elif kind == "quota":
        attempts.append(attempt_row(candidate, "quota", code, message, quota_text(region, code, candidate)))
        closed.append((quota_scope(code, candidate), len(attempts) - 1))
    return kind, f"{code or 'connection error'}: {message}"


def attempt_table(attempts: list[dict]) -> list[str]:
    """The attempts as aligned lines: #, type, zone, market, outcome (with EC2's code)."""
    rows = [("#", "type", "zone", "market", "outcome")]
    for n, a in enumerate(attempts, 1):
        outcome = a["outcome"] + (f": {a['code']}" if a["code"] else "")
        if a["outcome"] == "skipped":
            outcome = f"not tried: {a['message']}"
        rows.append((str(n), a["instance_type"], a["zone"], a["market"], outcome))
    return aligned(rows)


def wait_running(ec2, instance_id: str, timeout: int, sleep=time.sleep, clock=time.monotonic) -> dict:
    """Describe the instance until it runs; fail when it ends or the time is up."""
    deadline = clock() + timeout
    while True:
        try:
            found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except botocore.exceptions.ClientError as e:
            # Right after RunInstances the instance may not be visible yet (eventual consistency).
            if e.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                raise
            found = []
        instance = found[0]["Instances"][0] if found and found[0].get("Instances") else None
        if instance is not None:
            state = instance["State"]["Name"]
            if state == "running":
                return instance
            if state in GONE_STATES:
                reason = instance.get("StateReason", {}).get("Message", "no reason given")
                raise Ec2BoxError(f"Instance {instance_id} is {state} instead of running: {reason}")
        if clock() >= deadline:
            now = instance["State"]["Name"] if instance else "not visible yet"
            raise Ec2BoxError(f"Instance {instance_id} is not running after {timeout} s (it is {now}).")
        sleep(min(POLL_SECONDS, max(deadline - clock(), 0)))


def describe(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def poll(read, done, timeout: float, failure, broken=None, sleep=time.sleep, clock=time.monotonic, pause=POLL_SECONDS):
    """What read() answers once done(answer) holds, asked again every `pause` seconds; Ec2BoxError(failure(answer))
    once `timeout` seconds have passed, or at once when broken(answer) (a state it never leaves)."""
    deadline = clock() + timeout
    while not done(answer := read()):
        if (broken is not None and broken(answer)) or clock() >= deadline:
            raise Ec2BoxError(failure(answer))
        sleep(pause)
    return answer


def wait_instance(ec2, instance_id: str, done, timeout: int, sleep=time.sleep, clock=time.monotonic) -> dict:
    """The instance once done(its state) holds (a stopping box once it is stopped, a stopped one once it runs)."""
    return poll(
        lambda: describe(ec2, instance_id),
        lambda instance: done(instance["State"]["Name"]),
        timeout,
        lambda instance: f"Instance {instance_id} is still {instance['State']['Name']} after {timeout} s.",
        sleep=sleep,
        clock=clock,
    )


# A client whose requests are made exactly once: a refusal for capacity (HTTP 500) or throttling (503) comes back at
# once instead of after botocore's retries, so it costs one request and is one row of the attempt table (repeating()
# repeats what throttling refused, as many times as the module's throttle_retries say).
def single_attempt_client(module):
    return module.client("ec2", config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}))


# The options of every module that repeats a throttled request and waits for an instance (each documents them).
THROTTLE_OPTIONS = {
    "throttle_retries": {"type": "int", "default": 4},
    "throttle_delay": {"type": "float", "default": 1.0},
}


def usable_types(ec2, instance: dict, wanted: list[str], zone: str = "") -> dict[str, str]:
    """Why each of the types a stopped box might take cannot be tried ('' when it can): offered in its zone (or in
    `zone`, where it would move to; its own type is checked there too), of its architecture, with a GPU when its
    type has one."""
    moving = bool(zone) and zone != instance["Placement"]["AvailabilityZone"]
    zone = zone or instance["Placement"]["AvailabilityZone"]
    current = instance["InstanceType"]
    names = list(dict.fromkeys([current, *wanted]))
    offered = {
        o["InstanceType"]
        for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone",
            Filters=[{"Name": "location", "Values": [zone]}, {"Name": "instance-type", "Values": names}],
        )
        for o in page["InstanceTypeOfferings"]
    }
    info = {}
    with contextlib.suppress(botocore.exceptions.ClientError):  # an unknown name is reported as not offered
        for page in ec2.get_paginator("describe_instance_types").paginate(
            InstanceTypes=[n for n in names if n in offered]
        ):
            info.update({t["InstanceType"]: t for t in page["InstanceTypes"]})
    arch = instance.get("Architecture") or "x86_64"
    has_gpu = bool(info.get(current, {}).get("GpuInfo", {}).get("Gpus"))
    why = {}
    for name in wanted:
        if name == current and not moving:
            why[name] = ""
        elif name not in offered or name not in info:
            why[name] = f"not offered in {zone}"
        elif arch not in info[name].get("ProcessorInfo", {}).get("SupportedArchitectures", []):
            why[name] = f"not {arch}, the architecture of the box's image"
        elif has_gpu and not info[name].get("GpuInfo", {}).get("Gpus"):
            why[name] = "no GPU"
        else:
            why[name] = ""
    return why


def start_as(ec2, starter, instance: dict, order: list[str], region: str, params: dict, sleep=time.sleep):
    """Start a stopped instance as the first type of `order` that EC2 starts, in its zone: (the type it started as
    or None, the attempts, an error message when a refusal that is neither capacity nor quota stopped it).

    A type other than the instance's is checked first (usable_types: a row `skipped` with the reason otherwise) and
    set while the instance is stopped; a spot instance keeps its type. Capacity moves on to the next type, a quota
    skips the later types it covers, throttling is repeated (params: throttle_retries, throttle_delay). When nothing
    started, the instance gets its own type back. Once started, its InstanceType tag follows the type and it is
    waited for (params: wait_timeout). `starter` is a client whose StartInstances botocore does not retry."""
    instance_id, original = instance["InstanceId"], instance["InstanceType"]
    zone = instance["Placement"]["AvailabilityZone"]
    market = "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"
    attempts: list[dict] = []
    why_not: dict[str, str] | None = None
    closed: list[tuple[tuple[str, str], int]] = []
    current, started, error = original, None, ""
    for itype in order:
        candidate = {"instance_type": itype, "zone": zone, "market": market}
        if itype != original and market == "spot":
            attempts.append(attempt_row(candidate, "skipped", "", "a spot box's type cannot change"))
            continue
        if itype != original and why_not is None:
            why_not = usable_types(ec2, instance, order)
        if skipped(attempts, closed, candidate, (why_not or {}).get(itype, "")):
            continue
        if itype != current:
            ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": itype})
            current = itype

        note = throttle_note(attempts, candidate)
        try:
            repeating(starter.start_instances, note, params["throttle_retries"], params["throttle_delay"], sleep)(
                InstanceIds=[instance_id]
            )
        except (botocore.exceptions.ClientError, *connection_errors()) as e:
            kind, said = note_refusal(e, candidate, region, attempts, closed)
            if kind in ("capacity", "quota"):
                continue
            code, message = error_of(e)
            attempts.append(attempt_row(candidate, "error", code, message))
            error = said
            break
        attempts.append(attempt_row(candidate, "started"))
        started = itype
        break
    if started is None:
        if current != original:  # nothing started: the instance keeps its type
            ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": original})
        return None, attempts, error
    wait_running(ec2, instance_id, params["wait_timeout"], sleep)
    if started != original:
        ec2.create_tags(Resources=[instance_id], Tags=tag_list({"InstanceType": started}))
    return started, attempts, ""


def launch_request(box: dict, subnet_maps_public_ip: bool) -> dict:
    """RunInstances parameters (all but ClientToken) for the box.

    A subnet that gives instances a public IP (a default subnet does) gets SubnetId + SecurityGroupIds: EC2
    creates the primary network interface with these groups, and every EC2 API reads them back as the
    instance's groups. A subnet that does not needs an explicit interface specification, the only place
    where AssociatePublicIpAddress can be asked for; the groups then belong there too (EC2 refuses
    SecurityGroupIds next to NetworkInterfaces).

    The instance's tag specification adds box["instance_tags"] (if any) to the tags every resource gets.
    """
    tags = tag_list(box["tags"])
    resource_types = ["instance", "volume", "network-interface"]
    request = {
        "ImageId": box["image_id"],
        "InstanceType": box["instance_type"],
        "KeyName": box["key_name"],
        "MinCount": 1,
        "MaxCount": 1,
        "BlockDeviceMappings": [
            {
                "DeviceName": box["root_device_name"],
                "Ebs": {
                    "VolumeSize": box["volume_size"],
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        # IMDSv2 only; hop limit 2 so containers on the box reach the metadata service too.
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
        # `sudo poweroff` (or an idle-stop timer) on the box stops it instead of destroying its disk. For a spot
        # box this is allowed because its request is persistent (a one-time request could only terminate).
        "InstanceInitiatedShutdownBehavior": "stop",
    }
    if subnet_maps_public_ip:
        request["SubnetId"] = box["subnet_id"]
        request["SecurityGroupIds"] = list(box["security_group_ids"])
    else:
        request["NetworkInterfaces"] = [
            {
                "DeviceIndex": 0,
                "SubnetId": box["subnet_id"],
                "Groups": list(box["security_group_ids"]),
                "AssociatePublicIpAddress": True,
                "DeleteOnTermination": True,
            }
        ]
    if box["market"] == "spot":
        # Persistent with stop: an interruption stops the box (its disk stays) and EC2 starts the same
        # instance again when capacity returns. No ValidUntil: the request lasts until it is cancelled.
        request["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"},
        }
        resource_types.append("spot-instances-request")
    own = box.get("instance_tags") or {}
    request["TagSpecifications"] = [
        {"ResourceType": t, "Tags": tag_list({**box["tags"], **own}) if t == "instance" and own else tags}
        for t in resource_types
    ]
    return request


def _describe_instances(ec2, filters: list[dict]) -> list[dict]:
    pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
    return [i for page in pages for r in page.get("Reservations", []) for i in r.get("Instances", [])]


def find_box(ec2, name: str, owner: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """The instances of box `name` (tags Name and Project): (its live instances, its terminated ones EC2 still
    lists, lookalikes without all the owner tags). Used by the launch and by ec2_data."""
    project = owner["Project"]
    found = _describe_instances(
        ec2,
        [
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "tag:Project", "Values": [project]},
            {"Name": "instance-state-name", "Values": LIVE_STATES + GONE_STATES},
        ],
    )
    live, gone, foreign = [], [], []
    for inst in found:
        tags = tag_dict(inst.get("Tags"))
        if tags.get("Name") != name or tags.get("Project") != project:
            continue
        state = inst["State"]["Name"]
        if any(tags.get(k) != str(v) for k, v in owner.items()):
            if state in LIVE_STATES:
                foreign.append(inst)
        elif state in LIVE_STATES:
            live.append(inst)
        else:
            gone.append(inst)
    return live, gone, foreign
