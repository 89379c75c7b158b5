"""Launch where the GPUs are: a box's candidates (instance types x markets x zones) are tried in order, each refusal
costs one request and is classified by EC2's error code (capacity: next candidate; quota: stop that quota, never
another zone for it; throttling: the same candidate again after a pause), and the settings that declare them are
refused, naming the value and the fix, before anything exists.

One ordered story against a local EC2 API of its own behind the fault proxy (tests/ground/ec2faults.py), which
refuses what each test's rules say exactly as EC2 does and never forwards a refused request. The playbooks reach the
API only through the proxy (AWS_ENDPOINT_URL); what they asked for is read from the proxy's log, what came of it
from the API. Each box has its own name and instance type, so that the rules of one box never touch another.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.stub import Stubber

from tests.conftest import ROOT, load_module
from tests.integration.ec2play import LIVE, SSH_CIDR, home_env, instances, playbook, tags

PROJECT = "pytest-failover"
REGION = "us-west-2"
ICE = "InsufficientInstanceCapacity"
# Throttled requests are repeated after 0.05 s, 0.1 s... instead of 1 s, 2 s...
FAST = {"ec2_launch_throttle_delay": 0.05}

launcher = load_module(ROOT / "plugins/modules/ec2_box_launch.py")
# What the launch and the start know of EC2's refusals (plugins/module_utils/gpubox_ec2.py).
refusals = load_module(ROOT / "plugins/module_utils/gpubox_ec2.py")
candidates_filter = load_module(ROOT / "plugins/filter/candidates.py")


@pytest.fixture(scope="module")
def story(proxy, tmp_path_factory):
    home = tmp_path_factory.mktemp("failover") / "home"
    return {"env": home_env(proxy.env, home)}


def settings(boxes: list[dict], **more) -> dict:
    return {"gpubox_project": PROJECT, "gpubox_ssh_cidr": SSH_CIDR, "gpubox_boxes": boxes, **FAST, **more}


def launches(proxy, instance_type: str | None = None) -> list[tuple[str, str, str, str]]:
    """(type, zone, market, outcome) of every RunInstances request the proxy saw (of one type), in order."""
    return [
        (e["instance_type"], e["zone"], e["market"], e["outcome"])
        for e in proxy.requests
        if e["action"] == "RunInstances" and instance_type in (None, e["instance_type"])
    ]


def box(ec2, name: str) -> dict:
    found = instances(
        ec2,
        ("tag:Name", [name]),
        ("tag:Project", [PROJECT]),
        ("tag:ManagedBy", ["gpubox"]),
        ("instance-state-name", LIVE),
    )
    assert len(found) == 1, found
    return found[0]


def placement(instance: dict) -> tuple[str, str, str]:
    return (
        instance["InstanceType"],
        instance["Placement"]["AvailabilityZone"],
        instance.get("InstanceLifecycle") or "on-demand",
    )


def launch_results(run) -> dict[str, dict]:
    """The launch task's result per box name."""
    for name, result in run.tasks():
        if name.endswith("Launch the new boxes"):
            return {r["item"]["name"]: r for r in result.get("results", [])}
    return {}


def printed(run, task: str) -> list[str]:
    for name, result in run.tasks():
        if name.endswith(task):
            return result.get("msg") or []
    return []


def made(ec2) -> dict[str, int]:
    return {
        "instances": len(instances(ec2, ("instance-state-name", LIVE))),
        "spot": len(ec2.describe_spot_instance_requests()["SpotInstanceRequests"]),
        "volumes": len(ec2.describe_volumes()["Volumes"]),
    }


# --- the settings are refused before anything exists -------------------------------------------------------------

REFUSALS = [
    ("market-empty", {"market": []}, ["market []", "empty", "on-demand, spot"]),
    ("market-twice", {"market": ["spot", "spot"]}, ['["spot", "spot"]', "twice"]),
    ("market-unknown", {"market": ["spot", "reserved"]}, ["'reserved'", "on-demand, spot"]),
    ("type-empty", {"instance_type": []}, ["instance_type []", "empty"]),
    ("type-twice", {"instance_type": ["g5.xlarge", "g5.xlarge"]}, ["twice"]),
    ("type-unknown", {"instance_type": ["g5.xlarge", "g5.huge"]}, ["'g5.huge'", "us-west-2"]),
    ("zone-other-region", {"zones": ["us-east-1a"]}, ['"us-east-1a"', "not a zone of us-west-2", "gpubox_region"]),
    ("zone-twice", {"zones": ["us-west-2a", "us-west-2a"]}, ["twice"]),
    ("zone-no-subnet", {"zones": ["us-west-2z"]}, ["'us-west-2z'", "create-default-subnet"]),
    (
        "type-not-in-zones",
        {"instance_type": ["g4dn.xlarge", "p3dn.24xlarge"], "zones": ["us-west-2a"]},
        ['"p3dn.24xlarge"', "us-west-2b, us-west-2c", "zones"],
    ),
    ("architectures", {"instance_type": ["g5.xlarge", "g5g.xlarge"]}, ["g5g.xlarge is arm64", "g5.xlarge is x86_64"]),
    ("autostop-true", {"autostop": True}, ["autostop true", "false"]),
    ("autostop-negative", {"autostop": -5}, ["autostop -5", "0 to 10080"]),
    ("max-hours", {"max_hours": 1.5}, ["max_hours 1.5", "whole number"]),
]


@pytest.mark.parametrize("box_settings, expected", [(b, x) for _, b, x in REFUSALS], ids=[i for i, _, _ in REFUSALS])
def test_a_bad_candidate_setting_is_refused_naming_the_value(story, ec2m, box_settings, expected):
    before = made(ec2m)
    run = playbook("provision", story["env"], extra=settings([{"name": "bad", **box_settings}]))
    assert run.rc != 0, run.output[-3000:]
    message = run.failure()
    for text in expected:
        assert text in message, message
    assert made(ec2m) == before


def test_a_bad_retry_time_is_refused(story, ec2m):
    before = made(ec2m)
    run = playbook("provision", story["env"], extra=settings([{"name": "ok"}], gpubox_launch_retry_minutes=-1))
    assert run.rc != 0
    assert "gpubox_launch_retry_minutes is -1" in run.failure()
    assert made(ec2m) == before


# --- failover, one run for the boxes that launch ------------------------------------------------------------------

BOXES = [
    # capacity in zone a -> zone b (zones given, in order)
    {"name": "hop", "instance_type": "g6.xlarge", "zones": ["us-west-2a", "us-west-2b"]},
    # every zone of the first type -> the second type
    {"name": "fallback", "instance_type": ["g5.2xlarge", "g4dn.2xlarge"], "autostop": 0, "max_hours": 8},
    # no spot capacity -> on-demand, because the box asks for it
    {"name": "spotty", "instance_type": "g5.xlarge", "market": ["spot", "on-demand"], "autostop": False},
    # throttled twice -> the same candidate succeeds
    {"name": "busy", "instance_type": "g6.2xlarge"},
    # no capacity anywhere in the first two rounds -> the third round (gpubox_launch_retry_minutes)
    {"name": "patient", "instance_type": "g6e.xlarge", "zones": ["us-west-2c"], "autostop": 15},
]


def test_each_box_fails_over_to_the_next_candidate_with_capacity(story, proxy, ec2m):
    proxy.clear()
    proxy.add_rule("RunInstances", ICE, instance_type="g6.xlarge", zone="us-west-2a")
    proxy.add_rule("RunInstances", ICE, instance_type="g5.2xlarge")
    proxy.add_rule("RunInstances", ICE, instance_type="g5.xlarge", market="spot", message="There is no Spot capacity")
    proxy.add_rule("RunInstances", "RequestLimitExceeded", instance_type="g6.2xlarge", times=2)
    proxy.add_rule("RunInstances", ICE, instance_type="g6e.xlarge", times=2)

    started = time.monotonic()
    run = playbook(
        "provision", story["env"], extra=settings(BOXES, gpubox_launch_retry_minutes=1, ec2_launch_retry_pause=1)
    )
    assert run.rc == 0, run.output[-4000:]
    assert time.monotonic() - started < 120

    # where each box is, and the order of the requests that put it there: one request per refusal (botocore's
    # own retries would have made three of each)
    assert launches(proxy, "g6.xlarge") == [
        ("g6.xlarge", "us-west-2a", "on-demand", ICE),
        ("g6.xlarge", "us-west-2b", "on-demand", "passed"),
    ]
    assert placement(box(ec2m, "hop")) == ("g6.xlarge", "us-west-2b", "on-demand")
    assert launches(proxy, "g5.2xlarge") == [
        ("g5.2xlarge", z, "on-demand", ICE) for z in ("us-west-2a", "us-west-2b", "us-west-2c")
    ]
    assert launches(proxy, "g4dn.2xlarge") == [("g4dn.2xlarge", "us-west-2a", "on-demand", "passed")]
    assert placement(box(ec2m, "fallback")) == ("g4dn.2xlarge", "us-west-2a", "on-demand")
    assert launches(proxy, "g5.xlarge") == [
        ("g5.xlarge", "us-west-2a", "spot", ICE),
        ("g5.xlarge", "us-west-2b", "spot", ICE),
        ("g5.xlarge", "us-west-2c", "spot", ICE),
        ("g5.xlarge", "us-west-2a", "on-demand", "passed"),
    ]
    assert placement(box(ec2m, "spotty")) == ("g5.xlarge", "us-west-2a", "on-demand")
    assert launches(proxy, "g6.2xlarge") == [
        ("g6.2xlarge", "us-west-2a", "on-demand", "RequestLimitExceeded"),
        ("g6.2xlarge", "us-west-2a", "on-demand", "RequestLimitExceeded"),
        ("g6.2xlarge", "us-west-2a", "on-demand", "passed"),
    ]
    assert placement(box(ec2m, "busy")) == ("g6.2xlarge", "us-west-2a", "on-demand")
    assert [o for *_, o in launches(proxy, "g6e.xlarge")] == [ICE, ICE, "passed"]
    assert placement(box(ec2m, "patient")) == ("g6e.xlarge", "us-west-2c", "on-demand")

    # what was chosen is on the instance, with the box's autostop settings, and in the module's result
    assert {k: v for k, v in tags(box(ec2m, "fallback")).items() if k not in ("ManagedBy", "Project", "Name")} == {
        "SshUser": "ubuntu",
        "InstanceType": "g4dn.2xlarge",
        "Zone": "us-west-2a",
        "Market": "on-demand",
        "Autostop": "0",
        "MaxHours": "8",
        "Image": "ubuntu-24.04",
    }
    assert tags(box(ec2m, "spotty"))["Autostop"] == "0"
    assert (tags(box(ec2m, "hop"))["Autostop"], tags(box(ec2m, "hop"))["MaxHours"]) == ("60", "0")
    assert tags(box(ec2m, "patient"))["Autostop"] == "15"
    volume_id = box(ec2m, "fallback")["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    assert "Zone" not in tags(ec2m.describe_volumes(VolumeIds=[volume_id])["Volumes"][0])  # the instance's only
    results = launch_results(run)
    assert results["fallback"]["choice"] == {
        "instance_type": "g4dn.2xlarge",
        "zone": "us-west-2a",
        "market": "on-demand",
        "index": 4,
        "of": 6,
        "first_choice": False,
    }
    assert results["busy"]["choice"]["first_choice"] is True
    assert [a["outcome"] for a in results["busy"]["attempt_log"]] == ["throttled", "throttled", "launched"]
    assert results["patient"]["attempts"] == 3  # Ansible's count of module runs: two rounds failed, the third launched

    # the role says which candidate won, and which were tried before
    lines = printed(run, "Say where each new box was launched")
    assert "Box 'hop': launched as g6.xlarge in us-west-2b, on-demand - NOT its first choice" in "\n".join(lines)
    assert any(
        line.startswith("Box 'busy': launched as g6.2xlarge in us-west-2a, on-demand, its first choice")
        for line in lines
    ), lines
    assert any("Box 'patient'" in line and "round 3" in line for line in lines), lines
    (spotty,) = [n for n, line in enumerate(lines) if line.startswith("Box 'spotty'")]
    assert lines[spotty + 1].split() == ["#", "type", "zone", "market", "outcome"]
    assert lines[spotty + 2].split() == ["1", "g5.xlarge", "us-west-2a", "spot", "capacity:", ICE]
    story["placed"] = {b["name"]: box(ec2m, b["name"])["InstanceId"] for b in BOXES}


def test_a_rerun_launches_nothing_even_where_a_later_choice_won(story, proxy, ec2m):
    proxy.clear()
    before = made(ec2m)
    run = playbook("provision", story["env"], extra=settings(BOXES))
    assert run.rc == 0, run.output[-4000:]
    assert run.stats["changed"] == 0, [n for n, r in run.tasks() if r.get("changed")]
    assert launches(proxy) == []
    assert made(ec2m) == before
    assert {b["name"]: box(ec2m, b["name"])["InstanceId"] for b in BOXES} == story["placed"]


# --- failures: one run for the boxes that cannot launch -----------------------------------------------------------


def test_a_quota_stops_its_market_and_no_capacity_anywhere_fails_with_the_attempts(story, proxy, ec2m):
    proxy.clear()
    proxy.add_rule("RunInstances", "VcpuLimitExceeded", instance_type="g5.4xlarge")
    proxy.add_rule("RunInstances", ICE, instance_type="g4dn.xlarge")
    proxy.add_rule("RunInstances", ICE, instance_type="g5.2xlarge")
    before = made(ec2m)
    boxes = [
        # a quota: no other zone, and no other type of the same quota (G and VT, on-demand)
        {"name": "capped", "instance_type": ["g5.4xlarge", "g6.4xlarge"]},
        # spot only: no capacity anywhere, and no on-demand since the box does not ask for it
        {"name": "nowhere", "instance_type": ["g4dn.xlarge", "g5.2xlarge"], "market": "spot"},
    ]
    run = playbook("provision", story["env"], extra=settings(boxes))
    assert run.rc != 0

    assert launches(proxy) == [
        ("g5.4xlarge", "us-west-2a", "on-demand", "VcpuLimitExceeded"),
        *[("g4dn.xlarge", z, "spot", ICE) for z in ("us-west-2a", "us-west-2b", "us-west-2c")],
        *[("g5.2xlarge", z, "spot", ICE) for z in ("us-west-2a", "us-west-2b", "us-west-2c")],
    ]
    results = launch_results(run)
    capped = results["capped"]["msg"]
    assert "VcpuLimitExceeded" in capped and "L-DB2E81BA" in capped
    assert "https://us-west-2.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-DB2E81BA" in capped
    assert "no other zone" in capped
    rows = [line.split() for line in capped.splitlines() if line[:1].isdigit()]
    assert [r[:4] for r in rows] == [
        ["1", "g5.4xlarge", "us-west-2a", "on-demand"],
        ["2", "g5.4xlarge", "us-west-2b", "on-demand"],
        ["3", "g5.4xlarge", "us-west-2c", "on-demand"],
        *[
            [str(n), "g6.4xlarge", z, "on-demand"]
            for n, z in enumerate(("us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"), 4)
        ],
    ]
    assert rows[0][4:] == ["quota:", "VcpuLimitExceeded"] and all(r[4:6] == ["not", "tried:"] for r in rows[1:])

    nowhere = results["nowhere"]["msg"]
    assert "none of its 6 candidates could be launched" in nowhere and "nothing was created" in nowhere
    assert nowhere.count(f"capacity: {ICE}") == 6
    assert "market: [spot, on-demand]" in nowhere and "gpubox_launch_retry_minutes" in nowhere
    assert results["nowhere"]["retry"] is False

    # nothing half-made: no instance, spot request or volume
    assert made(ec2m) == before
    for name in ("capped", "nowhere"):
        assert instances(ec2m, ("tag:Name", [name])) == []


# --- the pieces, without the API -----------------------------------------------------------------------------------


def test_error_codes_are_classified():
    for code in ("InsufficientInstanceCapacity", "InsufficientHostCapacity", "Unsupported", "SpotMaxPriceTooLow"):
        assert refusals.classify(code) == "capacity", code
    for code in ("VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded"):
        assert refusals.classify(code) == "quota", code
    assert refusals.classify("RequestLimitExceeded") == "throttled"
    assert refusals.classify("InvalidAMIID.NotFound") == "error"


def test_a_quota_closes_only_what_it_covers():
    g_od = {"instance_type": "g5.xlarge", "market": "on-demand"}
    p_od = {"instance_type": "p4d.24xlarge", "market": "on-demand"}
    g_spot = {"instance_type": "g6.xlarge", "market": "spot"}
    vcpu = refusals.quota_scope("VcpuLimitExceeded", g_od)
    assert refusals.in_scope(vcpu, {"instance_type": "g6.xlarge", "market": "on-demand"})
    assert not refusals.in_scope(vcpu, p_od) and not refusals.in_scope(vcpu, g_spot)
    spot = refusals.quota_scope("MaxSpotInstanceCountExceeded", g_spot)
    assert refusals.in_scope(spot, {"instance_type": "p4d.24xlarge", "market": "spot"})
    assert not refusals.in_scope(spot, g_od)
    assert refusals.in_scope(refusals.quota_scope("VolumeLimitExceeded", g_od), g_spot)
    text = refusals.quota_text("eu-west-1", "MaxSpotInstanceCountExceeded", g_spot)
    assert "L-3819A6DF" in text and "https://eu-west-1.console.aws.amazon.com/servicequotas/home/services/ec2/" in text


@pytest.fixture
def stubbed():
    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ec2) as stub:
        yield ec2, stub
        stub.assert_no_pending_responses()


BOX = {
    "name": "sb",
    "project": PROJECT,
    "image_id": "ami-1",
    "key_name": "gpubox",
    "security_group_ids": ["sg-1"],
    "root_device_name": "/dev/sda1",
    "volume_size": 64,
    "tags": {"ManagedBy": "gpubox", "Project": PROJECT, "Name": "sb"},
    "instance_tags": {"Autostop": "60"},
    "throttle_retries": 2,
    "throttle_delay": 0.0,
}


def candidate(itype: str, zone: str, market: str = "on-demand") -> dict:
    return {"instance_type": itype, "zone": zone, "market": market, "subnet_id": f"subnet-{zone[-1]}"}


def test_throttling_is_bounded_and_other_errors_stop_at_once(stubbed):
    ec2, stub = stubbed
    for _ in range(3):  # the first request and two repeats
        stub.add_client_error("run_instances", "RequestLimitExceeded", "Request limit exceeded.", 503)
    with pytest.raises(launcher.NoCandidateError) as caught:
        launcher.try_candidates(
            ec2, REGION, BOX, [candidate("g5.xlarge", "us-west-2a")], {"subnet-a": True}, [], sleep=lambda s: None
        )
    assert [a["outcome"] for a in caught.value.attempts] == ["throttled", "throttled", "error"]
    assert caught.value.kind == "error" and "run again in a few minutes" in str(caught.value)

    stub.add_client_error("run_instances", "InvalidKeyPair.NotFound", "The key pair 'gpubox' does not exist")
    with pytest.raises(launcher.NoCandidateError) as caught:
        launcher.try_candidates(
            ec2,
            REGION,
            BOX,
            [candidate("g5.xlarge", "us-west-2a"), candidate("g5.xlarge", "us-west-2b")],
            {"subnet-a": True, "subnet-b": True},
            [],
        )
    assert [a["outcome"] for a in caught.value.attempts] == ["error"]  # not another zone
    assert "The key pair 'gpubox' does not exist" in str(caught.value)


def test_a_vcpu_quota_skips_its_class_and_tries_another(stubbed):
    ec2, stub = stubbed
    stub.add_client_error("run_instances", "VcpuLimitExceeded", "You have requested more vCPU capacity")
    stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-1", "State": {"Name": "pending"}}]})
    order = [
        candidate("g5.xlarge", "us-west-2a"),
        candidate("g6.xlarge", "us-west-2a"),
        candidate("p4d.24xlarge", "us-west-2a"),
    ]
    instance, _, index, attempts = launcher.try_candidates(ec2, REGION, BOX, order, {"subnet-a": True}, [])
    assert instance["InstanceId"] == "i-1" and index == 2
    assert [a["outcome"] for a in attempts] == ["quota", "skipped", "launched"]
    table = launcher.attempt_table(attempts)
    assert table[0].split() == ["#", "type", "zone", "market", "outcome"]
    assert table[2].split()[:5] == ["2", "g6.xlarge", "us-west-2a", "on-demand", "not"]


def test_every_request_carries_the_candidate_on_the_instance_only(stubbed):
    ec2, stub = stubbed
    stub.add_client_error("run_instances", ICE, "no capacity", 500)
    stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-2", "State": {"Name": "pending"}}]})
    order = [candidate("g5.xlarge", "us-west-2a", "spot"), candidate("g5.xlarge", "us-west-2b", "spot")]
    launcher.try_candidates(ec2, REGION, BOX, order, {"subnet-a": True, "subnet-b": True}, [])
    # what the second request carried (the Stubber keeps no log of requests: the same request, rebuilt)
    one = {**BOX, "instance_type": "g5.xlarge", "subnet_id": "subnet-b", "market": "spot"}
    one["instance_tags"] = {"Autostop": "60", "InstanceType": "g5.xlarge", "Zone": "us-west-2b", "Market": "spot"}
    specs = {
        s["ResourceType"]: {t["Key"] for t in s["Tags"]}
        for s in launcher.launch_request(one, True)["TagSpecifications"]
    }
    assert specs["instance"] >= {"Autostop", "InstanceType", "Zone", "Market", "Name"}
    assert specs["volume"] == specs["spot-instances-request"] == {"ManagedBy", "Project", "Name"}
    with pytest.raises(launcher.LaunchError, match="Zone"):
        launcher.instance_only_tags(BOX["tags"], {"Zone": "elsewhere"})


def test_runinstances_is_made_once_per_call():
    """The client the module launches with makes one attempt: a 500 or 503 comes back at once, not after botocore's
    three (tests/unit/test_ec2faults.py shows botocore's default)."""

    class Module:  # what AnsibleAWSModule.client does with a config
        def client(self, service, config=None):
            return boto3.client(
                service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x", config=config
            )

    client = refusals.single_attempt_client(Module())
    assert client.meta.config.retries["total_max_attempts"] == 1


def test_candidates_are_types_then_markets_then_zones():
    box = candidates_filter.box_lists(
        {"name": "b", "instance_type": ["g6.xlarge", "g5.xlarge"], "market": ["spot", "on-demand"], "autostop": False}
    )
    assert (box["zones"], box["autostop"], box["max_hours"]) == ([], 0, 0)
    offered = {"g6.xlarge": ["us-west-2a", "us-west-2b", "us-west-2d"], "g5.xlarge": ["us-west-2c"]}
    subnets = [
        {"availability_zone": z, "subnet_id": f"subnet-{z[-1]}"} for z in ("us-west-2b", "us-west-2a", "us-west-2c")
    ]
    places = candidates_filter.launch_candidates(box, offered, subnets)
    assert [(c["instance_type"], c["market"], c["zone"]) for c in places["candidates"]] == [
        ("g6.xlarge", "spot", "us-west-2a"),
        ("g6.xlarge", "spot", "us-west-2b"),
        ("g6.xlarge", "on-demand", "us-west-2a"),
        ("g6.xlarge", "on-demand", "us-west-2b"),
        ("g5.xlarge", "spot", "us-west-2c"),
        ("g5.xlarge", "on-demand", "us-west-2c"),
    ]
    assert places["candidates"][0]["subnet_id"] == "subnet-a"
    zoned = candidates_filter.launch_candidates(dict(box, zones=["us-west-2b", "us-west-2a"]), offered, subnets)
    assert [c["zone"] for c in zoned["candidates"]] == ["us-west-2b", "us-west-2a"] * 2
    assert zoned["impossible"] == [{"instance_type": "g5.xlarge", "why": "not in zones", "zones": ["us-west-2c"]}]
    only_d = candidates_filter.launch_candidates(
        dict(box, instance_types=["g6.xlarge"]), {"g6.xlarge": ["us-west-2d"]}, subnets
    )
    assert only_d == {
        "candidates": [],
        "impossible": [{"instance_type": "g6.xlarge", "why": "no subnet", "zones": ["us-west-2d"]}],
    }


def test_module_documents_every_option():
    import yaml

    doc = yaml.safe_load(launcher.DOCUMENTATION)
    assert set(doc["options"]) == set(launcher.ARGUMENT_SPEC)
    returned = yaml.safe_load(launcher.RETURN)
    assert {"choice", "attempt_log", "table", "retry"} <= set(returned)
    assert json.dumps(yaml.safe_load(launcher.EXAMPLES))
