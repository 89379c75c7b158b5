"""Work that outlives the box: a box that declares data_volume gets an EBS volume of its own (gp3, encrypted, the
project's tags, DataOf=NAME), made apart from the instance and attached to it; terminate.yml keeps it and says what
it costs and how to delete it; a box of the same name launched later is launched in the volume's zone and gets it
back; -e gpubox_delete_data=yes deletes it. Never a volume without all of the project's tags.

One ordered story against a local EC2 API of its own behind the fault proxy: what the playbooks asked for is read
from the proxy's log, what came of it from the API."""

from __future__ import annotations

import pytest

from tests.integration.ec2play import SSH_CIDR, live_box, playbook, provisioned, tags

PROJECT = "pytest-data"
ZONE, OTHER = "us-west-2a", "us-west-2b"
BOX = {"name": "keep", "instance_type": "g4dn.xlarge", "zones": [ZONE], "data_volume": 20}
CHANGING = (
    "RunInstances",
    "CreateVolume",
    "AttachVolume",
    "ModifyVolume",
    "DeleteVolume",
    "TerminateInstances",
    "CreateSnapshot",
    "DeleteSnapshot",
)


@pytest.fixture(scope="module")
def story(proxy, tmp_path_factory):
    proxy.clear()
    env, run = provisioned(proxy.env, tmp_path_factory.mktemp("data") / "home", settings())
    return {"env": env, "first": run, "calls": changes(proxy)}


def settings(box: dict | None = None, **more) -> dict:
    return {"gpubox_project": PROJECT, "gpubox_ssh_cidr": SSH_CIDR, "gpubox_boxes": [box or BOX], **more}


def play(story, proxy, name: str, box: dict | None = None, *args: str, **more):
    proxy.clear()
    return playbook(name, story["env"], *args, extra=settings(box, **more))


def changes(proxy) -> list[str]:
    return [e["action"] for e in proxy.requests if e["action"] in CHANGING]


def instance(ec2) -> dict:
    return live_box(ec2, PROJECT, "keep")


def data_volumes(ec2) -> list[dict]:
    return ec2.describe_volumes(Filters=[{"Name": "tag:DataOf", "Values": ["keep"]}])["Volumes"]


def said(run, task: str) -> str:
    """What the task of that name printed (every item of a loop), as one text."""
    lines = []
    for name, result in run.tasks():
        if name.endswith(task):
            for one in [result, *result.get("results", [])]:
                msg = one.get("msg", "")
                lines += msg if isinstance(msg, list) else [str(msg)]
    return "\n".join(lines)


def test_a_box_gets_its_own_data_volume_attached_and_a_rerun_changes_nothing(story, proxy, ec2m):
    assert story["calls"] == ["RunInstances", "CreateVolume", "AttachVolume"]
    (volume,) = data_volumes(ec2m)
    box = instance(ec2m)
    assert tags(volume) == {"ManagedBy": "gpubox", "Project": PROJECT, "Name": "keep-data", "DataOf": "keep"}
    assert (volume["Size"], volume["VolumeType"], volume["Encrypted"], volume["AvailabilityZone"]) == (
        20,
        "gp3",
        True,
        ZONE,
    )
    assert [(a["InstanceId"], a["Device"]) for a in volume["Attachments"]] == [(box["InstanceId"], "/dev/sdf")]
    assert "made a 20 GiB data volume" in said(story["first"], "ec2_data : Say what changed")
    run = play(story, proxy, "provision")
    assert run.rc == 0 and run.stats["changed"] == 0, run.output[-3000:]
    assert changes(proxy) == []


def test_a_larger_declaration_grows_it_and_a_smaller_one_is_refused_in_the_plan(story, proxy, ec2m):
    run = play(story, proxy, "provision", {**BOX, "data_volume": 30})
    assert run.rc == 0, run.output[-3000:]
    assert changes(proxy) == ["ModifyVolume"] and data_volumes(ec2m)[0]["Size"] == 30
    run = play(story, proxy, "provision", {**BOX, "data_volume": 10})
    assert run.rc == 0 and changes(proxy) == [] and data_volumes(ec2m)[0]["Size"] == 30
    plan = said(run, "Say what this run does about the boxes that exist")
    assert "data_volume" in plan and "an EBS volume never shrinks" in plan
    run = play(story, proxy, "provision", {**BOX, "data_volume": 0})
    plan = said(run, "Say what this run does about the boxes that exist")
    assert "never deletes a data volume unasked" in plan and "-e gpubox_delete_data=yes" in plan
    assert changes(proxy) == [] and data_volumes(ec2m)[0]["Attachments"]


def test_terminate_keeps_the_data_volume_and_says_what_it_costs(story, proxy, ec2m):
    old = instance(ec2m)["InstanceId"]
    run = play(story, proxy, "terminate", {**BOX, "data_volume": 30}, "-e", "gpubox_confirm=yes")
    assert run.rc == 0, run.output[-3000:]
    (volume,) = data_volumes(ec2m)
    assert volume["State"] == "available" and "DeleteVolume" not in changes(proxy)
    message = said(run, "Say which data volumes are kept, what they cost and how to delete them")
    kept = f"Kept the data volume of box keep: {volume['VolumeId']} (30 GiB in {ZONE}), about $2.40 a month"
    assert kept in message
    assert "-e gpubox_only=keep -e gpubox_confirm=yes -e gpubox_delete_data=yes" in message
    listed = said(play(story, proxy, "list"), "Print the boxes")
    assert "KEPT DATA VOLUME OF" in listed and f"keep                 {volume['VolumeId']}  {ZONE}" in listed
    assert "30 GiB gp3" in listed and "2.40" in listed
    assert ec2m.describe_instances(InstanceIds=[old])["Reservations"][0]["Instances"][0]["State"]["Name"] in (
        "shutting-down",
        "terminated",
    )


def test_a_box_launched_again_comes_back_in_the_volumes_zone_with_it(story, proxy, ec2m):
    # the volume's zone, not the box's first zone
    run = play(story, proxy, "provision", {**BOX, "zones": [OTHER, ZONE], "data_volume": 30})
    assert run.rc == 0, run.output[-3000:]
    (volume,) = data_volumes(ec2m)
    box = instance(ec2m)
    assert box["Placement"]["AvailabilityZone"] == ZONE
    assert [a["InstanceId"] for a in volume["Attachments"]] == [box["InstanceId"]]
    assert changes(proxy) == ["RunInstances", "AttachVolume"]  # no new volume
    assert [e["zone"] for e in proxy.requests if e["action"] == "RunInstances"] == [ZONE]


def test_a_box_with_a_data_volume_is_not_moved_to_another_zone(story, proxy, ec2m):
    boxes = {"gpubox_boxes": [{**BOX, "zones": [ZONE, OTHER], "data_volume": 30}]}
    run = play(story, proxy, "stop", None, **boxes)
    assert run.rc == 0, run.output[-3000:]
    proxy.clear()
    proxy.add_rule("StartInstances", "InsufficientInstanceCapacity", zone=ZONE)
    run = playbook("start", story["env"], "-e", "gpubox_allow_move=yes", extra=settings(**boxes))
    assert run.rc != 0 and "it has a data volume, which lives in us-west-2a and cannot follow it" in run.failure()
    assert [e["action"] for e in proxy.requests if e["action"] in ("CreateImage", "RunInstances")] == []
    assert instance(ec2m)["State"]["Name"] == "stopped"
    run = play(story, proxy, "start", None, **boxes)
    assert run.rc == 0 and instance(ec2m)["State"]["Name"] == "running"


def test_a_foreign_lookalike_volume_is_never_touched(story, proxy, ec2m):
    foreign = ec2m.create_volume(
        AvailabilityZone=ZONE,
        Size=1,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [{"Key": "DataOf", "Value": "keep"}, {"Key": "Project", "Value": PROJECT}],
            }
        ],
    )["VolumeId"]
    try:
        run = play(story, proxy, "terminate", None, "-e", "gpubox_confirm=yes", "-e", "gpubox_delete_data=yes")
        assert run.rc == 0, run.output[-3000:]
        assert changes(proxy) == ["TerminateInstances", "DeleteVolume"]
        assert [v["VolumeId"] for v in data_volumes(ec2m)] == [foreign]  # the box's volume is gone, not this one
    finally:
        ec2m.delete_volume(VolumeId=foreign)


def test_a_kept_volume_follows_a_box_declared_in_another_zone_through_a_snapshot(story, proxy, ec2m):
    run = play(story, proxy, "provision")
    assert run.rc == 0, run.output[-3000:]
    (old,) = data_volumes(ec2m)
    run = play(story, proxy, "terminate", None, "-e", "gpubox_confirm=yes")
    assert run.rc == 0 and data_volumes(ec2m)[0]["State"] == "available"
    run = play(story, proxy, "provision", {**BOX, "zones": [OTHER], "data_volume": 25})
    assert run.rc == 0, run.output[-3000:]
    told = said(run, "Say which boxes get their data volume back, and how")
    assert f"Box keep gets back its data volume {old['VolumeId']} (20 GiB, {ZONE}): none of its types and" in told
    assert "the volume moves to its zone through a snapshot" in told
    # launched as declared, then the copy: a snapshot, a volume from it there, the old one and the snapshot deleted
    assert changes(proxy) == [
        "RunInstances",
        "CreateSnapshot",
        "CreateVolume",
        "DeleteVolume",
        "DeleteSnapshot",
        "AttachVolume",
    ]
    (volume,) = data_volumes(ec2m)
    box = instance(ec2m)
    assert box["Placement"]["AvailabilityZone"] == volume["AvailabilityZone"] == OTHER
    assert volume["VolumeId"] != old["VolumeId"] and volume["Encrypted"] and volume["VolumeType"] == "gp3"
    assert volume["Size"] == 25  # the declared size (the copy of 20 GiB grown)
    assert tags(volume) == {"ManagedBy": "gpubox", "Project": PROJECT, "Name": "keep-data", "DataOf": "keep"}
    assert [a["InstanceId"] for a in volume["Attachments"]] == [box["InstanceId"]]
    assert tags(box)["DataVolume"] == volume["VolumeId"]
    assert ec2m.describe_snapshots(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["Snapshots"] == []
    moved = said(run, "Say what changed")
    assert f"its data volume moved from {ZONE} to {OTHER} through a snapshot: {volume['VolumeId']}" in moved
    run = play(story, proxy, "provision", {**BOX, "zones": [OTHER], "data_volume": 25})
    assert run.rc == 0 and changes(proxy) == []  # and stays
    run = play(story, proxy, "terminate", None, "-e", "gpubox_confirm=yes")
    assert run.rc == 0 and data_volumes(ec2m)[0]["State"] == "available"
    # a name that has only a kept volume: terminate.yml deletes it when asked
    run = play(story, proxy, "terminate", None, "-e", "gpubox_only=keep", "-e", "gpubox_confirm=yes")
    assert run.rc == 0 and changes(proxy) == [] and len(data_volumes(ec2m)) == 1
    run = play(story, proxy, "terminate", None, "-e", "gpubox_only=keep", "-e", "gpubox_confirm=yes", "-e",
               "gpubox_delete_data=yes")  # fmt: skip
    assert run.rc == 0 and changes(proxy) == ["DeleteVolume"] and data_volumes(ec2m) == []


def test_bad_settings_are_refused_before_anything_is_made(story, proxy):
    run = play(story, proxy, "provision", {**BOX, "data_volume": "lots"})
    assert run.rc != 0 and 'data_volume "lots"' in run.failure() and changes(proxy) == []
    run = play(story, proxy, "terminate", None, "-e", "gpubox_confirm=yes", gpubox_delete_data="maybe")
    assert run.rc != 0 and 'gpubox_delete_data is "maybe"' in run.failure() and changes(proxy) == []
