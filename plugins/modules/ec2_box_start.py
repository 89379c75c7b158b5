#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start stopped gpubox boxes; when a box's zone has no capacity for its type, try its other declared instance types
there, and keep trying for a while when asked to."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_box_start
short_description: Start stopped gpubox boxes, in their other declared instance types when their zone has none
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Starts each box of I(instances) that is stopped (one that is stopping is waited for first; a running or pending
    one is left as it is) and waits until it runs.
  - "EC2 refuses a start like a launch. By the error code of a refusal: capacity (C(InsufficientInstanceCapacity),
    whose message for a spot box is C(There is no Spot capacity available that matches your request), and the other
    capacity codes of a launch) moves on to the box's next declared instance type, in the box's own zone (a stopped
    instance cannot move: its disk lives there); a quota (C(VcpuLimitExceeded), ...) skips every later type the same
    quota covers and names the quota; throttling and transient server errors are repeated with backoff, at most
    I(throttle_retries) times; any other error stops at once with AWS's message."
  - "Before another type is tried it is checked as at a launch: offered in the box's zone, of the box's
    architecture, with a GPU when the box's type has one. The type is then changed while the box is stopped
    (C(ModifyInstanceAttribute)); when that type starts, the instance's C(InstanceType) tag follows it."
  - A spot box's type cannot change (its spot request fixes it), so it is only started again, and waited for.
  - "When nothing started, the box is given back its type and the module fails with a table of every attempt and
    what to try next, and says (I(retry)) whether trying again later may help: a capacity refusal while
    I(retry_until) is not reached. The caller repeats the task for that (gpubox_launch_retry_minutes)."
  - "With I(allow_move), an on-demand box that no declared type could start in its zone (and I(retry_until) is
    reached) is moved: an image of the stopped instance (C(CreateImage), gpubox's tags), a new instance from it in
    another of the box's I(zones) (each declared type, its own first, in each zone; refusals as at a launch), and the
    old instance is terminated only once the new one answers C(ssh -l SshUser ADDRESS true) with I(key_file). On any
    failure the new instance (if any) is terminated and the old one stays stopped where it was. The image and its
    snapshots are deleted at the end either way: the new box's disk was made from them."
  - "botocore's own retries are off for C(StartInstances) and C(RunInstances) (one attempt per call): every request
    is one row of the attempt table."
options:
  instances:
    description:
      - The boxes to start, as C(amazon.aws.ec2_instance_info) lists them (C(instance_id), and C(tags) with the
        box's C(Name)).
    type: list
    elements: dict
    required: true
  instance_types:
    description:
      - The instance types each box's declaration lists, by box name, in order of preference (one type or a list).
        A box left out has only its current type.
    type: dict
    default: {}
  retry_until:
    description:
      - Unix time until which the caller tries again after a capacity refusal (gpubox_launch_retry_minutes). 0
        never.
    type: float
    default: 0
  throttle_retries:
    description: How many times one StartInstances is repeated after throttling or a transient error.
    type: int
    default: 4
  throttle_delay:
    description: Seconds before the first repeat; each next one waits twice as long (with jitter, at most 20 s).
    type: float
    default: 1.0
  wait_timeout:
    description: Seconds to wait for a box to stop (when it is stopping) and to run once started.
    type: int
    default: 600
  allow_move:
    description: Move an on-demand box that cannot start in its zone to another zone (see the description).
    type: bool
    default: false
  zones:
    description:
      - The zones each box's declaration lists, by box name, in order (one zone or a list), where I(allow_move) may
        move it. A box left out may move to any zone where the box's VPC has a default subnet.
    type: dict
    default: {}
  owner_tags:
    description: The project's tags (C(ManagedBy), C(Project)), which a move's image and new instance get.
    type: dict
    default: {}
  key_file:
    description:
      - The private key of the box's key pair, for the SSH check of a moved box; empty for the ssh agent's keys.
    type: path
    default: ~/.ssh/id_rsa
  image_timeout:
    description: Seconds to wait for a moving box's image to be available.
    type: int
    default: 3600
  ssh_timeout:
    description: Seconds to wait for a moved box to answer over SSH before the move is undone.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Start d2l, as a g5.xlarge or a g4dn.xlarge when its zone has no g6.xlarge
  ec2_box_start:
    region: us-west-2
    instances: [{instance_id: i-0123456789abcdef0, tags: {Name: d2l}}]
    instance_types: {d2l: [g6.xlarge, g5.xlarge, g4dn.xlarge]}
    retry_until: 0
"""

RETURN = r"""
boxes:
  description:
    - What happened to each box. C(previous_type) and C(note) (a line to print, with the attempts) only for a box
      that started in another type than it had; C(moved), C(previous_instance_id) and C(note) for a moved box, whose
      C(instance_id) is its new instance.
  returned: always
  type: list
  elements: dict
  sample:
    - name: d2l
      instance_id: i-0123456789abcdef0
      started: true
      instance_type: g5.xlarge
      previous_type: g6.xlarge
      note: "Box 'd2l' started as a g5.xlarge: its zone us-west-2a had no capacity for its g6.xlarge (...)"
      zone: us-west-2a
      attempt_log:
        - {instance_type: g6.xlarge, zone: us-west-2a, market: on-demand, outcome: capacity,
           code: InsufficientInstanceCapacity, message: "We currently do not have sufficient ...", advice: ""}
        - {instance_type: g5.xlarge, zone: us-west-2a, market: on-demand, outcome: started, code: "", message: "",
           advice: ""}
      table: ["#  type       zone        market     outcome", "..."]
    - name: lab
      instance_id: i-0fedcba9876543210
      previous_instance_id: i-00112233445566778
      started: true
      moved: true
      instance_type: g5.xlarge
      zone: us-west-2b
      note: "Box 'lab' moved from us-west-2a to us-west-2b (...)"
retry:
  description: After a failure, whether trying again later may help (see I(retry_until)).
  returned: when a box did not start
  type: bool
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
import hashlib  # noqa: E402
import ipaddress  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import (  # noqa: E402
    THROTTLE_OPTIONS,
    Ec2BoxError,
    attempt_row,
    attempt_table,
    connection_errors,
    describe,
    error_of,
    launch_request,
    note_refusal,
    repeating,
    single_attempt_client,
    skipped,
    start_as,
    throttle_note,
    usable_types,
    wait_instance,
    wait_running,
)
from ansible_collections.gpubox.gpubox.plugins.module_utils.names import LOGIN  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.tags import tag_dict, tag_list  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore
# A moved box keeps these tags of its old instance (checked first: they were read back from AWS); its placement tags
# (InstanceType, Zone, Market) are the new ones'.
KEPT_TAGS = {
    "SshUser": LOGIN,
    "Autostop": re.compile(r"[0-9]{1,5}"),
    "MaxHours": re.compile(r"[0-9]{1,5}"),
    "StopAt": re.compile(r"(?:[0-9]{2}:[0-9]{2}(?: [A-Za-z0-9_+/-]{1,64})?)?"),  # "" (none), "20:00 Europe/Berlin"
    "Image": re.compile(r"[A-Za-z0-9:._/()@ -]{1,128}"),
}
POLL_SECONDS = 5


def start_box(module, ec2, starter, box: dict, sleep=time.sleep, clock=time.time) -> dict:
    """Start one box (see the module's description); the result for it, `failed` set when it did not start."""
    name, instance_id = box["name"], box["instance_id"]
    instance = describe(ec2, instance_id)
    state = instance["State"]["Name"]
    if state == "stopping":
        # a stopping box can only be started once stopped
        instance = wait_instance(ec2, instance_id, lambda now: now != "stopping", module.params["wait_timeout"], sleep)
        state = instance["State"]["Name"]
    result = {"name": name, "instance_id": instance_id, "started": False, "zone": "", "attempt_log": [], "table": []}
    if state in ("running", "pending"):
        instance = (
            wait_running(ec2, instance_id, module.params["wait_timeout"], sleep) if state == "pending" else instance
        )
        return {**result, "instance_type": instance["InstanceType"], "zone": instance["Placement"]["AvailabilityZone"]}
    if state != "stopped":
        return {**result, "failed": True, "msg": f"Box {name} ({instance_id}) is {state}: it cannot be started."}

    original = instance["InstanceType"]
    zone = instance["Placement"]["AvailabilityZone"]
    market = "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"
    declared = [t for t in box.get("instance_types") or [] if t]
    order = list(dict.fromkeys([original, *declared]))
    result["zone"] = zone
    params = {k: module.params[k] for k in ("throttle_retries", "throttle_delay", "wait_timeout")}
    started_as, attempts, error = start_as(ec2, starter, instance, order, module.region, params, sleep)
    out = {**result, "attempt_log": attempts, "table": attempt_table(attempts), "instance_type": original}
    if started_as is not None:
        out |= {"started": True, "instance_type": started_as}
        if started_as != original:
            out["previous_type"] = original
            out["note"] = (
                f"Box '{name}' started as a {started_as}: its zone {zone} had no capacity for its {original} "
                f"(the instance's type and its InstanceType tag are now {started_as}):\n"
                + "\n".join(f"  {line}" for line in attempt_table(attempts))
            )
        return out
    if error:
        return {**out, "failed": True, "msg": f"Box {name} ({instance_id}) could not be started: {error}"}
    capacity = any(a["outcome"] == "capacity" for a in attempts)
    retry = capacity and clock() < module.params["retry_until"]
    if capacity and not retry and module.params["allow_move"] and market == "on-demand":
        return move_box(module, ec2, starter, instance, box, out, sleep)
    requests = sum(a["outcome"] != "skipped" for a in attempts)
    head = (
        f"Box {name} ({instance_id}) could not be started in {zone} ({requests} request{'s' * (requests != 1)}; it is "
        f"stopped, as before, as a {original}):"
    )
    steps = next_steps(attempts, market, module)
    if retry:
        steps.insert(0, "Next: trying again until gpubox_launch_retry_minutes is up.")
    return {**out, "failed": True, "msg": "\n".join([head, *attempt_table(attempts), *steps]), "retry": retry}


# Moving a stopped box that cannot start in its zone (allow_move): an image of it, a new instance from that image in
# another declared zone, and the old instance terminated only once the new one answers over SSH. On every failure
# the old instance is left as it was (stopped, in its zone) and what the move made is removed again.


def move_subnets(ec2, instance: dict, zones: list[str]) -> dict[str, dict]:
    """The default subnets of the box's VPC in the zones it may move to (its declared zones, else all), by zone, in
    order; never its own zone."""
    found = ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [instance["VpcId"]]}, {"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"]
    by_zone = {s["AvailabilityZone"]: s for s in found}
    here = instance["Placement"]["AvailabilityZone"]
    order = zones or sorted(by_zone)
    return {z: by_zone[z] for z in order if z in by_zone and z != here}


def kept_tags(instance: dict) -> dict[str, str]:
    """The old instance's tags a moved box keeps, each only when it has the form gpubox gives it."""
    tags = tag_dict(instance.get("Tags"))
    return {k: tags[k] for k, form in KEPT_TAGS.items() if k in tags and form.fullmatch(tags[k])}


def image_of(ec2, instance: dict, name: str, owner: dict, timeout: int, sleep=time.sleep, clock=time.monotonic):
    """An image of the stopped box with gpubox's tags (its snapshots too), once available: (image id, snapshot ids)."""
    image_name = f"{name}-move-{instance['InstanceId']}-{int(time.time())}"
    image_id = ec2.create_image(
        InstanceId=instance["InstanceId"],
        Name=image_name,
        Description=f"gpubox {owner['Project']}: box {name} moving to another zone",
        NoReboot=True,
    )["ImageId"]
    tags = tag_list({**owner, "Name": image_name, "SourceBox": name})
    ec2.create_tags(Resources=[image_id], Tags=tags)
    deadline = clock() + timeout
    while True:
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        snapshots = [
            m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if "SnapshotId" in m.get("Ebs", {})
        ]
        if image["State"] == "available":
            if snapshots:
                ec2.create_tags(Resources=snapshots, Tags=tags)
            return image, snapshots
        if image["State"] != "pending" or clock() >= deadline:
            remove_image(ec2, image_id, snapshots)
            raise Ec2BoxError(
                f"the image of {instance['InstanceId']} is {image['State']} after "
                f"{timeout if image['State'] == 'pending' else int(timeout - (deadline - clock()))} s "
                f"({image.get('StateReason', {}).get('Message', 'no reason given')})"
            )
        sleep(POLL_SECONDS)


def remove_image(ec2, image_id: str, snapshots: list[str]) -> None:
    ec2.deregister_image(ImageId=image_id)
    for snapshot in snapshots:
        ec2.delete_snapshot(SnapshotId=snapshot)


def launch_elsewhere(module, ec2, launcher, instance: dict, image: dict, box: dict, sleep=time.sleep):
    """Launch the box from its image in another zone: each declared type (its own first) in each zone it may move to,
    until one has capacity. (the new instance or None, the attempts, an error that stopped it or '')."""
    name = box["name"]
    subnets = move_subnets(ec2, instance, box["zones"])
    order = list(dict.fromkeys([instance["InstanceType"], *box["instance_types"]]))
    why_not = {zone: usable_types(ec2, instance, order, zone) for zone in subnets}
    root = next(m for m in image["BlockDeviceMappings"] if m["DeviceName"] == image["RootDeviceName"])
    tags = {**{str(k): str(v) for k, v in module.params["owner_tags"].items()}, "Name": name}
    kept = kept_tags(instance)
    attempts: list[dict] = []
    closed: list[tuple[tuple[str, str], int]] = []
    for itype in order:
        for zone, subnet in subnets.items():
            candidate = {"instance_type": itype, "zone": zone, "market": "on-demand"}
            if skipped(attempts, closed, candidate, why_not[zone].get(itype, "")):
                continue
            one = {
                "image_id": image["ImageId"],
                "instance_type": itype,
                "key_name": instance["KeyName"],
                "root_device_name": image["RootDeviceName"],
                "volume_size": root["Ebs"]["VolumeSize"],
                "subnet_id": subnet["SubnetId"],
                "security_group_ids": [g["GroupId"] for g in instance.get("SecurityGroups", [])],
                "market": "on-demand",
                "tags": {**tags, **({"SshUser": kept["SshUser"]} if "SshUser" in kept else {})},
                "instance_tags": {
                    **{k: v for k, v in kept.items() if k != "SshUser"},
                    "InstanceType": itype,
                    "Zone": zone,
                    "Market": "on-demand",
                },
            }
            request = launch_request(one, bool(subnet.get("MapPublicIpOnLaunch")))
            # The same image and candidate give the same token: a repeated request cannot launch a second box.
            seed = f"{image['ImageId']} {itype} {subnet['SubnetId']}"
            token = "gpubox-move-" + hashlib.sha256(seed.encode()).hexdigest()[:48]

            run = repeating(
                launcher.run_instances,
                throttle_note(attempts, candidate),
                module.params["throttle_retries"],
                module.params["throttle_delay"],
                sleep,
            )
            try:
                new = run(ClientToken=token, **request)["Instances"][0]
            except (botocore.exceptions.ClientError, *connection_errors()) as e:
                kind, said = note_refusal(e, candidate, module.region, attempts, closed)
                if kind in ("capacity", "quota"):
                    continue
                code, message = error_of(e)
                attempts.append(attempt_row(candidate, "error", code, message))
                return None, attempts, said
            attempts.append(attempt_row(candidate, "launched"))
            return new, attempts, ""
    return None, attempts, ""


def answers_ssh(host: str, user: str, key_file: str, timeout: int, sleep=time.sleep, clock=time.monotonic) -> str:
    """'' once `ssh user@host true` succeeds with the box's key, else (after `timeout` s) what ssh said last. The new
    instance's host key is not known yet and is not recorded here (the ssh config's known_hosts takes it at the first
    login): the probe sends nothing but a login with the public key."""
    ipaddress.ip_address(host)  # an address EC2 gave, never options
    command = [
        "ssh", *(["-i", key_file, "-o", "IdentitiesOnly=yes"] if key_file else []), "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-l", user, "--", host, "true",
    ]  # fmt: skip
    deadline = clock() + timeout
    said = "no answer"
    while True:
        try:
            # not module.run_command: it has no timeout, and a box that never answers must not hang the module
            done = subprocess.run(  # pylint: disable=ansible-bad-function
                command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False
            )
            if done.returncode == 0:
                return ""
            said = done.stderr.strip()[-300:] or f"ssh exited with {done.returncode}"
        except subprocess.TimeoutExpired:
            said = "ssh did not finish within 30 s"
        if clock() >= deadline:
            return said
        sleep(POLL_SECONDS)


def move_box(module, ec2, launcher, instance: dict, box: dict, start: dict, sleep=time.sleep) -> dict:
    """Move the stopped box to another zone (see the section's comment); the result for it, `failed` when it stays
    where it was."""
    name, old_id = box["name"], instance["InstanceId"]
    zone = instance["Placement"]["AvailabilityZone"]
    stays = f"it is stopped in {zone}, as before, as a {instance['InstanceType']}"
    start_rows = [f"  {line}" for line in attempt_table(start["attempt_log"])]
    head = [f"Box {name} ({old_id}) could not be started in {zone}:", *start_rows]
    user = kept_tags(instance).get("SshUser", "")
    if "DataVolume" in tag_dict(instance.get("Tags")):
        return {
            **start,
            "failed": True,
            "msg": "\n".join(
                [
                    *head,
                    f"gpubox_allow_move=yes: it has a data volume, which lives in {zone} and cannot follow it to "
                    f"another zone, so it is not moved; {stays}. Run start.yml again later, or declare more types.",
                ]
            ),
        }
    if not move_subnets(ec2, instance, box["zones"]):
        declared = ", ".join(box["zones"]) or "all of the region's"
        return {
            **start,
            "failed": True,
            "msg": "\n".join(
                [
                    *head,
                    f"gpubox_allow_move=yes: there is no other zone to move it to (its zones: {declared}); "
                    f"declare more (zones: [...]) or leave zones out; {stays}.",
                ]
            ),
        }
    if not user:
        return {**start, "failed": True, "msg": "\n".join([*head, f"It has no valid SshUser tag to check a moved box "
                f"with, so it is not moved; {stays}."])}  # fmt: skip
    timeouts = module.params
    try:
        image, snapshots = image_of(ec2, instance, name, module.params["owner_tags"], timeouts["image_timeout"], sleep)
    except Ec2BoxError as e:
        return {**start, "failed": True, "msg": "\n".join([*head, f"gpubox_allow_move=yes: {e}; {stays}."])}
    new = None
    try:
        new, attempts, error = launch_elsewhere(module, ec2, launcher, instance, image, box, sleep)
        table = [f"  {line}" for line in attempt_table(attempts)]
        if new is None:
            why = error or "no other zone had capacity for its types"
            return {
                **start,
                "failed": True,
                "msg": "\n".join(
                    [
                        *head,
                        f"gpubox_allow_move=yes: moving it through an image of it failed ({why}):",
                        *table,
                        f"The image is deleted again; {stays}. Run start.yml again later.",
                    ]
                ),
            }
        new = wait_running(ec2, new["InstanceId"], timeouts["wait_timeout"], sleep)
        host = new.get("PublicIpAddress") or new.get("PrivateIpAddress") or ""
        said = (
            answers_ssh(host, user, module.params["key_file"], timeouts["ssh_timeout"], sleep) if host else "no address"
        )
        if said:
            ec2.terminate_instances(InstanceIds=[new["InstanceId"]])
            new = None
            return {
                **start,
                "failed": True,
                "msg": "\n".join(
                    [
                        *head,
                        f"gpubox_allow_move=yes: the box's image launched in {attempts[-1]['zone']}, but the new "
                        f"instance did not answer over SSH at {host} within {timeouts['ssh_timeout']} s ({said}).",
                        f"The new instance and the image are deleted again; {stays}.",
                    ]
                ),
            }
        ec2.terminate_instances(InstanceIds=[old_id])
    except BaseException:
        if new is not None:  # the old instance is still the box: the half-made move goes
            with contextlib.suppress(Exception):
                ec2.terminate_instances(InstanceIds=[new["InstanceId"]])
        raise
    finally:
        remove_image(ec2, image["ImageId"], snapshots)
    now = attempts[-1]
    return {
        **start,
        "started": True,
        "moved": True,
        "instance_id": new["InstanceId"],
        "previous_instance_id": old_id,
        "instance_type": now["instance_type"],
        "zone": now["zone"],
        "note": "\n".join(
            [
                f"Box '{name}' moved from {zone} to {now['zone']} (its zone had no capacity for its types): it runs "
                f"as {new['InstanceId']} ({now['instance_type']}) from an image of {old_id}, which is terminated "
                f"now that the new instance answered over SSH; the image is deleted.",
                *start_rows,
                *table,
            ]
        ),
    }


def next_steps(attempts: list[dict], market: str, module) -> list[str]:
    """What to try when a box did not start, from what refused it."""
    outcomes = {a["outcome"] for a in attempts}
    steps = []
    if "capacity" in outcomes:
        steps.append(
            "Next: no capacity in the box's zone is AWS's side and changes by the minute: run start.yml again later"
            + ("" if module.params["retry_until"] else ", or let it keep trying (-e gpubox_launch_retry_minutes=30)")
            + (
                "; or declare more instance types for the box (instance_type: [g6.xlarge, g5.xlarge, g4dn.xlarge]),"
                " which start.yml tries in its zone"
                if market == "on-demand"
                else ""
            )
            + ". A stopped box cannot move to another zone by itself: its disk is in this one"
            + (
                "; with -e gpubox_allow_move=yes start.yml moves it through an image of it (its disk comes along)."
                if market == "on-demand" and not module.params["allow_move"]
                else "."
            )
        )
    for advice in dict.fromkeys(a["advice"] for a in attempts if a["outcome"] == "quota"):
        steps.append(f"Next: quota: {advice}.")
    return steps


def box_of(instance: dict, instance_types: dict, zones_by_box: dict) -> dict:
    """name, instance_id, declared instance_types and zones (lists) of an instance as ec2_instance_info lists it."""
    name = (instance.get("tags") or {}).get("Name", "")
    declared = instance_types.get(name) or []
    zones = zones_by_box.get(name) or []
    return {
        "name": name,
        "instance_id": instance["instance_id"],
        "instance_types": [declared] if isinstance(declared, str) else list(declared),
        "zones": [zones] if isinstance(zones, str) else list(zones),
    }


ARGUMENT_SPEC = {
    "instances": {"type": "list", "elements": "dict", "required": True},
    "instance_types": {"type": "dict", "default": {}},
    "retry_until": {"type": "float", "default": 0},
    **THROTTLE_OPTIONS,
    "wait_timeout": {"type": "int", "default": 600},
    "allow_move": {"type": "bool", "default": False},
    "zones": {"type": "dict", "default": {}},
    "owner_tags": {"type": "dict", "default": {}},
    "key_file": {"type": "path", "default": "~/.ssh/id_rsa", "no_log": False},
    "image_timeout": {"type": "int", "default": 3600},
    "ssh_timeout": {"type": "int", "default": 600},
}


def main() -> None:
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    ec2 = module.client("ec2")
    starter = single_attempt_client(module)
    boxes = [box_of(i, module.params["instance_types"], module.params["zones"]) for i in module.params["instances"]]
    if module.params["allow_move"] and not module.params["owner_tags"].get("Project"):
        module.fail_json(
            msg="allow_move needs owner_tags with Project (gpubox_tags): the image and the new box get them."
        )
    if module.check_mode:
        stopped = [b for b in boxes if describe(ec2, b["instance_id"])["State"]["Name"] in ("stopped", "stopping")]
        module.exit_json(changed=bool(stopped), boxes=[{**b, "started": False} for b in stopped])
    results = []
    for box in boxes:
        try:
            results.append(start_box(module, ec2, starter, box))
        except Ec2BoxError as e:
            results.append({"name": box["name"], "instance_id": box["instance_id"], "failed": True, "msg": str(e)})
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Box {box['name']}: starting it failed", boxes=results)
    failed = [r for r in results if r.get("failed")]
    changed = any(r.get("started") for r in results)
    if failed:
        retry = all(r.get("retry") for r in failed)
        module.fail_json(msg="\n\n".join(r["msg"] for r in failed), boxes=results, changed=changed, retry=retry)
    module.exit_json(changed=changed, boxes=results)


if __name__ == "__main__":
    main()
