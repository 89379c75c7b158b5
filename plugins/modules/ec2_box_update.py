#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Change gpubox boxes in place as the plan says: their tags, a stopped box's type, a running box's type with a
restart, a larger root volume."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_box_update
short_description: Change gpubox boxes in place as the provisioning plan says
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Applies the changes of the preflight's plan (roles/ec2_preflight/filter_plugins/plan.py), each to one box, each
    only where the box is still as the plan saw it.
  - "C(tags): sets the instance's tags (C(Autostop), C(MaxHours)); the box's autostop agent gets them at the next
    configure.yml."
  - "C(type) without C(restart): the instance must be stopped; its type and its C(InstanceType) tag become
    C(instance_type). It starts as that type."
  - "C(type) with C(restart): the running instance is stopped, then started as C(instance_type), or, when its zone
    has no capacity for it, as the next of C(instance_types) that starts there, or at last as its own type again
    (the refusals classified as at a launch: module_utils/gpubox_ec2.py). When nothing starts, it stays stopped with
    its own type and the module fails with the attempts and what to run."
  - "C(volume): the root volume grows to C(size) GiB online (C(ModifyVolume)); the box grows its filesystem (the base
    role). A volume never shrinks, and AWS takes one modification per volume every six hours: a refusal says so."
  - In check mode nothing is changed; the result says what would be.
options:
  changes:
    description:
      - The plan's changes. Each is a dict with C(box), C(instance_id) and C(kind) (C(tags), C(type) or
        C(volume)); C(tags) has C(tags), C(type) has C(instance_type), C(restart) and C(instance_types) (the
        declared ones), C(volume) has C(volume_id) and C(size).
    type: list
    elements: dict
    required: true
  throttle_retries:
    description: How many times a throttled StartInstances (or one that met a transient error) is repeated.
    type: int
    default: 4
  throttle_delay:
    description: Seconds before the first repeat; each next one waits twice as long (with jitter, at most 20 s).
    type: float
    default: 1.0
  wait_timeout:
    description: Seconds to wait for a box to stop and to run again.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Change the boxes as the plan says
  ec2_box_update:
    region: us-west-2
    changes:
      - {box: d2l, instance_id: i-0123456789abcdef0, kind: tags, tags: {Autostop: "7", MaxHours: "3"}}
      - {box: d2l, instance_id: i-0123456789abcdef0, kind: volume, volume_id: vol-0123456789abcdef0, size: 100}
"""

RETURN = r"""
results:
  description: What became of each change (C(done), and C(note), a line to print).
  returned: always
  type: list
  elements: dict
  sample:
    - {box: d2l, kind: volume, done: true, note: "Box 'd2l': its root volume grows from 64 to 100 GiB (...)"}
notes:
  description: The lines to print, one per change that was made (or would be, in check mode).
  returned: always
  type: list
  elements: str
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import (  # noqa: E402
    THROTTLE_OPTIONS,
    Ec2BoxError,
    attempt_table,
    describe,
    error_of,
    single_attempt_client,
    start_as,
    wait_instance,
)
from ansible_collections.gpubox.gpubox.plugins.module_utils.tags import tag_list  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore


def apply_tags(module, ec2, change: dict) -> dict:
    tags = {str(k): str(v) for k, v in change["tags"].items()}
    if not module.check_mode:
        ec2.create_tags(Resources=[change["instance_id"]], Tags=tag_list(tags))
    said = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
    return {"done": True, "note": f"Box '{change['box']}': tagged {said}; its autostop agent gets it at configure.yml"}


def apply_volume(module, ec2, change: dict) -> dict:
    volume = ec2.describe_volumes(VolumeIds=[change["volume_id"]])["Volumes"][0]
    size, wanted = volume["Size"], int(change["size"])
    if wanted <= size:
        return {"done": False, "note": ""}
    if not module.check_mode:
        try:
            ec2.modify_volume(VolumeId=change["volume_id"], Size=wanted)
        except botocore.exceptions.ClientError as e:
            code, message = error_of(e)
            raise Ec2BoxError(
                f"Box '{change['box']}': its root volume {change['volume_id']} cannot grow to {wanted} GiB now: "
                f"{code}: {message}. AWS takes one modification per volume every six hours; run provision.yml again "
                f"later."
            ) from e
    return {
        "done": True,
        "note": f"Box '{change['box']}': its root volume grows from {size} to {wanted} GiB (online; the box's "
        f"filesystem follows at configure.yml)",
    }


def apply_type(module, ec2, starter, change: dict) -> dict:
    name, instance_id, target = change["box"], change["instance_id"], change["instance_type"]
    instance = describe(ec2, instance_id)
    state, original = instance["State"]["Name"], instance["InstanceType"]
    if original == target:
        return {"done": False, "note": ""}
    if not change.get("restart"):
        if state != "stopped":
            raise Ec2BoxError(f"Box '{name}' is {state}, not stopped: its type changes only while it is stopped.")
        if not module.check_mode:
            ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": target})
            ec2.create_tags(Resources=[instance_id], Tags=tag_list({"InstanceType": target}))
        return {"done": True, "note": f"Box '{name}': its type is now {target} (was {original}); it starts as one"}
    if state != "running":
        raise Ec2BoxError(f"Box '{name}' is {state}: only a running box is restarted to change its type.")
    if module.check_mode:
        return {"done": True, "note": f"Box '{name}' would be stopped, changed to {target} and started"}
    ec2.stop_instances(InstanceIds=[instance_id])
    instance = wait_instance(ec2, instance_id, lambda now: now == "stopped", module.params["wait_timeout"])
    others = [t for t in change.get("instance_types") or [] if t not in (target, original)]
    params = {k: module.params[k] for k in ("throttle_retries", "throttle_delay", "wait_timeout")}
    order = [target, *others, original]  # at last its own type again, so that it runs
    started, attempts, error = start_as(ec2, starter, instance, order, module.region, params)
    table = "\n".join(f"  {line}" for line in attempt_table(attempts))
    if started is None:
        raise Ec2BoxError(
            f"Box '{name}' was stopped to become a {target}, but it did not start again ({error or 'no capacity'}); it "
            f"is stopped, as a {original}:\n{table}\nNext: ansible-playbook playbooks/start.yml -e gpubox_only={name} "
            f"(with -e gpubox_launch_retry_minutes=30 it keeps trying)."
        )
    if started == target:
        return {"done": True, "note": f"Box '{name}': stopped, changed from {original} to {target}, started"}
    how = "kept its" if started == original else f"started as a {started}, the next declared type, not as a"
    return {
        "done": True,
        "note": f"Box '{name}': stopped to become a {target}, but its zone had no capacity for it: it {how} "
        f"{original if started == original else target}:\n{table}",
    }


ARGUMENT_SPEC = {
    "changes": {"type": "list", "elements": "dict", "required": True},
    **THROTTLE_OPTIONS,
    "wait_timeout": {"type": "int", "default": 600},
}


def main() -> None:
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    ec2 = module.client("ec2")
    starter = single_attempt_client(module)
    results, failures = [], []
    for change in module.params["changes"]:
        kind = change.get("kind")
        try:
            if kind == "tags":
                done = apply_tags(module, ec2, change)
            elif kind == "volume":
                done = apply_volume(module, ec2, change)
            elif kind == "type":
                done = apply_type(module, ec2, starter, change)
            else:
                module.fail_json(msg=f"ec2_box_update: unknown kind of change {kind!r} for box {change.get('box')!r}")
        except Ec2BoxError as e:
            failures.append(str(e))
            results.append({"box": change.get("box"), "kind": kind, "done": False, "note": str(e)})
            continue
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Box {change.get('box')}: changing its {kind} failed", results=results)
        results.append({"box": change.get("box"), "kind": kind, **done})
    changed = any(r["done"] for r in results)
    notes = [r["note"] for r in results if r["done"] and r["note"]]
    if failures:
        module.fail_json(msg="\n\n".join(failures), results=results, notes=notes, changed=changed)
    module.exit_json(changed=changed, results=results, notes=notes)


if __name__ == "__main__":
    main()
