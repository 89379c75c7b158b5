"""The declaration is the truth after launch: provision.yml compares each declared box that exists with what AWS has,
prints the plan (box, setting, now, declared, what this run does), changes what can change in place (autostop,
max_hours and stop_at tags, a stopped box's type, a running box's type with gpubox_allow_restart=yes, a larger root
volume) and gives the commands for what cannot (market, image, zones, a smaller volume). Check mode prints the plan
and changes nothing; a rerun after the change has no plan.

One ordered story against a local EC2 API of its own behind the fault proxy: what the playbooks asked for is read
from the proxy's log, what came of it from the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.ec2play import SSH_CIDR, live_box, playbook, provisioned, tags

PROJECT = "pytest-update"
ZONE = "us-west-2a"
BOX = {"name": "day", "instance_type": "g4dn.xlarge", "zones": [ZONE], "autostop": 60, "max_hours": 0}
SPOT = {"name": "night", "instance_type": "g4dn.2xlarge", "zones": [ZONE], "market": "spot", "stop_at": "06:30"}
CHANGING = ("CreateTags", "ModifyInstanceAttribute", "ModifyVolume", "StopInstances", "StartInstances")


@pytest.fixture(scope="module")
def story(proxy, tmp_path_factory):
    env, _run = provisioned(proxy.env, tmp_path_factory.mktemp("update") / "home", settings())
    return {"env": env}


def settings(box: dict | None = None, **more) -> dict:
    return {"gpubox_project": PROJECT, "gpubox_ssh_cidr": SSH_CIDR, "gpubox_boxes": [box or BOX, SPOT], **more}


def provision(story, proxy, box: dict | None = None, *args: str, **more):
    proxy.clear()
    return playbook("provision", story["env"], *args, extra=settings(box, **more))


def instance(ec2, name: str = "day") -> dict:
    return live_box(ec2, PROJECT, name)


def plan(run) -> list[str]:
    for name, result in run.tasks():
        if name.endswith("Say what this run does about the boxes that exist"):
            return result.get("msg") or []
    return []


def rows(run) -> dict[str, list[str]]:
    """The plan's table: setting -> [now, declared] (the box is 'day' unless named)."""
    found = {}
    for line in plan(run)[2:]:
        if line.startswith("Next:"):
            break
        box, setting, now, declared, *_ = line.split()
        found[setting if box == "day" else f"{box} {setting}"] = [now, declared]
    return found


def changes(proxy) -> list[str]:
    return [e["action"] for e in proxy.requests if e["action"] in CHANGING]


def root_size(ec2, inst: dict) -> int:
    root = next(m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"])
    return ec2.describe_volumes(VolumeIds=[root])["Volumes"][0]["Size"]


def test_a_box_as_declared_has_no_plan_and_a_rerun_changes_nothing(story, proxy, ec2m):
    run = provision(story, proxy)
    assert run.rc == 0 and run.stats["changed"] == 0, run.output[-3000:]
    assert plan(run) == [] and changes(proxy) == []
    assert tags(instance(ec2m))["Image"] == "ubuntu-24.04"  # what the plan compares the image with


def test_check_mode_prints_the_plan_and_changes_nothing(story, proxy, ec2m):
    before = tags(instance(ec2m))
    everything = {**BOX, "autostop": 7, "max_hours": 3, "volume_size": 100, "instance_type": "g5.xlarge"}
    run = provision(story, proxy, everything, "--check", gpubox_allow_restart=True)
    assert run.rc == 0, run.output[-3000:]
    assert rows(run) == {
        "autostop": ["60", "7"],
        "max_hours": ["0", "3"],
        "instance_type": ["g4dn.xlarge", "g5.xlarge"],
        "volume_size": ["64", "100"],
    }
    assert changes(proxy) == [] and tags(instance(ec2m)) == before and root_size(ec2m, instance(ec2m)) == 64


def test_autostop_and_max_hours_follow_the_declaration(story, proxy, ec2m):
    run = provision(story, proxy, {**BOX, "autostop": 7, "max_hours": 3})
    assert run.rc == 0, run.output[-3000:]
    assert rows(run) == {"autostop": ["60", "7"], "max_hours": ["0", "3"]}
    assert "changes now; the box gets it at the next configure.yml" in plan(run)[2]
    assert {k: tags(instance(ec2m))[k] for k in ("Autostop", "MaxHours")} == {"Autostop": "7", "MaxHours": "3"}
    assert changes(proxy) == ["CreateTags"]
    again = provision(story, proxy, {**BOX, "autostop": 7, "max_hours": 3})
    assert plan(again) == [] and again.stats["changed"] == 0 and changes(proxy) == []


def test_stop_at_follows_the_declaration_and_is_turned_off_again(story, proxy, ec2m):
    box = {**BOX, "autostop": 7, "max_hours": 3}
    assert "StopAt" not in tags(instance(ec2m))  # launched with none: no tag
    assert tags(instance(ec2m, "night"))["StopAt"] == "06:30"  # launched with one: its tag
    run = provision(story, proxy, {**box, "stop_at": "20:00 Europe/Berlin"})
    assert run.rc == 0, run.output[-3000:]
    assert [line.split()[:4] for line in plan(run)[2:]] == [["day", "stop_at", "none", "20:00"]]
    assert "20:00 Europe/Berlin  changes now; the box gets it at the next configure.yml" in plan(run)[2]
    assert tags(instance(ec2m))["StopAt"] == "20:00 Europe/Berlin" and changes(proxy) == ["CreateTags"]
    again = provision(story, proxy, {**box, "stop_at": "20:00 Europe/Berlin"})
    assert plan(again) == [] and again.stats["changed"] == 0 and changes(proxy) == []
    off = provision(story, proxy, box)
    assert off.rc == 0 and [line.split()[:2] for line in plan(off)[2:]] == [["day", "stop_at"]]
    assert "20:00 Europe/Berlin  none  " in plan(off)[2]
    assert tags(instance(ec2m))["StopAt"] == "" and changes(proxy) == ["CreateTags"]


def test_a_running_box_changes_type_only_with_a_restart(story, proxy, ec2m):
    box = {**BOX, "instance_type": "g5.xlarge", "autostop": 7, "max_hours": 3}
    run = provision(story, proxy, box)
    assert run.rc == 0
    assert rows(run) == {"instance_type": ["g4dn.xlarge", "g5.xlarge"]}
    text = "\n".join(plan(run))
    assert "no change while it runs" in text and "-e gpubox_allow_restart=yes" in text
    assert "playbooks/stop.yml -e gpubox_only=day" in text
    assert changes(proxy) == [] and instance(ec2m)["InstanceType"] == "g4dn.xlarge"

    address = instance(ec2m).get("PublicIpAddress")
    run = provision(story, proxy, box, gpubox_allow_restart="yes")
    assert run.rc == 0, run.output[-4000:]
    assert changes(proxy) == ["StopInstances", "ModifyInstanceAttribute", "StartInstances", "CreateTags"]
    day = instance(ec2m)
    assert (day["State"]["Name"], day["InstanceType"], tags(day)["InstanceType"]) == (
        "running",
        "g5.xlarge",
        "g5.xlarge",
    )
    conf = (Path(story["env"]["HOME"]) / ".ssh" / "gpubox" / f"{PROJECT}.conf").read_text()
    assert f"HostName {day['PublicIpAddress']}" in conf and day["PublicIpAddress"] != address


def test_a_restart_into_a_type_without_capacity_brings_the_box_back_as_it_was(story, proxy, ec2m):
    box = {**BOX, "instance_type": "g6.xlarge", "autostop": 7, "max_hours": 3}
    proxy.clear()
    proxy.add_rule("StartInstances", "InsufficientInstanceCapacity", instance_type="g6.xlarge", zone=ZONE)
    run = playbook("provision", story["env"], extra=settings(box, gpubox_allow_restart=True))
    assert run.rc == 0, run.output[-4000:]
    outcomes = [(e["instance_type"], e["outcome"]) for e in proxy.requests if e["action"] == "StartInstances"]
    assert outcomes == [("g6.xlarge", "InsufficientInstanceCapacity"), ("g5.xlarge", "passed")]
    day = instance(ec2m)
    assert (day["State"]["Name"], day["InstanceType"]) == ("running", "g5.xlarge")
    notes = next(r["msg"] for n, r in run.tasks() if n.endswith("Say what changed"))
    assert "stopped to become a g6.xlarge, but its zone had no capacity for it: it kept its g5.xlarge" in notes[0]


def test_a_stopped_box_changes_type_before_its_next_start(story, proxy, ec2m):
    assert playbook("stop", story["env"], "-e", "gpubox_only=day", extra=settings()).rc == 0
    box = {**BOX, "instance_type": "g4dn.2xlarge", "autostop": 7, "max_hours": 3}
    run = provision(story, proxy, box)
    assert run.rc == 0, run.output[-4000:]
    assert rows(run) == {"instance_type": ["g5.xlarge", "g4dn.2xlarge"]}
    assert changes(proxy) == ["ModifyInstanceAttribute", "CreateTags"]
    day = instance(ec2m)
    assert (day["State"]["Name"], day["InstanceType"]) == ("stopped", "g4dn.2xlarge")
    assert playbook("start", story["env"], "-e", "gpubox_only=day", extra=settings(box)).rc == 0


def test_a_type_the_zone_does_not_offer_is_explained(story, proxy, ec2m):
    box = {**BOX, "instance_type": "p3dn.24xlarge", "autostop": 7, "max_hours": 3}
    run = provision(story, proxy, box)
    assert run.rc == 0
    text = "\n".join(plan(run))
    assert "cannot change in place" in text and f"none of p3dn.24xlarge is offered in its zone {ZONE}" in text
    assert changes(proxy) == []


def test_the_root_volume_grows_and_never_shrinks(story, proxy, ec2m):
    box = {**BOX, "instance_type": "g4dn.2xlarge", "autostop": 7, "max_hours": 3, "volume_size": 100}
    run = provision(story, proxy, box)
    assert run.rc == 0, run.output[-4000:]
    assert rows(run) == {"volume_size": ["64", "100"]} and changes(proxy) == ["ModifyVolume"]
    assert root_size(ec2m, instance(ec2m)) == 100
    shrink = provision(story, proxy, {**box, "volume_size": 80})
    assert shrink.rc == 0 and changes(proxy) == []
    assert "an EBS volume never shrinks: declare volume_size: 100 or more" in "\n".join(plan(shrink))
    assert root_size(ec2m, instance(ec2m)) == 100


@pytest.mark.parametrize(
    "change, setting, words",
    [
        ({"market": "spot"}, "market", "keeps the market it was launched in"),
        ({"image": "ubuntu-22.04"}, "image", "keeps the image it was launched from"),
        ({"zones": ["us-west-2b"]}, "zones", "cannot leave its zone in place"),
    ],
)
def test_what_only_a_new_launch_can_change_is_explained_with_the_commands(story, proxy, ec2m, change, setting, words):
    box = {**BOX, "instance_type": "g4dn.2xlarge", "autostop": 7, "max_hours": 3, "volume_size": 100, **change}
    run = provision(story, proxy, box)
    assert run.rc == 0, run.output[-4000:]
    assert list(rows(run)) == [setting]
    text = "\n".join(plan(run))
    assert words in text and "playbooks/terminate.yml -e gpubox_only=day -e gpubox_confirm=yes" in text
    assert changes(proxy) == []


def test_a_spot_box_keeps_its_type(story, proxy, ec2m):
    box = {**BOX, "instance_type": "g4dn.2xlarge", "autostop": 7, "max_hours": 3, "volume_size": 100}
    proxy.clear()
    spot = {**SPOT, "instance_type": "g5.2xlarge"}
    run = playbook("provision", story["env"], extra={**settings(box), "gpubox_boxes": [box, spot]})
    assert run.rc == 0
    assert rows(run) == {"night instance_type": ["g4dn.2xlarge", "g5.2xlarge"]}
    assert "a spot box's type cannot change" in "\n".join(plan(run)) and changes(proxy) == []


def test_a_bad_allow_restart_is_refused(story, proxy):
    run = provision(story, proxy, None, gpubox_allow_restart="maybe")
    assert run.rc != 0 and 'gpubox_allow_restart is "maybe"' in run.failure() and changes(proxy) == []
