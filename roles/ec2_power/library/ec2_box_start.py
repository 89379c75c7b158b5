#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start stopped gpubox boxes; when a box's zone has no capacity for its type, try its other declared instance types
there, and keep trying for a while when asked to."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_box_start
short_description: Start stopped gpubox boxes, in their other declared instance types when their zone has none
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
  - "botocore's own retries are off for C(StartInstances) (one attempt per call): every request is one row of the
    attempt table."
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
      that started in another type than it had.
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
retry:
  description: After a failure, whether trying again later may help (see I(retry_until)).
  returned: when a box did not start
  type: bool
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
import time  # noqa: E402

from ansible.module_utils.gpubox_ec2 import (  # noqa: E402 - the project's module_utils (ansible.cfg)
    Ec2BoxError,
    attempt_table,
    describe,
    start_as,
    wait_running,
)
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore
    import botocore.config

ONE_ATTEMPT = {"retries": {"mode": "standard", "total_max_attempts": 1}}


def wait_stopped(ec2, instance_id: str, timeout: int, sleep=time.sleep, clock=time.monotonic) -> dict:
    """A stopping box, once stopped (it can only be started then)."""
    deadline = clock() + timeout
    while (instance := describe(ec2, instance_id))["State"]["Name"] == "stopping":
        if clock() >= deadline:
            raise Ec2BoxError(f"Instance {instance_id} is still stopping after {timeout} s.")
        sleep(5)
    return instance


def start_box(module, ec2, starter, box: dict, sleep=time.sleep, clock=time.time) -> dict:
    """Start one box (see the module's description); the result for it, `failed` set when it did not start."""
    name, instance_id = box["name"], box["instance_id"]
    instance = describe(ec2, instance_id)
    state = instance["State"]["Name"]
    if state == "stopping":
        instance = wait_stopped(ec2, instance_id, module.params["wait_timeout"], sleep)
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
    requests = sum(a["outcome"] != "skipped" for a in attempts)
    head = (
        f"Box {name} ({instance_id}) could not be started in {zone} ({requests} request{'s' * (requests != 1)}; it is "
        f"stopped, as before, as a {original}):"
    )
    steps = next_steps(attempts, market, module)
    if retry:
        steps.insert(0, "Next: trying again until gpubox_launch_retry_minutes is up.")
    return {**out, "failed": True, "msg": "\n".join([head, *attempt_table(attempts), *steps]), "retry": retry}


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
            + ". A stopped box cannot move to another zone by itself: its disk is in this one."
        )
    for advice in dict.fromkeys(a["advice"] for a in attempts if a["outcome"] == "quota"):
        steps.append(f"Next: quota: {advice}.")
    return steps


def box_of(instance: dict, instance_types: dict) -> dict:
    """name, instance_id and declared instance_types (a list) of an instance as ec2_instance_info lists it."""
    name = (instance.get("tags") or {}).get("Name", "")
    declared = instance_types.get(name) or []
    return {
        "name": name,
        "instance_id": instance["instance_id"],
        "instance_types": [declared] if isinstance(declared, str) else list(declared),
    }


ARGUMENT_SPEC = {
    "instances": {"type": "list", "elements": "dict", "required": True},
    "instance_types": {"type": "dict", "default": {}},
    "retry_until": {"type": "float", "default": 0},
    "throttle_retries": {"type": "int", "default": 4},
    "throttle_delay": {"type": "float", "default": 1.0},
    "wait_timeout": {"type": "int", "default": 600},
}


def main() -> None:
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    ec2 = module.client("ec2")
    starter = module.client("ec2", config=botocore.config.Config(**ONE_ATTEMPT))
    boxes = [box_of(i, module.params["instance_types"]) for i in module.params["instances"]]
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
