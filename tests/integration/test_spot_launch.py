"""Boxes are complete from their first second: one RunInstances call each (spot boxes too), nothing changed after
the launch, no hand-made lookalike adopted, and terminate.yml cancels the project's spot requests, with or without
an instance, and only the project's.

One ordered story against a local EC2 API of its own, which records every request it gets: what gpubox asked for
is read from there (the local API does not keep a spot box's market options), what came of it from the API.
"""

from __future__ import annotations

import json
import re

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from tests.conftest import ROOT, load_module, run_local_play
from tests.ground.ec2api import TEST_AGENT, recorded_requests, request_params
from tests.integration.ec2play import SSH_CIDR, home_env, instances, playbook, root_volume_asked, tags

PROJECT = "pytest-spot"
SPOT = {"name": "sb", "market": "spot", "instance_type": "g5.xlarge", "volume_size": 80}
SETTINGS = {"gpubox_project": PROJECT, "gpubox_ssh_cidr": SSH_CIDR, "gpubox_boxes": [SPOT]}
OWN_TAGS = {"ManagedBy": "gpubox", "Project": PROJECT}
# The root volume the spot box asks for (RunInstances form parameters), less its device name.
ROOT_80_GIB = {
    "Ebs.VolumeSize": "80",
    "Ebs.VolumeType": "gp3",
    "Ebs.Encrypted": "true",
    "Ebs.DeleteOnTermination": "true",
}

launcher = load_module(ROOT / "plugins/modules/ec2_box_launch.py")


@pytest.fixture(scope="module")
def story(api, tmp_path_factory):
    home = tmp_path_factory.mktemp("spot") / "home"
    return {"env": home_env(api.env, home), "dir": home.parent}


def asked(api, action: str) -> list[dict[str, str]]:
    """Form parameters (first values) of every request of this action the playbooks made, in order; the tests'
    own requests (marked by their User-Agent) left out."""
    found = []
    for entry in recorded_requests(api.workdir):
        headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
        if TEST_AGENT in headers.get("user-agent", ""):
            continue
        params = request_params(entry)
        if params.get("Action") == [action]:
            found.append({k: v[0] for k, v in params.items()})
    return found


def actions_in_order(api) -> list[str]:
    return [
        (request_params(e).get("Action") or [""])[0]
        for e in recorded_requests(api.workdir)
        if TEST_AGENT not in {k.lower(): v for k, v in e.get("headers", {}).items()}.get("user-agent", "")
    ]


def tag_specifications(params: dict[str, str]) -> dict[str, dict[str, str]]:
    """TagSpecification.N.ResourceType / .Tag.M.Key / .Tag.M.Value as {resource type: {key: value}}."""
    found: dict[str, dict[str, str]] = {}
    for key, rtype in params.items():
        spec = re.fullmatch(r"TagSpecification\.(\d+)\.ResourceType", key)
        if spec:
            prefix = f"TagSpecification.{spec.group(1)}.Tag."
            keys = {k[len(prefix) :].split(".")[0] for k in params if k.startswith(prefix)}
            found[rtype] = {params[f"{prefix}{m}.Key"]: params[f"{prefix}{m}.Value"] for m in keys}
    return found


def mentions(params: dict[str, str], ids: set[str]) -> bool:
    return bool(ids & set(params.values()))


def box(ec2, name: str, project: str = PROJECT) -> dict:
    found = instances(
        ec2,
        ("tag:Name", [name]),
        ("tag:Project", [project]),
        ("tag:ManagedBy", ["gpubox"]),
        ("instance-state-name", ["pending", "running", "stopping", "stopped"]),
    )
    assert len(found) == 1, found
    return found[0]


def project_group(ec2) -> str:
    groups = ec2.describe_security_groups(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["SecurityGroups"]
    assert len(groups) == 1, groups
    return groups[0]["GroupId"]


def interface_groups(ec2, instance: dict) -> list[str]:
    (eni,) = [n for n in instance["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0]
    return [g["GroupId"] for g in eni["Groups"]]


def box_launch(story, play: str, **args) -> dict:
    """Run ec2_box_launch by itself (a one-task play on localhost) and return its result."""
    task = {"name": "launch", "gpubox.gpubox.ec2_box_launch": args}
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    env = dict(story["env"], ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    proc = run_local_play(story["dir"] / f"{play}.yml", plays, env=env)
    data = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{\n") :])[0]
    return data["plays"][0]["tasks"][0]["hosts"]["localhost"]


def launch_beside(story, ec2m, play: str, model: dict, **args) -> dict:
    """ec2_box_launch of a g4dn box of the project from the image, key and group of an existing box (`model`)."""
    spec = {
        "region": "us-west-2",
        "owner_tags": {"ManagedBy": "gpubox", "Project": PROJECT},
        "instance_type": "g4dn.xlarge",
        "image_id": model["ImageId"],
        "key_name": "gpubox",
        "security_group_ids": [project_group(ec2m)],
    }
    return box_launch(story, play, **spec, **args)


def test_spot_box_is_launched_complete_by_one_call(story, ec2m, api):
    run = playbook("provision", story["env"], extra=SETTINGS)
    assert run.rc == 0, run.output[-4000:]
    inst = box(ec2m, "sb")
    group = project_group(ec2m)
    (root,) = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"]]
    volume = ec2m.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]

    # What was asked: one RunInstances call with everything, and no spot request of the old kind.
    (launch,) = asked(api, "RunInstances")
    assert asked(api, "RequestSpotInstances") == []
    assert launch["ImageId"] == inst["ImageId"] and launch["InstanceType"] == "g5.xlarge"
    assert launch["KeyName"] == inst["KeyName"] == "gpubox"
    assert launch["MetadataOptions.HttpTokens"] == "required"
    assert launch["MetadataOptions.HttpEndpoint"] == "enabled"
    assert launch["MetadataOptions.HttpPutResponseHopLimit"] == "2"
    assert [v for k, v in launch.items() if "SecurityGroupId" in k] == [group]
    assert root_volume_asked(launch) == ROOT_80_GIB | {"DeviceName": inst["RootDeviceName"]}
    assert launch["InstanceMarketOptions.MarketType"] == "spot"
    assert launch["InstanceMarketOptions.SpotOptions.SpotInstanceType"] == "persistent"
    assert launch["InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"] == "stop"
    assert launch["InstanceInitiatedShutdownBehavior"] == "stop"
    assert launch["ClientToken"].startswith("gpubox-") and len(launch["ClientToken"]) <= 64
    wanted = {**OWN_TAGS, "Name": "sb", "SshUser": "ubuntu"}
    # the instance also says what it was launched as (its candidate) and carries the box's autostop settings
    chosen = {"InstanceType": "g5.xlarge", "Zone": inst["Placement"]["AvailabilityZone"], "Market": "spot"}
    on_instance = {**wanted, **chosen, "Autostop": "60", "MaxHours": "0", "Image": "ubuntu-24.04"}  # as declared
    assert tag_specifications(launch) == {
        "instance": on_instance,
        **dict.fromkeys(("volume", "network-interface", "spot-instances-request"), wanted),
    }

    # Nothing was changed after the launch.
    ids = {inst["InstanceId"], volume["VolumeId"], *(n["NetworkInterfaceId"] for n in inst["NetworkInterfaces"])}
    assert [p for p in asked(api, "CreateTags") if mentions(p, ids)] == []
    for action in ("ModifyInstanceMetadataOptions", "ModifyInstanceAttribute", "ModifyNetworkInterfaceAttribute"):
        assert [p for p in asked(api, action) if mentions(p, ids)] == [], action

    # What came of it.
    assert inst["State"]["Name"] == "running"
    assert inst.get("InstanceLifecycle") == "spot"
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    assert tags(inst) == on_instance
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [group]
    assert interface_groups(ec2m, inst) == [group]
    assert inst.get("PublicIpAddress")
    assert inst["ClientToken"] == launch["ClientToken"]
    assert root["Ebs"]["DeleteOnTermination"] is True
    assert (volume["Size"], volume["VolumeType"], volume["Encrypted"]) == (80, "gp3", True)
    assert tags(volume) == wanted
    shutdown = ec2m.describe_instance_attribute(
        InstanceId=inst["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    story["first_token"] = launch["ClientToken"]


def test_second_provision_launches_nothing(story, ec2m, api):
    before = len(asked(api, "RunInstances"))
    run = playbook("provision", story["env"], extra=SETTINGS)
    assert run.rc == 0, run.output[-4000:]
    assert run.stats["changed"] == 0, [n for n, r in run.tasks() if r.get("changed")]
    assert len(asked(api, "RunInstances")) == before
    box(ec2m, "sb")


def test_a_hand_made_lookalike_is_never_adopted(story, ec2m, api):
    """An instance tagged Name and Project but not ManagedBy=gpubox is someone else's: provision refuses it (or
    launches gpubox's own box beside it), and ec2_box_launch by itself launches its own box and leaves it alone."""
    sb = box(ec2m, "sb")
    other = ec2m.create_security_group(GroupName="hand-made", Description="not gpubox's", VpcId=sb["VpcId"])["GroupId"]
    spec = [
        {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "d2l"}, {"Key": "Project", "Value": PROJECT}]}
    ]
    (hand,) = ec2m.run_instances(
        ImageId=sb["ImageId"],
        InstanceType="g4dn.xlarge",
        MinCount=1,
        MaxCount=1,
        SecurityGroupIds=[other],
        TagSpecifications=spec,
    )["Instances"]

    def as_found() -> dict:
        (inst,) = instances(ec2m, ("instance-id", [hand["InstanceId"]]))
        return {
            "state": inst["State"]["Name"],
            "tags": tags(inst),
            "groups": [g["GroupId"] for g in inst["SecurityGroups"]],
            "interface": interface_groups(ec2m, inst),
            "metadata": inst["MetadataOptions"],
        }

    before = as_found()
    assert before["tags"] == {"Name": "d2l", "Project": PROJECT} and before["groups"] == [other]

    run = playbook("provision", story["env"], extra=dict(SETTINGS, gpubox_boxes=[SPOT, {"name": "d2l"}]))
    if run.rc != 0:  # the preflight refuses the lookalike, naming it (in one item of a loop)
        failed = [one for _, r in run.tasks() if r.get("failed") for one in [r, *r.get("results", [])]]
        assert any(hand["InstanceId"] in one.get("msg", "") for one in failed), run.output[-3000:]
    else:
        assert box(ec2m, "d2l")["InstanceId"] != hand["InstanceId"]
    assert as_found() == before

    result = launch_beside(
        story, ec2m, "lookalike", sb, name="d2l", subnet_id=sb["SubnetId"], volume_size=40, tags={"SshUser": "ubuntu"}
    )
    assert result.get("changed") is True and result["launched"] is True, result
    assert result["instance"]["instance_id"] not in (hand["InstanceId"], sb["InstanceId"])
    assert any(hand["InstanceId"] in w and "ManagedBy=gpubox" in w for w in result.get("warnings", [])), result
    assert box(ec2m, "d2l")["InstanceId"] == result["instance"]["instance_id"]
    assert as_found() == before
    ids = {hand["InstanceId"], *(n["NetworkInterfaceId"] for n in hand["NetworkInterfaces"])}
    for action in ("CreateTags", "DeleteTags", "ModifyInstanceMetadataOptions", "ModifyInstanceAttribute"):
        assert [p for p in asked(api, action) if mentions(p, ids)] == [], action
    story["hand"] = hand["InstanceId"]


def test_a_subnet_without_public_ips_gets_an_explicit_interface(story, ec2m, api):
    """Where the subnet does not give public IPs, the box asks for one on its interface, with its group there."""
    sb = box(ec2m, "sb")
    subnet = ec2m.create_subnet(VpcId=sb["VpcId"], CidrBlock="172.31.200.0/24", AvailabilityZone="us-west-2a")
    subnet_id = subnet["Subnet"]["SubnetId"]
    assert subnet["Subnet"]["MapPublicIpOnLaunch"] is False
    group = project_group(ec2m)
    result = launch_beside(story, ec2m, "private-subnet", sb, name="nic", subnet_id=subnet_id, volume_size=30)
    assert result.get("launched") is True, result
    launch = asked(api, "RunInstances")[-1]
    assert launch["NetworkInterface.1.SubnetId"] == subnet_id
    assert launch["NetworkInterface.1.AssociatePublicIpAddress"] == "true"
    assert launch["NetworkInterface.1.DeleteOnTermination"] == "true"
    assert [k for k in launch if "SecurityGroupId" in k] == ["NetworkInterface.1.SecurityGroupId.1"]
    assert "SubnetId" not in launch
    assert launch["NetworkInterface.1.SecurityGroupId.1"] == group
    assert "InstanceMarketOptions.MarketType" not in launch
    assert "spot-instances-request" not in tag_specifications(launch)
    inst = box(ec2m, "nic")
    assert inst.get("PublicIpAddress") and inst["SubnetId"] == subnet_id
    assert interface_groups(ec2m, inst) == [group]  # the local API reads instance groups only from SecurityGroupIds
    assert inst.get("InstanceLifecycle") is None


def test_terminate_cancels_the_projects_spot_requests_only(story, ec2m, api):
    sb = box(ec2m, "sb")

    def request(request_tags: dict[str, str]) -> str:
        spec = [
            {
                "ResourceType": "spot-instances-request",
                "Tags": [{"Key": k, "Value": v} for k, v in request_tags.items()],
            }
        ]
        (made,) = ec2m.request_spot_instances(
            InstanceCount=1,
            Type="persistent",
            InstanceInterruptionBehavior="stop",
            LaunchSpecification={"ImageId": sb["ImageId"], "InstanceType": "g4dn.xlarge"},
            TagSpecifications=spec,
        )["SpotInstanceRequests"]
        # The local API fulfils a request at once; terminating its instance leaves the request without a running
        # instance, which is what a request waiting for capacity (AWS: open) or about to relaunch is.
        if made.get("InstanceId"):
            ec2m.terminate_instances(InstanceIds=[made["InstanceId"]])
        return made["SpotInstanceRequestId"]

    def live_requests() -> dict[str, str]:
        found = ec2m.describe_spot_instance_requests()["SpotInstanceRequests"]
        return {r["SpotInstanceRequestId"]: r["State"] for r in found if r["State"] not in ("cancelled", "closed")}

    first = request({**OWN_TAGS, "Name": "q1"})
    second = request({**OWN_TAGS, "Name": "q2"})
    foreign = request({"Project": PROJECT, "Name": "q1"})
    other_project = request({"ManagedBy": "gpubox", "Project": "someone-else", "Name": "q1"})
    assert set(live_requests()) == {first, second, foreign, other_project}

    # gpubox_only names a box that is only a spot request: that request goes, nothing else.
    only = playbook(
        "terminate", story["env"], "-e", "gpubox_confirm=yes", "-e", "gpubox_only=q1", extra={"gpubox_project": PROJECT}
    )
    assert only.rc == 0, only.output[-3000:]
    assert set(live_requests()) == {second, foreign, other_project}
    assert box(ec2m, "sb")["State"]["Name"] == "running"

    start = len(actions_in_order(api))
    run = playbook("terminate", story["env"], "-e", "gpubox_confirm=yes", extra={"gpubox_project": PROJECT})
    assert run.rc == 0, run.output[-3000:]
    assert set(live_requests()) == {foreign, other_project}
    assert (
        instances(
            ec2m,
            ("tag:ManagedBy", ["gpubox"]),
            ("tag:Project", [PROJECT]),
            ("instance-state-name", ["pending", "running", "stopping", "stopped"]),
        )
        == []
    )
    (hand,) = instances(ec2m, ("instance-id", [story["hand"]]))
    assert hand["State"]["Name"] == "running" and tags(hand) == {"Name": "d2l", "Project": PROJECT}
    # the requests are cancelled before any box is terminated
    order = actions_in_order(api)[start:]
    assert "CancelSpotInstanceRequests" in order and "TerminateInstances" in order
    assert order.index("CancelSpotInstanceRequests") < order.index("TerminateInstances")
    (cancel,) = asked(api, "CancelSpotInstanceRequests")[-1:]
    assert {v for k, v in cancel.items() if k.startswith("SpotInstanceRequestId.")} == {second}


def test_a_box_launched_again_after_terminate_gets_a_new_token(story, ec2m, api):
    """The same box launched again after terminate carries another ClientToken (AWS would answer a repeated token
    with the terminated instance for at least a day)."""
    run = playbook("provision", story["env"], extra=SETTINGS)
    assert run.rc == 0, run.output[-4000:]
    again = box(ec2m, "sb")
    assert again["ClientToken"] != story["first_token"]
    assert asked(api, "RunInstances")[-1]["ClientToken"] == again["ClientToken"]


# --- ClientToken generations, against botocore's Stubber: the local API ignores ClientToken (it launches again
# for a repeated token), AWS answers a repeated token with the instance that token launched.

BOX = {"name": "sb", "project": PROJECT}
REQUEST = {"ImageId": "ami-1", "InstanceType": "g5.xlarge", "MinCount": 1, "MaxCount": 1}


def _instance(state: str, token: str, n: int = 1) -> dict:
    return {"InstanceId": f"i-{n:017x}", "State": {"Name": state}, "ClientToken": token}


@pytest.fixture
def stubbed():
    ec2 = boto3.client("ec2", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ec2) as stub:
        yield ec2, stub
        stub.assert_no_pending_responses()


def test_token_is_stable_and_tells_launches_apart():
    token = launcher.client_token("us-west-2", PROJECT, "sb", REQUEST, 0)
    assert token == launcher.client_token("us-west-2", PROJECT, "sb", dict(REQUEST), 0)
    assert token.startswith("gpubox-") and len(token) <= 64
    others = {
        launcher.client_token("us-west-2", PROJECT, "sb", REQUEST, 1),
        launcher.client_token("us-west-2", PROJECT, "sb2", REQUEST, 0),
        launcher.client_token("us-west-2", "other", "sb", REQUEST, 0),
        launcher.client_token("us-west-2", PROJECT, "sb", dict(REQUEST, InstanceType="g5.2xlarge"), 0),
    }
    assert token not in others and len(others) == 4


def test_launch_skips_the_tokens_of_terminated_boxes_still_listed(stubbed):
    ec2, stub = stubbed
    t0, t1 = (launcher.client_token("us-west-2", PROJECT, "sb", REQUEST, g) for g in (0, 1))
    stub.add_response("run_instances", {"Instances": [_instance("pending", t1, 2)]}, dict(REQUEST, ClientToken=t1))
    instance, token = launcher.launch(ec2, "us-west-2", BOX, REQUEST, [_instance("terminated", t0)])
    assert (instance["InstanceId"], token) == ("i-00000000000000002", t1)


def test_launch_moves_on_when_aws_answers_with_a_terminated_box(stubbed):
    """A token whose instance EC2 no longer lists but still remembers: the answer is that terminated instance."""
    ec2, stub = stubbed
    t0, t1 = (launcher.client_token("us-west-2", PROJECT, "sb", REQUEST, g) for g in (0, 1))
    stub.add_response("run_instances", {"Instances": [_instance("terminated", t0, 1)]}, dict(REQUEST, ClientToken=t0))
    stub.add_response("run_instances", {"Instances": [_instance("pending", t1, 2)]}, dict(REQUEST, ClientToken=t1))
    instance, token = launcher.launch(ec2, "us-west-2", BOX, REQUEST, [])
    assert (instance["InstanceId"], token) == ("i-00000000000000002", t1)


def test_a_retry_ends_at_the_instance_already_launched(stubbed):
    """A run that timed out after RunInstances: the retry repeats the token and gets the same (pending) instance."""
    ec2, stub = stubbed
    t0 = launcher.client_token("us-west-2", PROJECT, "sb", REQUEST, 0)
    for _ in range(2):
        stub.add_response("run_instances", {"Instances": [_instance("pending", t0, 7)]}, dict(REQUEST, ClientToken=t0))
    first, _ = launcher.launch(ec2, "us-west-2", BOX, REQUEST, [])
    again, _ = launcher.launch(ec2, "us-west-2", BOX, REQUEST, [])
    assert first["InstanceId"] == again["InstanceId"]


def test_wait_fails_when_the_box_is_terminated(stubbed):
    ec2, stub = stubbed
    gone = _instance("terminated", "t")
    gone["StateReason"] = {"Code": "Server.SpotInstanceTermination", "Message": "no capacity"}
    stub.add_client_error("describe_instances", "InvalidInstanceID.NotFound")
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [gone]}]})
    with pytest.raises(launcher.LaunchError, match="terminated instead of running: no capacity"):
        launcher.wait_running(ec2, gone["InstanceId"], 60, sleep=lambda s: None)


def test_tags_may_not_disown_the_box():
    assert launcher.box_tags("sb", OWN_TAGS, {"SshUser": "ubuntu"}) == {**OWN_TAGS, "Name": "sb", "SshUser": "ubuntu"}
    with pytest.raises(launcher.LaunchError, match="ManagedBy"):
        launcher.box_tags("sb", OWN_TAGS, {"ManagedBy": "me"})


def test_module_documents_every_option():
    doc = yaml.safe_load(launcher.DOCUMENTATION)
    assert set(doc["options"]) == set(launcher.ARGUMENT_SPEC)
    for name, spec in launcher.ARGUMENT_SPEC.items():
        assert doc["options"][name]["type"] == spec["type"], name
        assert doc["options"][name].get("default") == spec.get("default"), name
    yaml.safe_load(launcher.EXAMPLES)
    yaml.safe_load(launcher.RETURN)
