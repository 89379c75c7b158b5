"""Start when the zone is out of GPUs: start.yml classifies StartInstances refusals as a launch does (capacity, quota,
throttling, other). A stopped box cannot leave its zone, so on a capacity refusal it tries the box's other declared
instance types there (each checked first: offered in the zone, same architecture, a GPU), changing the stopped
instance's type; with gpubox_launch_retry_minutes it goes over them again; when nothing starts, the box keeps its type
and the failure shows every attempt and what to try next.

One ordered story against a local EC2 API of its own behind the fault proxy (tests/ground/ec2faults.py), which
refuses StartInstances for an instance's type, zone and market exactly as EC2 does and never forwards a refused
request. What the playbooks asked for is read from the proxy's log, what came of it from the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, load_module
from tests.integration.ec2play import SSH_CIDR, instances, live_box, playbook, provisioned, tags

PROJECT = "pytest-start"
ICE = "InsufficientInstanceCapacity"
ZONE = "us-west-2a"
# The declaration: three GPU types (all offered in us-west-2a), in order of preference.
TYPES = ["g4dn.xlarge", "g5.xlarge", "g6.xlarge"]
BOXES = [
    {"name": "day", "instance_type": TYPES, "zones": [ZONE]},
    {"name": "night", "instance_type": "g4dn.2xlarge", "zones": [ZONE], "market": "spot"},
]
FAST = {"ec2_power_throttle_delay": 0.05}

starter = load_module(ROOT / "plugins/modules/ec2_box_start.py")


@pytest.fixture(scope="module")
def story(proxy, tmp_path_factory):
    env, _run = provisioned(proxy.env, tmp_path_factory.mktemp("start") / "home", settings())
    return {"env": env}


def settings(boxes: list[dict] | None = None, **more) -> dict:
    return {"gpubox_project": PROJECT, "gpubox_ssh_cidr": SSH_CIDR, "gpubox_boxes": boxes or BOXES, **FAST, **more}


def box(ec2, name: str) -> dict:
    return live_box(ec2, PROJECT, name)


def starts(proxy) -> list[tuple[str, str, str, str]]:
    """(type, zone, market, outcome) of every StartInstances request the proxy saw, in order."""
    return [
        (e["instance_type"], e["zone"], e["market"], e["outcome"])
        for e in proxy.requests
        if e["action"] == "StartInstances"
    ]


def stopped(story, proxy, ec2m, *names: str) -> None:
    """The boxes stopped (and the proxy's rules and log empty)."""
    only = ["-e", f"gpubox_only={','.join(names)}"]
    run = playbook("stop", story["env"], *only, extra=settings())
    assert run.rc == 0, run.output[-3000:]
    assert {box(ec2m, n)["State"]["Name"] for n in names} == {"stopped"}
    proxy.clear()


def start(story, *names: str, **more):
    return playbook("start", story["env"], "-e", f"gpubox_only={','.join(names)}", extra=settings(**more))


def printed(run, task: str) -> list[str]:
    for name, result in run.tasks():
        if name.endswith(task):
            return result.get("msg") or []
    return []


def test_a_box_whose_zone_has_no_capacity_for_its_type_starts_as_its_next_declared_type(story, proxy, ec2m):
    stopped(story, proxy, ec2m, "day")
    assert box(ec2m, "day")["InstanceType"] == "g4dn.xlarge"
    proxy.add_rule("StartInstances", ICE, instance_type="g4dn.xlarge", zone=ZONE)
    run = start(story, "day")
    assert run.rc == 0, run.output[-4000:]
    # one request per refusal (botocore's own retries would have made three), then the next type there
    assert starts(proxy) == [("g4dn.xlarge", ZONE, "on-demand", ICE), ("g5.xlarge", ZONE, "on-demand", "passed")]
    day = box(ec2m, "day")
    assert (day["State"]["Name"], day["InstanceType"], day["Placement"]["AvailabilityZone"]) == (
        "running",
        "g5.xlarge",
        ZONE,
    )
    assert tags(day)["InstanceType"] == "g5.xlarge"  # the tag follows the type
    (note,) = printed(run, "Say which boxes started in another instance type, or moved")
    assert "Box 'day' started as a g5.xlarge: its zone us-west-2a had no capacity for its g4dn.xlarge" in note
    assert "capacity: InsufficientInstanceCapacity" in note and "started" in note
    entries = Path(story["env"]["HOME"]) / ".ssh" / "gpubox" / f"{PROJECT}.conf"
    assert f"HostName {day['PublicIpAddress']}" in entries.read_text()  # the ssh config follows the new address


def test_when_no_type_starts_the_box_keeps_its_type_and_the_failure_says_what_was_tried(story, proxy, ec2m):
    stopped(story, proxy, ec2m, "day")
    before = box(ec2m, "day")["InstanceType"]
    proxy.add_rule("StartInstances", ICE, zone=ZONE)
    run = start(story, "day")
    assert run.rc != 0
    assert [s[0] for s in starts(proxy)] == ["g5.xlarge", "g4dn.xlarge", "g6.xlarge"]  # its own type first
    message = run.failure()
    assert f"Box day ({box(ec2m, 'day')['InstanceId']}) could not be started in {ZONE} (3 requests" in message
    assert f"it is stopped, as before, as a {before}" in message
    for itype in ("g5.xlarge", "g4dn.xlarge", "g6.xlarge"):
        assert f"{itype}" in message
    assert message.count("capacity: InsufficientInstanceCapacity") == 3
    assert "gpubox_launch_retry_minutes=30" in message and "cannot move to another zone" in message
    day = box(ec2m, "day")
    assert (day["State"]["Name"], day["InstanceType"], tags(day)["InstanceType"]) == ("stopped", before, before)


def test_with_retry_minutes_the_types_are_tried_again_until_one_starts(story, proxy, ec2m):
    proxy.clear()
    proxy.add_rule("StartInstances", ICE, zone=ZONE, times=4)  # round 1: all three; round 2: the first
    run = start(story, "day", gpubox_launch_retry_minutes=1, ec2_power_retry_pause=1)
    assert run.rc == 0, run.output[-4000:]
    assert [s[3] for s in starts(proxy)] == [ICE, ICE, ICE, ICE, "passed"]
    assert [s[0] for s in starts(proxy)] == ["g5.xlarge", "g4dn.xlarge", "g6.xlarge", "g5.xlarge", "g4dn.xlarge"]
    assert box(ec2m, "day")["State"]["Name"] == "running"


def test_a_quota_skips_the_types_it_covers_and_is_named(story, proxy, ec2m):
    stopped(story, proxy, ec2m, "day")
    proxy.add_rule("StartInstances", ICE, zone=ZONE, instance_type=box(ec2m, "day")["InstanceType"])
    proxy.add_rule("StartInstances", "VcpuLimitExceeded", zone=ZONE)
    run = start(story, "day")
    assert run.rc != 0
    assert [s[3] for s in starts(proxy)] == [ICE, "VcpuLimitExceeded"]  # the third type is G too: not tried
    message = run.failure()
    assert "not tried: the quota that refused #2 covers it" in message
    assert "L-DB2E81BA" in message and "Running On-Demand G and VT instances" in message


def test_declared_types_the_box_cannot_take_are_skipped_with_the_reason(story, proxy, ec2m):
    proxy.clear()
    proxy.add_rule("StartInstances", ICE, zone=ZONE)
    declared = [box(ec2m, "day")["InstanceType"], "p3dn.24xlarge", "g5g.xlarge", "t3.medium", "g6.xlarge"]
    run = start(story, "day", gpubox_boxes=[{**BOXES[0], "instance_type": declared}, BOXES[1]])
    assert run.rc != 0
    message = run.failure()
    assert "p3dn.24xlarge" in message and f"not tried: not offered in {ZONE}" in message
    assert "g5g.xlarge" in message and "not tried: not x86_64, the architecture of the box's image" in message
    assert "t3.medium" in message and "not tried: no GPU" in message
    assert [s[0] for s in starts(proxy)] == [declared[0], "g6.xlarge"]  # only the types it can take were asked


def test_a_spot_box_is_started_again_in_its_own_type_only(story, proxy, ec2m):
    stopped(story, proxy, ec2m, "night")
    message = "There is no Spot capacity available that matches your request."
    proxy.add_rule("StartInstances", ICE, market="spot", message=message)
    run = start(story, "night", gpubox_boxes=[BOXES[0], {**BOXES[1], "instance_type": ["g4dn.2xlarge", "g5.2xlarge"]}])
    assert run.rc != 0
    assert starts(proxy) == [("g4dn.2xlarge", ZONE, "spot", ICE)]
    failure = run.failure()
    assert "g5.2xlarge" in failure and "not tried: a spot box's type cannot change" in failure
    assert box(ec2m, "night")["InstanceType"] == "g4dn.2xlarge"
    proxy.clear()
    assert start(story, "night").rc == 0
    assert box(ec2m, "night")["State"]["Name"] == "running"


def test_a_throttled_start_is_repeated_and_nothing_else_is_tried(story, proxy, ec2m):
    stopped(story, proxy, ec2m, "day")
    itype = box(ec2m, "day")["InstanceType"]
    proxy.add_rule("StartInstances", "RequestLimitExceeded", times=2)
    run = start(story, "day")
    assert run.rc == 0, run.output[-4000:]
    assert [s[3] for s in starts(proxy)] == ["RequestLimitExceeded", "RequestLimitExceeded", "passed"]
    assert box(ec2m, "day")["InstanceType"] == itype


def test_any_other_refusal_stops_at_once_with_awss_message(story, proxy, ec2m):
    stopped(story, proxy, ec2m, "day")
    proxy.add_rule(
        "StartInstances", "UnauthorizedOperation", message="You are not authorized to perform this operation."
    )
    run = start(story, "day")
    assert run.rc != 0
    assert len(starts(proxy)) == 1
    assert "UnauthorizedOperation: You are not authorized to perform this operation." in run.failure()


def test_check_mode_and_bad_settings_start_nothing(story, proxy, ec2m):
    proxy.clear()
    assert box(ec2m, "day")["State"]["Name"] == "stopped"
    run = playbook("start", story["env"], "--check", "-e", "gpubox_only=day", extra=settings())
    assert run.rc == 0 and starts(proxy) == []
    run = start(story, "day", gpubox_launch_retry_minutes="soon")
    assert run.rc != 0 and 'gpubox_launch_retry_minutes is "soon"' in run.failure()
    assert starts(proxy) == [] and box(ec2m, "day")["State"]["Name"] == "stopped"
    assert start(story, "day").rc == 0


OTHER = "us-west-2b"


def images_of(ec2, name: str) -> list[dict]:
    return ec2.describe_images(
        Owners=["self"],
        Filters=[{"Name": "tag:SourceBox", "Values": [name]}, {"Name": "tag:Project", "Values": [PROJECT]}],
    )["Images"]


def test_allow_move_tries_another_zone_and_keeps_the_old_box_until_the_new_one_answers_over_ssh(story, proxy, ec2m):
    stopped(story, proxy, ec2m, "day")
    old = box(ec2m, "day")
    proxy.add_rule("StartInstances", ICE, zone=ZONE)
    movable = [{**BOXES[0], "zones": [ZONE, OTHER]}, BOXES[1]]
    # The local EC2 API's addresses lead nowhere: the new instance never answers over SSH.
    run = start(story, "day", gpubox_boxes=movable, gpubox_allow_move="yes", ec2_power_ssh_timeout=1)
    assert run.rc != 0
    (said,) = [r["msg"] for name, r in run.tasks() if name.endswith("Say what gpubox_allow_move=yes does")]
    assert "moves to another of its zones" in said and "only once the new one answers over SSH" in said
    launches = [e for e in proxy.requests if e["action"] == "RunInstances"]
    assert [(e["instance_type"], e["zone"], e["outcome"]) for e in launches] == [(old["InstanceType"], OTHER, "passed")]
    failure = run.failure()
    assert f"the box's image launched in {OTHER}, but the new instance did not answer over SSH" in failure
    assert f"it is stopped in {ZONE}, as before, as a {old['InstanceType']}" in failure
    # the old instance is the box, untouched; the new one is terminated, the image and its snapshots deleted
    now = box(ec2m, "day")
    assert (now["InstanceId"], now["State"]["Name"], now["Placement"]["AvailabilityZone"]) == (
        old["InstanceId"],
        "stopped",
        ZONE,
    )
    moved = instances(ec2m, ("tag:Name", ["day"]), ("tag:Project", [PROJECT]), ("availability-zone", [OTHER]))
    assert len(moved) == 1 and moved[0]["State"]["Name"] in ("shutting-down", "terminated")
    assert tags(moved[0])["Zone"] == OTHER and tags(moved[0])["SshUser"] == tags(old)["SshUser"]
    assert tags(moved[0])["Autostop"] == tags(old)["Autostop"] and tags(moved[0])["Image"] == tags(old)["Image"]
    assert images_of(ec2m, "day") == []
    snapshots = ec2m.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:SourceBox", "Values": ["day"]}])
    assert snapshots["Snapshots"] == []


def test_allow_move_without_capacity_elsewhere_or_another_zone_leaves_the_box_as_it_was(story, proxy, ec2m):
    proxy.clear()
    old = box(ec2m, "day")
    assert old["State"]["Name"] == "stopped"
    proxy.add_rule("StartInstances", ICE, zone=ZONE)
    proxy.add_rule("RunInstances", ICE, zone=OTHER)
    movable = [{**BOXES[0], "zones": [ZONE, OTHER]}, BOXES[1]]
    run = start(story, "day", gpubox_boxes=movable, gpubox_allow_move="yes")
    assert run.rc != 0
    failure = run.failure()
    assert "moving it through an image of it failed (no other zone had capacity for its types)" in failure
    assert failure.count(f"{OTHER}") >= 3 and "The image is deleted again" in failure
    assert [e["zone"] for e in proxy.requests if e["action"] == "RunInstances"] == [OTHER] * 3
    assert images_of(ec2m, "day") == []
    now = box(ec2m, "day")
    assert (now["InstanceId"], now["State"]["Name"]) == (old["InstanceId"], "stopped")
    # its only declared zone is its own: nothing to move to, nothing made
    proxy.clear()
    proxy.add_rule("StartInstances", ICE, zone=ZONE)
    run = start(story, "day", gpubox_allow_move="yes")
    assert run.rc != 0 and "there is no other zone to move it to (its zones: us-west-2a)" in run.failure()
    assert [e["action"] for e in proxy.requests if e["action"] in ("CreateImage", "RunInstances")] == []
    # without the flag, the failure names it
    run = start(story, "day")
    assert run.rc != 0 and "with -e gpubox_allow_move=yes start.yml moves it" in run.failure()
    run = start(story, "day", gpubox_allow_move="maybe")
    assert run.rc != 0 and 'gpubox_allow_move is "maybe"' in run.failure()
    proxy.clear()
    assert start(story, "day").rc == 0


def test_a_moved_box_keeps_only_tags_of_gpuboxs_form():
    instance = {
        "Tags": [
            {"Key": "SshUser", "Value": "ubuntu"},
            {"Key": "Autostop", "Value": "60; rm -rf ~"},
            {"Key": "MaxHours", "Value": "3"},
            {"Key": "Image", "Value": "ubuntu-24.04"},
            {"Key": "Owner", "Value": "someone"},
        ]
    }
    assert starter.kept_tags(instance) == {"SshUser": "ubuntu", "MaxHours": "3", "Image": "ubuntu-24.04"}
    assert starter.kept_tags({"Tags": [{"Key": "SshUser", "Value": "-oProxyCommand=x"}]}) == {}


def test_the_module_documents_itself():
    import yaml

    doc = yaml.safe_load(starter.DOCUMENTATION)
    assert set(doc["options"]) - {"region"} >= set(starter.ARGUMENT_SPEC)
    assert yaml.safe_load(starter.EXAMPLES) and yaml.safe_load(starter.RETURN)


def test_a_moved_box_keeps_its_daily_stop_time():
    tags = [{"Key": "StopAt", "Value": "20:00 Europe/Berlin"}, {"Key": "SshUser", "Value": "ubuntu"}]
    assert starter.kept_tags({"Tags": tags}) == {"StopAt": "20:00 Europe/Berlin", "SshUser": "ubuntu"}
    assert starter.kept_tags({"Tags": [{"Key": "StopAt", "Value": ""}]}) == {"StopAt": ""}
    assert starter.kept_tags({"Tags": [{"Key": "StopAt", "Value": "20:00; reboot"}]}) == {}
