#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Launch one gpubox box, on-demand or spot, with one RunInstances call that carries all of its settings, trying
its candidates (instance type, zone, market) in order until one has capacity."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_box_launch
short_description: Launch one gpubox box (on-demand or spot) complete from its first second, where capacity is
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Looks for the box first, an instance tagged C(Name=name) and every tag of I(owner_tags) (gpubox's
    C(ManagedBy) and C(Project)) in state pending, running, stopping or stopped. When there is one, nothing is
    launched (a pending one is waited for), whatever type, zone or market it runs on.
  - An instance with the box's Name and Project tags but not all of I(owner_tags) is not the box; it is never
    adopted, changed or counted, and a warning names it.
  - Otherwise launches the box with a single RunInstances call that carries everything it needs, so there is no
    window in which it runs without them and nothing is changed after the launch
    (no CreateTags, ModifyInstanceMetadataOptions or ModifyInstanceAttribute).
    The settings are IMDSv2 required (hop limit 2), the security group,
    a public IP, an encrypted gp3 root volume deleted with the instance, instance-initiated shutdown
    C(stop), and tags on the instance, its volumes, its network interface and (spot) its spot request.
    The instance also gets I(instance_tags) and the tags C(InstanceType), C(Zone) and C(Market) of the
    candidate it was launched as.
  - A spot box is a persistent spot request made by RunInstances itself (C(InstanceMarketOptions)), with
    interruption behaviour C(stop). When the request restarts the box after an interruption it is the same
    instance, with the same settings, tags, volumes and security group.
  - "I(candidates) are tried in order, one RunInstances call each, until one launches. By the EC2 error code of a
    refusal: capacity (C(InsufficientInstanceCapacity), C(InsufficientHostCapacity),
    C(InsufficientReservedInstanceCapacity), C(InsufficientCapacityOnHost), C(InsufficientCapacity),
    C(UnfulfillableCapacity), C(Unsupported), C(SpotMaxPriceTooLow), C(InsufficientFreeAddressesInSubnet)) moves on
    to the next candidate; a quota (C(VcpuLimitExceeded), C(MaxSpotInstanceCountExceeded), C(InstanceLimitExceeded),
    C(VolumeLimitExceeded), C(MaxIOPSLimitExceeded)) skips every later candidate the same quota covers (never another
    zone for it) and names the quota and its Service Quotas page; throttling and transient server errors
    (C(RequestLimitExceeded), C(Throttling), C(InternalError), C(Unavailable), a dropped connection) are retried on
    the same candidate with the same ClientToken, at most I(throttle_retries) times with exponential backoff from
    I(throttle_delay) seconds; any other error fails at once with AWS's message."
  - botocore's own retries are off for RunInstances (one attempt per call), so a capacity refusal costs one
    request and every request is one row of the attempt table; the other calls keep botocore's retries.
  - When no candidate launches, fails with a table of every attempt (type, zone, market, outcome) and what to try
    next. A refused RunInstances creates nothing (no instance, volume or spot request).
  - The call carries a ClientToken derived from the box, the candidate's request and its launch generation, so
    repeating it after a timeout returns the instance already launched instead of launching a second one (see
    I(notes)).
  - Waits until the instance runs, at most I(wait_timeout) seconds.
notes:
  - "ClientToken: C(gpubox-) and a hash of region, project, box name, the launch request and a generation
    number. EC2 keeps a token for at least 24 hours after the instance it launched was terminated, and repeating
    a token returns that (terminated) instance. The module therefore skips the tokens of the box's terminated
    instances that EC2 still lists, and when RunInstances answers with a terminated instance, it moves on to the
    next generation. A retried run walks the same generations and ends at the same instance."
options:
  name:
    description: The box's name (tag C(Name)).
    type: str
    required: true
  owner_tags:
    description:
      - The tags that make an instance the project's (gpubox_tags); must include C(Project). With C(Name) they
        identify the box.
    type: dict
    required: true
  candidates:
    description:
      - Where to launch the box, in order of preference. Each is a dict with C(instance_type), C(subnet_id) and
        C(market) (C(on-demand) or C(spot)); C(zone), the subnet's availability zone, is looked up when left out.
      - Left out, the box has one candidate, made of I(instance_type), I(subnet_id) and I(market).
    type: list
    elements: dict
  instance_type:
    description: EC2 instance type (the one candidate when I(candidates) is left out).
    type: str
  image_id:
    description: AMI id.
    type: str
    required: true
  key_name:
    description: EC2 key pair name.
    type: str
    required: true
  subnet_id:
    description: Subnet to launch into (the one candidate when I(candidates) is left out).
    type: str
  security_group_ids:
    description: Security groups of the box's network interface.
    type: list
    elements: str
    required: true
  root_device_name:
    description: The image's root device name.
    type: str
    default: /dev/sda1
  volume_size:
    description: Root volume size in GiB (gp3, encrypted, deleted on termination).
    type: int
    required: true
  market:
    description:
      - C(on-demand), or C(spot) for a persistent spot request whose interruption stops the box (the one candidate
        when I(candidates) is left out).
    type: str
    choices: [on-demand, spot]
    default: on-demand
  tags:
    description:
      - Tags of the instance, its volumes, its network interface and its spot request. I(owner_tags) and
        C(Name=name) are always added; other values for these keys are refused.
    type: dict
    default: {}
  instance_tags:
    description:
      - Tags of the instance only (gpubox's C(Autostop), C(MaxHours) and C(Image)), besides I(tags). They may not
        set the keys of I(tags), I(owner_tags), C(Name), or C(InstanceType), C(Zone) and C(Market), which the module
        sets to the launched candidate.
    type: dict
    default: {}
  throttle_retries:
    description: How many times one candidate's RunInstances is repeated after throttling or a transient error.
    type: int
    default: 4
  throttle_delay:
    description: Seconds before the first repeat; each next one waits twice as long (with jitter, at most 20 s).
    type: float
    default: 1.0
  retry_until:
    description:
      - Unix time until which the caller keeps trying again (gpubox_launch_retry_minutes). When every candidate
        was refused for capacity (or a quota, as long as one was refused for capacity) and this time is not
        reached, the failed result says I(retry=true). 0 never.
    type: float
    default: 0
  wait:
    description: Wait until the instance runs.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the instance to run.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Launch a box on spot g6.xlarge or g5.xlarge, on-demand when spot has no capacity
  ec2_box_launch:
    region: us-west-2
    name: d2l
    owner_tags: {ManagedBy: gpubox, Project: d2l-course}
    candidates:
      - {instance_type: g6.xlarge, subnet_id: subnet-0123456789abcdef0, market: spot}
      - {instance_type: g6.xlarge, subnet_id: subnet-0fedcba9876543210, market: spot}
      - {instance_type: g5.xlarge, subnet_id: subnet-0123456789abcdef0, market: on-demand}
    image_id: ami-0123456789abcdef0
    key_name: gpubox
    security_group_ids: [sg-0123456789abcdef0]
    volume_size: 80
    tags: {SshUser: ubuntu}
    instance_tags: {Autostop: "60", MaxHours: "0"}
"""

RETURN = r"""
instance:
  description: The box's instance (absent in check mode when it would be launched).
  returned: when the box exists or was launched
  type: dict
  sample:
    instance_id: i-0123456789abcdef0
    state: running
    lifecycle: spot
    instance_type: g5.xlarge
    availability_zone: us-west-2a
    public_ip_address: 203.0.113.10
    public_dns_name: ec2-203-0-113-10.us-west-2.compute.amazonaws.com
    private_ip_address: 172.31.0.10
    client_token: gpubox-3f0c...
launched:
  description: Whether this run launched the instance.
  returned: always
  type: bool
client_token:
  description: The ClientToken of the launch (only when the module launched or would launch).
  returned: when a launch was needed
  type: str
choice:
  description:
    - The candidate the box was launched as (in check mode, the first one), its place in the list (1-based), how
      many there were, and whether it was the first choice.
  returned: when a launch was needed
  type: dict
  sample: {instance_type: g5.xlarge, zone: us-west-2b, market: spot, index: 2, of: 6, first_choice: false}
attempt_log:
  description:
    - Every RunInstances request of this run, in order, and the candidates skipped because a quota refused an
      earlier one (after a failure, the message holds them as a table).
    - C(outcome) is C(launched), C(capacity), C(quota), C(throttled) (repeated after a pause), C(skipped) (not
      tried, C(message) says which quota) or C(error); C(code) is EC2's error code, C(message) its message;
      C(advice) says, for a quota, which one and where to raise it.
  returned: when the box was launched
  type: list
  elements: dict
  sample:
    - {instance_type: g5.xlarge, zone: us-west-2a, market: spot, outcome: capacity,
       code: InsufficientInstanceCapacity, message: "We currently do not have sufficient ...", advice: ""}
    - {instance_type: g5.xlarge, zone: us-west-2b, market: spot, outcome: launched, code: "", message: "",
       advice: ""}
table:
  description: The attempts as aligned lines of text (as a failure message shows them).
  returned: when the box was launched
  type: list
  elements: str
retry:
  description: After a failure, whether trying every candidate again later may help (see I(retry_until)).
  returned: when no candidate launched
  type: bool
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
import hashlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import (  # noqa: E402
    GONE_STATES,
    THROTTLE_OPTIONS,
    attempt_row,
    attempt_table,
    connection_errors,
    error_of,
    find_box,
    launch_request,
    note_refusal,
    repeating,
    single_attempt_client,
    skipped,
    throttle_note,
    wait_running,
)
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import Ec2BoxError as LaunchError  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

MARKETS = ("on-demand", "spot")
# Generations tried before giving up: each is a box of this name launched and terminated within the
# last 24 hours or so (EC2 keeps a token that long after the instance's termination).
MAX_GENERATIONS = 50
# Instance tags the module sets to the candidate it launched.
PLACEMENT_TAGS = ("InstanceType", "Zone", "Market")

# What to do about errors that stop a launch (codes as EC2 gives them).
HINTS = {
    "AuthFailure.ServiceLinkedRoleCreationNotPermitted": "the account's first spot launch creates the "
    "service-linked role AWSServiceRoleForEC2Spot: allow iam:CreateServiceLinkedRole for spot.amazonaws.com, or "
    "create it once with `aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`.",
}


class NoCandidateError(Exception):
    """No candidate launched; the attempts say why, kind is 'exhausted' (capacity and quotas) or 'error'."""

    def __init__(self, message: str, attempts: list[dict], kind: str):
        super().__init__(message)
        self.attempts = attempts
        self.kind = kind


def box_tags(name: str, owner: dict, tags: dict) -> dict[str, str]:
    """The box's tags: the caller's, plus the owner tags and its Name, which make it the project's box (conflicts
    refused)."""
    own = {**{str(k): str(v) for k, v in owner.items()}, "Name": name}
    clash = {k: v for k, v in tags.items() if k in own and str(v) != own[k]}
    if clash:
        raise LaunchError(f"tags may not set {', '.join(sorted(clash))} to other values than {own}: {clash}")
    return {**{str(k): str(v) for k, v in tags.items()}, **own}


def instance_only_tags(tags: dict[str, str], extra: dict) -> dict[str, str]:
    """The instance's own tags (Autostop, MaxHours): none of the box's keys or the placement tags."""
    taken = sorted((set(tags) | set(PLACEMENT_TAGS)) & {str(k) for k in extra})
    if taken:
        raise LaunchError(f"instance_tags may not set {', '.join(taken)} (set from the box and its candidate)")
    return {str(k): str(v) for k, v in extra.items()}


def client_token(region: str, project: str, name: str, request: dict, generation: int) -> str:
    """Token of one launch of the box: the same box, request and generation always give the same token.

    The request is part of it so that a changed box (type, image, size...) never repeats an earlier token
    with other parameters (EC2 would answer IdempotentParameterMismatch); the generation tells apart the
    launches of the same box after terminations (see the module's notes). 55 characters (EC2 allows 64).
    """
    seed = json.dumps([region, project, name, request, generation], sort_keys=True, default=str)
    return "gpubox-" + hashlib.sha256(seed.encode()).hexdigest()[:48]


def launch(ec2, region: str, box: dict, request: dict, gone: list[dict], run=None) -> tuple[dict, str]:
    """Launch the box with the first token of a generation that launched nothing yet; (instance, token).

    `run(**params)` makes the RunInstances call (default: ec2.run_instances); its errors pass through."""
    run = run or ec2.run_instances
    used = {inst.get("ClientToken") for inst in gone} - {None, ""}
    generation = 0
    calls = 0
    while generation < MAX_GENERATIONS:
        token = client_token(region, box["project"], box["name"], request, generation)
        generation += 1
        if token in used:
            continue
        calls += 1
        instance = run(ClientToken=token, **request)["Instances"][0]
        if instance["State"]["Name"] not in GONE_STATES:
            return instance, token
        # EC2 repeated the answer of an earlier launch with this token: that box is gone, take the next one.
        used.add(token)
    raise LaunchError(
        f"Box {box['name']}: the first {MAX_GENERATIONS} launch tokens all belong to instances that were "
        f"terminated ({calls} RunInstances calls answered with one); wait a day or rename the box."
    )


def try_candidates(
    ec2, region: str, box: dict, candidates: list[dict], public_ip: dict[str, bool], gone: list[dict], sleep=time.sleep
) -> tuple[dict, str, int, list[dict]]:
    """Launch the box as the first candidate that has capacity: (instance, token, index of the candidate (0-based),
    attempts). Raises NoCandidateError when none launches."""
    attempts: list[dict] = []
    closed: list[tuple[tuple[str, str], int]] = []  # quota scopes refused so far, with the row that refused
    for index, candidate in enumerate(candidates):
        if skipped(attempts, closed, candidate):
            continue
        placement = {
            "InstanceType": candidate["instance_type"],
            "Zone": candidate["zone"],
            "Market": candidate["market"],
        }
        one = {
            **box,
            "instance_type": candidate["instance_type"],
            "subnet_id": candidate["subnet_id"],
            "market": candidate["market"],
            "instance_tags": {**box.get("instance_tags", {}), **placement},
        }
        request = launch_request(one, public_ip[candidate["subnet_id"]])

        run = repeating(
            ec2.run_instances, throttle_note(attempts, candidate), box["throttle_retries"], box["throttle_delay"], sleep
        )
        try:
            instance, token = launch(ec2, region, one, request, gone, run=run)
        except (botocore.exceptions.ClientError, *connection_errors()) as e:
            kind, _unused = note_refusal(e, candidate, region, attempts, closed)
            if kind in ("capacity", "quota"):
                continue
            code, message = error_of(e)
            hint = f" ({HINTS[code]})" if code in HINTS else ""
            if kind == "throttled":
                hint = (
                    f" (still refused after {box['throttle_retries']} repeats: EC2 throttles this account's requests "
                    f"or is unwell; run again in a few minutes)"
                )
            attempts.append(attempt_row(candidate, "error", code, f"{message}{hint}"))
            raise NoCandidateError(f"{code or 'connection error'}: {message}{hint}", attempts, "error") from e
        attempts.append(attempt_row(candidate, "launched"))
        return instance, token, index, attempts
    raise NoCandidateError("every candidate was refused", attempts, "exhausted")


def next_steps(attempts: list[dict], markets: set[str], retry_minutes_set: bool) -> list[str]:
    """What to try after every candidate failed, from what refused them."""
    outcomes = {a["outcome"] for a in attempts}
    steps = []
    if "capacity" in outcomes:
        steps.append(
            "No capacity (EC2's capacity codes above) is AWS's side and changes by the minute: run again later"
            + ("" if retry_minutes_set else ", or let gpubox keep trying (gpubox_launch_retry_minutes: 30)")
            + "; or widen the box: more instance types (instance_type: [g6.xlarge, g5.xlarge, g4dn.xlarge]), "
            "all zones (leave zones out)"
            + ("" if markets >= {"spot", "on-demand"} else ", the other market (market: [spot, on-demand])")
            + ", or another region (gpubox_region)."
        )
    for advice in dict.fromkeys(a["advice"] for a in attempts if a["outcome"] == "quota"):
        steps.append(f"Quota: {advice}.")
    return steps


def summary(instance: dict) -> dict:
    return {
        "instance_id": instance["InstanceId"],
        "state": instance["State"]["Name"],
        "lifecycle": instance.get("InstanceLifecycle") or "on-demand",
        "instance_type": instance.get("InstanceType"),
        "availability_zone": instance.get("Placement", {}).get("AvailabilityZone"),
        "public_ip_address": instance.get("PublicIpAddress"),
        "public_dns_name": instance.get("PublicDnsName"),
        "private_ip_address": instance.get("PrivateIpAddress"),
        "client_token": instance.get("ClientToken"),
    }


def box_candidates(box: dict) -> list[dict]:
    """The candidates as given, or the one made of instance_type, subnet_id and market; each checked."""
    given = box.get("candidates")
    if given is None:
        if not box.get("instance_type") or not box.get("subnet_id"):
            raise LaunchError(f"Box {box['name']}: give candidates, or instance_type and subnet_id.")
        given = [{"instance_type": box["instance_type"], "subnet_id": box["subnet_id"], "market": box["market"]}]
    if not given:
        raise LaunchError(f"Box {box['name']}: candidates is empty; a box needs somewhere to launch.")
    candidates = []
    for c in given:
        one = {"instance_type": c.get("instance_type"), "subnet_id": c.get("subnet_id")}
        one["market"] = c.get("market") or "on-demand"
        one["zone"] = c.get("zone") or ""
        if not one["instance_type"] or not one["subnet_id"] or one["market"] not in MARKETS:
            raise LaunchError(
                f"Box {box['name']}: each candidate needs instance_type, subnet_id and a market on-demand|spot: {c}"
            )
        candidates.append({k: str(v) for k, v in one.items()})
    return candidates


def _requests(n: int) -> str:
    return f"{n} RunInstances request" + ("" if n == 1 else "s")


def ensure_box(module, ec2, box: dict, launcher=None, sleep=time.sleep) -> dict:
    """The module's work, as the result to exit with (`failed` set when no candidate launched). `launcher` is the
    client for RunInstances (botocore's retries off); default: ec2."""
    name, project = box["name"], box["project"]
    live, gone, foreign = find_box(ec2, name, box["owner_tags"])
    lacking = " and ".join(f"{k}={v}" for k, v in box["owner_tags"].items() if k != "Project")
    for inst in foreign:
        module.warn(
            f"Instance {inst['InstanceId']} has the tags Name={name} and Project={project} but not "
            f"{lacking}: it is not box {name}, and gpubox leaves it alone."
        )
    if live:
        live.sort(key=lambda i: str(i.get("LaunchTime", "")))
        if len(live) > 1:
            ids = ", ".join(i["InstanceId"] for i in live)
            module.warn(f"Box {name} of project {project} has {len(live)} instances ({ids}); using the oldest.")
        instance = live[0]
        if instance["State"]["Name"] == "pending" and box["wait"] and not module.check_mode:
            instance = wait_running(ec2, instance["InstanceId"], box["wait_timeout"])
        return {"changed": False, "launched": False, "instance": summary(instance)}

    candidates = box_candidates(box)
    subnet_ids = sorted({c["subnet_id"] for c in candidates})
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
    for c in candidates:
        c["zone"] = c["zone"] or subnets[c["subnet_id"]].get("AvailabilityZone", "")
    public_ip = {sid: bool(s.get("MapPublicIpOnLaunch")) for sid, s in subnets.items()}

    def choice(index: int) -> dict:
        return {
            **{k: candidates[index][k] for k in ("instance_type", "zone", "market")},
            "index": index + 1,
            "of": len(candidates),
            "first_choice": index == 0,
        }

    if module.check_mode:
        first = candidates[0]
        one = {**box, **first, "instance_tags": {**box["instance_tags"], "InstanceType": first["instance_type"]}}
        one["instance_tags"].update(Zone=first["zone"], Market=first["market"])
        token = client_token(module.region, project, name, launch_request(one, public_ip[first["subnet_id"]]), 0)
        return {"changed": True, "launched": False, "client_token": token, "choice": choice(0)}

    try:
        instance, token, index, attempts = try_candidates(
            launcher or ec2, module.region, box, candidates, public_ip, gone, sleep
        )
    except NoCandidateError as e:
        table = attempt_table(e.attempts)
        markets = {c["market"] for c in candidates}
        if e.kind == "error":
            head = f"Box {name}: could not launch ({_requests(len(e.attempts))}, region {module.region}): {e}"
            return {"failed": True, "msg": "\n".join([head, *table]), "retry": False}
        capacity = any(a["outcome"] == "capacity" for a in e.attempts)
        retry = capacity and time.time() < box["retry_until"]
        head = (
            f"Box {name}: none of its {len(candidates)} candidates could be launched in {module.region} "
            f"({_requests(sum(a['outcome'] != 'skipped' for a in e.attempts))}; nothing was created):"
        )
        steps = next_steps(e.attempts, markets, box["retry_until"] > 0)
        if retry:
            steps.insert(0, "Trying every candidate again until gpubox_launch_retry_minutes is up.")
        msg = "\n".join([head, *table, *(f"Next: {s}" for s in steps)])
        return {"failed": True, "msg": msg, "retry": retry}

    if box["wait"]:
        instance = wait_running(ec2, instance["InstanceId"], box["wait_timeout"])
    return {
        "changed": True,
        "launched": True,
        "client_token": token,
        "instance": summary(instance),
        "choice": choice(index),
        "attempt_log": attempts,
        "table": attempt_table(attempts),
    }


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "owner_tags": {"type": "dict", "required": True},
    "candidates": {"type": "list", "elements": "dict"},
    "instance_type": {"type": "str"},
    "image_id": {"type": "str", "required": True},
    "key_name": {"type": "str", "required": True, "no_log": False},
    "subnet_id": {"type": "str"},
    "security_group_ids": {"type": "list", "elements": "str", "required": True},
    "root_device_name": {"type": "str", "default": "/dev/sda1"},
    "volume_size": {"type": "int", "required": True},
    "market": {"type": "str", "choices": ["on-demand", "spot"], "default": "on-demand"},
    "tags": {"type": "dict", "default": {}},
    "instance_tags": {"type": "dict", "default": {}},
    **THROTTLE_OPTIONS,
    "retry_until": {"type": "float", "default": 0},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "int", "default": 600},
}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_one_of=[["candidates", "instance_type"]],
    )
    box = dict(module.params)
    if not box["security_group_ids"]:
        module.fail_json(msg=f"Box {box['name']}: security_group_ids is empty; a box needs its security group.")
    if not box["owner_tags"].get("Project"):
        module.fail_json(msg=f"Box {box['name']}: owner_tags must include Project (gpubox_tags).")
    if box["throttle_retries"] < 0 or box["throttle_delay"] < 0:
        module.fail_json(msg=f"Box {box['name']}: throttle_retries and throttle_delay must be 0 or more.")
    box["project"] = str(box["owner_tags"]["Project"])
    try:
        box["tags"] = box_tags(box["name"], box["owner_tags"], box["tags"] or {})
        box["instance_tags"] = instance_only_tags(box["tags"], box["instance_tags"] or {})
        launcher = single_attempt_client(module)  # one RunInstances per call
        result = ensure_box(module, module.client("ec2"), box, launcher=launcher)
    except LaunchError as e:
        module.fail_json(msg=str(e))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Could not launch box {box['name']}")
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
