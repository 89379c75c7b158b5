#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Give each box its data volume: the one kept for it (tag DataOf=NAME), else a new one, attached at one device."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_data_volume
short_description: Give gpubox boxes their data volumes, which outlive the instances
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - "A box's data volume is an EBS volume (gp3, encrypted) with the project's tags, C(Name=NAME-data) and
    C(DataOf=NAME). It is made apart from the instance (C(CreateVolume) in the instance's zone) and attached to it
    (C(AttachVolume) at I(device)), so it is not deleted with the instance: a box of the same name launched later
    gets it back."
  - "For each box of I(boxes): the volume tagged C(DataOf=NAME) with every one of I(owner_tags) is the box's. None:
    a new one of I(data_volume) GiB is made in the instance's zone. One that is available is attached; when it is in
    another zone than the instance (the box's declared zones exclude the volume's), it moves there first through a
    snapshot (C(CreateSnapshot), C(CreateVolume) from it in the instance's zone with the same tags, encrypted, gp3),
    and once the new volume is available the old one and the snapshot are deleted (the files are on the new one).
    One attached to the instance is left as it is; one attached to another instance is refused. The instance's
    tag C(DataVolume) names the volume (the dynamic inventory hands it to the box, whose data role mounts it). A
    volume smaller than I(data_volume) grows (C(ModifyVolume), online); a larger one is reported, never shrunk. Two
    volumes for one box are refused with their ids."
  - A volume with C(DataOf=NAME) but not all of I(owner_tags) is not the project's and is never touched (a warning
    names it).
options:
  boxes:
    description:
      - The boxes (C(name), C(data_volume) in GiB; other keys are ignored). Each box's instance is the project's
        live instance of that name (tags C(Name) and all of I(owner_tags)).
    type: list
    elements: dict
    required: true
  owner_tags:
    description: The project's tags (C(ManagedBy), C(Project)); a data volume is the project's only with all of them.
    type: dict
    required: true
  device:
    description: The device name the volume is attached at.
    type: str
    default: /dev/sdf
  wait_timeout:
    description: Seconds to wait for a new volume to be available and for an attachment to complete.
    type: int
    default: 300
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Give d2l its 100 GiB data volume
  ec2_data_volume:
    region: us-west-2
    boxes: [{name: d2l, data_volume: 100}]
    owner_tags: {ManagedBy: gpubox, Project: gpubox}
"""

RETURN = r"""
volumes:
  description: The data volume of each box, after the change.
  returned: always
  type: list
  elements: dict
  sample:
    - {box: d2l, volume_id: vol-0123456789abcdef0, size: 100, zone: us-west-2a, created: true, attached: true,
       grown: false, moved: false}
notes:
  description: A line for each change, to print.
  returned: always
  type: list
  elements: str
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
import time  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import Ec2BoxError, find_box, poll  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.tags import tag_dict, tag_list  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

POLL_SECONDS = 2
DATA_TAG = "DataOf"
INSTANCE_TAG = "DataVolume"


def data_volumes(ec2, name: str, owner: dict, module) -> list[dict]:
    """The project's data volumes of box `name` (not being deleted); lookalikes without the owner tags are warned
    about and left out."""
    found = ec2.describe_volumes(
        Filters=[
            {"Name": f"tag:{DATA_TAG}", "Values": [name]},
            {"Name": "tag:Project", "Values": [str(owner["Project"])]},
            {"Name": "status", "Values": ["creating", "available", "in-use"]},
        ]
    )["Volumes"]
    own = []
    for volume in found:
        tags = tag_dict(volume.get("Tags"))
        if tags.get(DATA_TAG) != name:
            continue
        if all(tags.get(k) == str(v) for k, v in owner.items()):
            own.append(volume)
        else:
            module.warn(
                f"Volume {volume['VolumeId']} has the tags {DATA_TAG}={name} and Project={owner['Project']} but not "
                f"all of {owner}: it is not box {name}'s data volume, and gpubox leaves it alone."
            )
    return own


def box_instance(ec2, name: str, owner: dict) -> dict:
    """The box's live instance (the oldest, as the launch takes it)."""
    live, _unused, _unused = find_box(ec2, name, owner)
    if not live:
        raise Ec2BoxError(f"Box {name} has no instance to attach its data volume to: run provision.yml.")
    return min(live, key=lambda i: str(i.get("LaunchTime", "")))


def wait_volume(ec2, volume_id: str, ready, timeout: int, sleep=time.sleep, clock=time.monotonic) -> dict:
    return poll(
        lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0],
        ready,
        timeout,
        lambda volume: f"Volume {volume_id} is {volume['State']} after {timeout} s.",
        sleep=sleep,
        clock=clock,
        pause=POLL_SECONDS,
    )


def wait_snapshot(ec2, snapshot_id: str, timeout: int, sleep=time.sleep, clock=time.monotonic) -> dict:
    return poll(
        lambda: ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0],
        lambda snapshot: snapshot["State"] == "completed",
        timeout,
        lambda snapshot: (
            f"Snapshot {snapshot_id} is {snapshot['State']} after {timeout} s; the data volume was not moved (it "
            f"is as it was). Run again; delete the snapshot with aws ec2 delete-snapshot --snapshot-id "
            f"{snapshot_id}."
        ),
        broken=lambda snapshot: snapshot["State"] == "error",
        sleep=sleep,
        clock=clock,
        pause=POLL_SECONDS,
    )


def move_volume(ec2, volume: dict, zone: str, size: int, name: str, owner: dict, timeout: int) -> dict:
    """The volume, copied to `zone` through a snapshot; the old one and the snapshot deleted once the copy is
    available. A failure before that leaves the old volume as it was (and names what was made)."""
    old_id = volume["VolumeId"]
    tags = {**{str(k): str(v) for k, v in owner.items()}, "Name": f"{name}-data"}
    snapshot = ec2.create_snapshot(
        VolumeId=old_id,
        Description=f"gpubox: box {name}'s data volume {old_id}, moving to {zone}",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
    )
    wait_snapshot(ec2, snapshot["SnapshotId"], timeout)
    new = ec2.create_volume(
        AvailabilityZone=zone,
        SnapshotId=snapshot["SnapshotId"],
        Size=max(size, volume["Size"]),
        VolumeType="gp3",
        Encrypted=True,
        TagSpecifications=[{"ResourceType": "volume", "Tags": tag_list({**tags, DATA_TAG: name})}],
    )
    new = wait_volume(ec2, new["VolumeId"], lambda v: v["State"] == "available", timeout)
    ec2.delete_volume(VolumeId=old_id)
    ec2.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
    return new


def attached_to(volume: dict) -> list[str]:
    return [a["InstanceId"] for a in volume.get("Attachments") or [] if a.get("State") in ("attaching", "attached")]


def ensure(module, ec2, box: dict) -> tuple[dict, list[str]]:
    """The box's data volume as it is after this run, and the lines that say what changed."""
    name, size = box["name"], int(box["data_volume"])
    owner, device, timeout = module.params["owner_tags"], module.params["device"], module.params["wait_timeout"]
    instance = box_instance(ec2, name, owner)
    instance_id = instance["InstanceId"]
    zone = instance["Placement"]["AvailabilityZone"]
    volumes = data_volumes(ec2, name, owner, module)
    if len(volumes) > 1:
        ids = ", ".join(sorted(v["VolumeId"] for v in volumes))
        raise Ec2BoxError(
            f"Box {name} has {len(volumes)} data volumes ({ids}); gpubox attaches one. Delete the one you do not need "
            f"(aws ec2 delete-volume --volume-id ...) or take the tag {DATA_TAG} off it, and run again."
        )
    done = {"box": name, "created": False, "attached": False, "grown": False, "moved": False}
    notes: list[str] = []
    if not volumes:
        if module.check_mode:
            return {**done, "volume_id": "", "size": size, "zone": zone, "created": True, "attached": True}, [
                f"Box {name}: a new {size} GiB data volume would be made in {zone} and attached."
            ]
        tags = {**{str(k): str(v) for k, v in owner.items()}, "Name": f"{name}-data", DATA_TAG: name}
        volume = ec2.create_volume(
            AvailabilityZone=zone,
            Size=size,
            VolumeType="gp3",
            Encrypted=True,
            TagSpecifications=[{"ResourceType": "volume", "Tags": tag_list(tags)}],
        )
        volume = wait_volume(ec2, volume["VolumeId"], lambda v: v["State"] == "available", timeout)
        done["created"] = True
        notes.append(f"Box {name}: made a {size} GiB data volume {volume['VolumeId']} in {zone}.")
    else:
        volume = volumes[0]
    volume_id = volume["VolumeId"]
    holders = attached_to(volume)
    if holders and holders != [instance_id]:
        raise Ec2BoxError(
            f"Box {name}'s data volume {volume_id} is attached to {', '.join(holders)}, not to the box's instance "
            f"{instance_id}. Detach it there first (aws ec2 detach-volume --volume-id {volume_id}) and run again."
        )
    if not holders:
        if volume["AvailabilityZone"] != zone:
            there = volume["AvailabilityZone"]
            if module.check_mode:
                would = {"volume_id": volume_id, "size": max(size, volume["Size"]), "zone": zone}
                line = f"Box {name}: its data volume {volume_id} would move from {there} to {zone} through a snapshot."
                return {**done, **would, "moved": True, "attached": True}, [line]
            volume = move_volume(ec2, volume, zone, size, name, owner, timeout)
            done["moved"] = True
            notes.append(
                f"Box {name}: its data volume moved from {there} to {zone} through a snapshot: {volume['VolumeId']} "
                f"({volume['Size']} GiB), with its files; the old volume {volume_id} and the snapshot are deleted."
            )
            volume_id = volume["VolumeId"]
        if not module.check_mode:
            ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
            volume = wait_volume(ec2, volume_id, lambda v: attached_to(v) == [instance_id] and all(
                a.get("State") == "attached" for a in v.get("Attachments") or []), timeout)  # fmt: skip
        done["attached"] = True
        notes.append(f"Box {name}: attached its data volume {volume_id} ({volume['Size']} GiB) at {device}.")
    tagged = tag_dict(instance.get("Tags")).get(INSTANCE_TAG)
    if tagged != volume_id:
        # the instance names its data volume: the inventory hands it to the box (the data role mounts it)
        if not module.check_mode:
            ec2.create_tags(Resources=[instance_id], Tags=tag_list({INSTANCE_TAG: volume_id}))
        if not notes:
            notes.append(f"Box {name}: its instance {instance_id} names its data volume {volume_id} ({INSTANCE_TAG}).")
    if volume["Size"] < size:
        if not module.check_mode:
            ec2.modify_volume(VolumeId=volume_id, Size=size)
        done["grown"] = True
        notes.append(
            f"Box {name}: data volume {volume_id} grows from {volume['Size']} to {size} GiB; its filesystem grows at "
            f"the next configure.yml."
        )
    elif volume["Size"] > size:
        module.warn(
            f"Box {name} declares data_volume: {size}, but its data volume {volume_id} has {volume['Size']} GiB: an "
            f"EBS volume never shrinks. Declare data_volume: {volume['Size']}."
        )
    return {
        **done,
        "volume_id": volume_id,
        "size": max(size, volume["Size"]),
        "zone": volume["AvailabilityZone"],
    }, notes


ARGUMENT_SPEC = {
    "boxes": {"type": "list", "elements": "dict", "required": True},
    "owner_tags": {"type": "dict", "required": True},
    "device": {"type": "str", "default": "/dev/sdf"},
    "wait_timeout": {"type": "int", "default": 300},
}


def main() -> None:
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not module.params["owner_tags"].get("Project"):
        module.fail_json(msg="owner_tags must include Project (gpubox_tags).")
    ec2 = module.client("ec2")
    volumes, notes = [], []
    for box in module.params["boxes"]:
        if not box.get("name") or int(box.get("data_volume") or 0) < 1:
            module.fail_json(msg=f"Each box needs a name and a data_volume of 1 GiB or more: {box}")
        try:
            volume, said = ensure(module, ec2, box)
        except Ec2BoxError as e:
            module.fail_json(msg=str(e), volumes=volumes, notes=notes, changed=bool(notes))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Box {box['name']}: its data volume", volumes=volumes, notes=notes)
        volumes.append(volume)
        notes += said
    module.exit_json(changed=bool(notes), volumes=volumes, notes=notes)


if __name__ == "__main__":
    main()
