"""The life of a project's boxes against the local EC2 API, asserted through boto3, files and ssh -G.

One ordered story (pytest runs a module's tests in order): provision -> rerun -> spot -> inventory (with a
stopped box and an untagged instance) -> list -> start -> image and relaunch from it -> terminate.
"""

from __future__ import annotations

import json
import stat
import subprocess

import pytest

from tests.conftest import ROOT, run_ansible
from tests.ground.ec2api import iam_action, recorded_requests, request_params
from tests.integration.ec2play import SSH_CIDR, home_env, instances, playbook, root_volume_asked, tags, unsafe

PROJECT = "pytest-gpubox"
BOXES = [
    {"name": "alpha", "autostop": 30, "max_hours": 8, "stop_at": "20:00 Europe/Berlin"},
    {"name": "beta", "market": "spot", "instance_type": "g5.xlarge", "volume_size": 80},
    {"name": "gamma", "instance_type": "t3.micro", "allow_no_gpu": True, "volume_size": 30},
]
SETTINGS = {"gpubox_project": PROJECT, "gpubox_ssh_cidr": SSH_CIDR, "gpubox_boxes": BOXES}
USER_SSH_CONFIG = "Host mine\n    HostName mine.example.invalid\n    User me\n"


def recorded(api, action: str) -> list[dict[str, list[str]]]:
    """The form parameters of every recorded EC2 request of this action."""
    return [p for p in map(request_params, recorded_requests(api.workdir)) if p.get("Action") == [action]]


@pytest.fixture(scope="module")
def story(api, tmp_path_factory):
    home = tmp_path_factory.mktemp("story") / "home"
    env = home_env(api.env, home)
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "config").write_text(USER_SSH_CONFIG)
    return {"env": env, "home": home}


def box(ec2, name: str, states=("pending", "running", "stopping", "stopped")) -> dict:
    found = instances(
        ec2,
        ("tag:Name", [name]),
        ("tag:Project", [PROJECT]),
        ("tag:ManagedBy", ["gpubox"]),
        ("instance-state-name", list(states)),
    )
    assert len(found) == 1, found
    return found[0]


def ssh_settings(home, alias: str) -> dict[str, list[str]]:
    """What `ssh <alias>` would use, as resolved by ssh itself."""
    out = subprocess.run(
        ["ssh", "-G", "-F", str(home / ".ssh" / "config"), alias], capture_output=True, text=True, check=True
    ).stdout
    settings: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)
    return settings


def counts(ec2) -> dict[str, int]:
    return {
        "instances": len(instances(ec2, ("instance-state-name", ["pending", "running", "stopping", "stopped"]))),
        "groups": len(ec2.describe_security_groups()["SecurityGroups"]),
        "keys": len(ec2.describe_key_pairs()["KeyPairs"]),
        "spot": len(ec2.describe_spot_instance_requests()["SpotInstanceRequests"]),
        "volumes": len(ec2.describe_volumes()["Volumes"]),
    }


def test_provision_launches_boxes_only_ssh_can_reach(story, ec2m):
    run = playbook("provision", story["env"], extra=SETTINGS)
    assert run.rc == 0, run.output[-4000:]
    story["first"] = run

    # one security group, one ingress rule: SSH from the configured CIDR
    groups = ec2m.describe_security_groups(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["SecurityGroups"]
    assert len(groups) == 1
    group = groups[0]
    assert tags(group)["ManagedBy"] == "gpubox"
    assert len(group["IpPermissions"]) == 1
    rule = group["IpPermissions"][0]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == [SSH_CIDR]
    assert rule.get("Ipv6Ranges", []) == [] and rule.get("UserIdGroupPairs", []) == []

    for spec in BOXES:
        inst = box(ec2m, spec["name"])
        assert inst["State"]["Name"] == "running"
        assert tags(inst)["ManagedBy"] == "gpubox" and tags(inst)["Project"] == PROJECT
        assert inst["InstanceType"] == spec.get("instance_type", "g4dn.xlarge")
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        assert inst["KeyName"] == "gpubox"
        assert [g["GroupId"] for g in inst["SecurityGroups"]] == [group["GroupId"]]
        assert inst.get("PublicIpAddress")
        (root,) = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"]]
        volume = ec2m.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
        assert tags(volume)["ManagedBy"] == "gpubox" and tags(volume)["Project"] == PROJECT
        assert root["Ebs"]["DeleteOnTermination"] is True
        assert volume["Size"] == spec.get("volume_size", 64)
        assert volume["VolumeType"] == "gp3"
        assert volume["Encrypted"] is True

    key = ec2m.describe_key_pairs(KeyNames=["gpubox"])["KeyPairs"][0]
    assert key["KeyType"] == "ed25519"
    assert tags(key) == {"ManagedBy": "gpubox", "Project": PROJECT}
    key_file = story["home"] / ".ssh" / "gpubox-gpubox.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
    assert "OPENSSH PRIVATE KEY" in key_file.read_text()
    assert "PRIVATE KEY" not in run.output

    # the quota API is unavailable here: a warning, and the launch went on
    (quota,) = [r for name, r in run.tasks() if name.endswith("Check that the GPU vCPU quotas cover the new boxes")]
    assert any("Could not read the vCPU quota L-DB2E81BA" in w for w in quota.get("warnings", [])), quota


def test_ssh_config_reaches_boxes_and_keeps_the_users_own(story, ec2m):
    config = (story["home"] / ".ssh" / "config").read_text()
    assert config.startswith("Include ")
    assert USER_SSH_CONFIG in config
    alpha = box(ec2m, "alpha")
    ssh = ssh_settings(story["home"], "alpha")
    assert ssh["hostname"] == [alpha["PublicIpAddress"]]
    assert ssh["user"] == ["ubuntu"]
    assert ssh["identityfile"] == [str(story["home"] / ".ssh" / "gpubox-gpubox.pem")]
    assert ssh["identitiesonly"] == ["yes"]
    assert "localforward" not in ssh
    tunnel = ssh_settings(story["home"], "alpha-jupyter")
    assert tunnel["hostname"] == [alpha["PublicIpAddress"]]
    assert tunnel["localforward"] == ["8889 [localhost]:8888"]
    assert ssh_settings(story["home"], "mine")["hostname"] == ["mine.example.invalid"]


def test_second_provision_changes_nothing(story, ec2m, api):
    before = counts(ec2m)
    asked = len(recorded_requests(api.workdir))
    run = playbook("provision", story["env"], extra=SETTINGS)
    assert run.rc == 0, run.output[-4000:]
    assert run.stats["changed"] == 0, [n for n, r in run.tasks() if r.get("changed")]
    assert counts(ec2m) == before
    # Nothing to do is seen from one read of the project's state (plus the inventory's own listing): no call that
    # writes, and no part of the state read twice.
    actions = [a.split(":")[1] for a in map(iam_action, recorded_requests(api.workdir)[asked:]) if a]
    assert all(a.startswith("Describe") or a == "GetCallerIdentity" for a in actions), actions
    assert actions.count("DescribeInstances") == 2, actions
    assert max(actions.count(a) for a in set(actions) - {"DescribeInstances"}) == 1, actions


def test_a_rerun_repairs_what_was_changed_behind_its_back(story, ec2m):
    """A rule added to the group, a key file opened up, the project's ssh config file edited: the next run puts each
    back (changed), and the run after it changes nothing."""
    group = ec2m.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"gpubox-{PROJECT}-ssh"]}])
    group_id = group["SecurityGroups"][0]["GroupId"]
    ec2m.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8888, "ToPort": 8888, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    key = story["home"] / ".ssh" / "gpubox-gpubox.pem"
    key.chmod(0o644)
    conf = next((story["home"] / ".ssh" / "gpubox").glob("*.conf"))
    wanted = conf.read_text()
    conf.write_text(wanted.replace("IdentitiesOnly yes", "IdentitiesOnly no"))

    run = playbook("provision", story["env"], extra=SETTINGS)
    assert run.rc == 0, run.output[-4000:]
    assert run.stats["changed"] >= 3, [n for n, r in run.tasks() if r.get("changed")]
    rules = ec2m.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    assert [(r["FromPort"], [x["CidrIp"] for x in r["IpRanges"]]) for r in rules] == [(22, [SSH_CIDR])]
    assert key.stat().st_mode & 0o777 == 0o400
    assert conf.read_text() == wanted

    again = playbook("provision", story["env"], extra=SETTINGS)
    assert again.rc == 0, again.output[-4000:]
    assert again.stats["changed"] == 0, [n for n, r in again.tasks() if r.get("changed")]


def test_a_new_operator_address_replaces_the_ssh_rule(story, ec2m):
    """When your address changes, the one SSH rule follows it (the old address loses access)."""

    def ssh_sources() -> list[str]:
        group = ec2m.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"gpubox-{PROJECT}-ssh"]}])
        return [r["CidrIp"] for p in group["SecurityGroups"][0]["IpPermissions"] for r in p["IpRanges"]]

    moved = "203.0.113.9/32"  # TEST-NET-3
    for cidr in (moved, SSH_CIDR):
        run = playbook(
            "provision", story["env"], "--tags", "preflight,firewall", extra={**SETTINGS, "gpubox_ssh_cidr": cidr}
        )
        assert run.rc == 0, run.output[-4000:]
        assert ssh_sources() == [cidr]


def test_spot_box_is_persistent_tagged_and_single(story, ec2m, api):
    beta = box(ec2m, "beta")
    assert beta.get("InstanceLifecycle") == "spot"
    assert tags(beta)["Name"] == "beta" and tags(beta)["ManagedBy"] == "gpubox"
    assert beta["MetadataOptions"]["HttpTokens"] == "required"
    # A spot box is one RunInstances call with spot market options: AWS makes the persistent request from it and
    # tags it like the box. The local API keeps neither the options nor a request, so what gpubox asked for is read
    # from the requests the API recorded.
    assert recorded(api, "RequestSpotInstances") == []
    (asked,) = [p for p in recorded(api, "RunInstances") if p.get("InstanceMarketOptions.MarketType") == ["spot"]]
    spec = {k: v[0] for k, v in asked.items()}
    assert spec["ClientToken"] == beta["ClientToken"]
    assert spec["InstanceMarketOptions.SpotOptions.SpotInstanceType"] == "persistent"
    assert spec["InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"] == "stop"
    assert spec["MetadataOptions.HttpTokens"] == "required"
    assert root_volume_asked(spec) == {
        "DeviceName": beta["RootDeviceName"],
        "Ebs.VolumeSize": "80",
        "Ebs.VolumeType": "gp3",
        "Ebs.Encrypted": "true",
        "Ebs.DeleteOnTermination": "true",
    }
    group = ec2m.describe_security_groups(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["SecurityGroups"][0]
    assert [v for k, v in spec.items() if "SecurityGroupId" in k] == [group["GroupId"]]
    assert [g["GroupId"] for g in beta["SecurityGroups"]] == [group["GroupId"]]
    (request_tags,) = [
        k.rsplit(".", 1)[0] for k, v in spec.items() if k.endswith(".ResourceType") and v == "spot-instances-request"
    ]
    named = {
        spec[k]: spec[k[: -len("Key")] + "Value"]
        for k in spec
        if k.startswith(request_tags + ".Tag.") and k.endswith(".Key")
    }
    assert named["Name"] == "beta" and named["Project"] == PROJECT and named["ManagedBy"] == "gpubox"


def test_inventory_lists_running_managed_boxes_only(story, ec2m):
    image = box(ec2m, "alpha")["ImageId"]
    ec2m.run_instances(ImageId=image, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1)  # not gpubox's
    stopped = playbook("stop", story["env"], "-e", "gpubox_only=gamma", extra={"gpubox_project": PROJECT})
    assert stopped.rc == 0, stopped.output[-3000:]
    assert box(ec2m, "gamma")["State"]["Name"] == "stopped"

    # the project reaches the inventory the way it reaches the playbooks: -e (or the settings files)
    project = ["-e", f"gpubox_project={PROJECT}"]
    proc = run_ansible(
        ["ansible-inventory", "-i", str(ROOT / "inventory/aws_ec2.yml"), "--list", *project], env=story["env"]
    )
    inventory = json.loads(proc.stdout)
    hostvars = inventory["_meta"]["hostvars"]
    assert set(hostvars) == {"alpha", "beta"}

    def members(group):
        return set(inventory.get(group, {}).get("hosts", []))

    assert members("gpubox") == {"alpha", "beta"}
    assert members("type_g4dn_xlarge") == {"alpha"} and members("type_g5_xlarge") == {"beta"}
    assert members("family_g4dn") == {"alpha"} and members("family_g5") == {"beta"}
    assert members("market_on_demand") == {"alpha"} and members("market_spot") == {"beta"}
    assert members("project_pytest_gpubox") == {"alpha", "beta"}
    for name in ("alpha", "beta"):
        assert unsafe(hostvars[name]["ansible_host"]) == box(ec2m, name)["PublicIpAddress"]
        assert unsafe(hostvars[name]["ansible_user"]) == "ubuntu"
    # each box's own autostop settings reach it (the autostop role's defaults read these), else the project's
    assert (unsafe(hostvars["alpha"]["gpubox_autostop_minutes"]), unsafe(hostvars["alpha"]["gpubox_max_hours"])) == (
        "30",
        "8",
    )
    assert (unsafe(hostvars["beta"]["gpubox_autostop_minutes"]), unsafe(hostvars["beta"]["gpubox_max_hours"])) == (
        "60",
        "0",
    )
    # the daily stop of a box that has one (its StopAt tag); none for the other (no tag: the project's "")
    assert unsafe(hostvars["alpha"]["gpubox_stop_at"]) == "20:00 Europe/Berlin"
    assert unsafe(hostvars["beta"].get("gpubox_stop_at", "")) == ""

    graph = run_ansible(
        ["ansible-inventory", "-i", str(ROOT / "inventory/aws_ec2.yml"), "--graph", *project], env=story["env"]
    )
    assert "gamma" not in graph.stdout and "alpha" in graph.stdout

    # the stopped box has no ssh entry, only a note
    config = (story["home"] / ".ssh" / "gpubox" / f"{PROJECT}.conf").read_text()
    assert "Host gamma" not in config and "# gamma" in config


def test_stop_refuses_a_box_the_project_does_not_have(story, ec2m):
    run = playbook("stop", story["env"], "-e", "gpubox_only=alpha,nosuchbox", extra={"gpubox_project": PROJECT})
    assert run.rc != 0
    assert "nosuchbox" in run.failure()
    assert box(ec2m, "alpha")["State"]["Name"] == "running"


def test_list_prints_the_boxes(story, ec2m):
    proc = run_ansible(
        ["ansible-playbook", str(ROOT / "playbooks/list.yml"), "-e", f"gpubox_project={PROJECT}"], env=story["env"]
    )
    # the box table ends at its price note; the cost table after it names the boxes again
    table = proc.stdout.split("$/h:")[0]
    lines = {line.split()[0]: line for line in table.splitlines() if line.strip().split()[:1]}
    alpha, beta, gamma = (box(ec2m, n) for n in ("alpha", "beta", "gamma"))
    assert alpha["InstanceId"] in lines["alpha"] and "1 \N{MULTIPLICATION SIGN} T4" in lines["alpha"]
    assert "running" in lines["alpha"] and "on-demand" in lines["alpha"] and "0.526" in lines["alpha"]
    assert alpha["PublicIpAddress"] in lines["alpha"] and alpha["PublicDnsName"] in lines["alpha"]
    assert (
        beta["InstanceId"] in lines["beta"]
        and "1 \N{MULTIPLICATION SIGN} A10G" in lines["beta"]
        and "spot" in lines["beta"]
    )
    assert gamma["InstanceId"] in lines["gamma"] and "stopped" in lines["gamma"]
    assert "price table of 2025-05" in proc.stdout


def test_start_rewrites_the_ssh_config(story, ec2m):
    run = playbook("start", story["env"], "-e", "gpubox_only=gamma", extra={"gpubox_project": PROJECT})
    assert run.rc == 0, run.output[-3000:]
    gamma = box(ec2m, "gamma")
    assert gamma["State"]["Name"] == "running"
    assert ssh_settings(story["home"], "gamma")["hostname"] == [gamma["PublicIpAddress"]]


def test_image_is_baked_once_and_boxes_launch_from_it(story, ec2m):
    args = ("-e", "gpubox_box=alpha", "-e", "gpubox_image_name=alpha-baked")
    run = playbook("image", story["env"], *args, extra={"gpubox_project": PROJECT})
    assert run.rc == 0, run.output[-3000:]
    images = ec2m.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["alpha-baked"]}])["Images"]
    assert len(images) == 1
    assert tags(images[0])["ManagedBy"] == "gpubox" and tags(images[0])["Project"] == PROJECT

    again = playbook("image", story["env"], *args, extra={"gpubox_project": PROJECT})
    assert again.rc == 0 and again.stats["changed"] == 0
    assert (
        len(ec2m.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["alpha-baked"]}])["Images"]) == 1
    )

    boxes = [*BOXES, {"name": "delta", "image": "my:alpha-baked"}]
    relaunch = playbook("provision", story["env"], extra=dict(SETTINGS, gpubox_boxes=boxes))
    assert relaunch.rc == 0, relaunch.output[-3000:]
    assert box(ec2m, "delta")["ImageId"] == images[0]["ImageId"]


def test_terminate_needs_confirmation_and_spares_foreign_instances(story, ec2m):
    image = box(ec2m, "alpha")["ImageId"]
    decoys = []
    for decoy_tags in ({"ManagedBy": "gpubox", "Name": "alpha"}, {"Project": PROJECT, "Name": "alpha"}):
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in decoy_tags.items()]}]
        decoys += ec2m.run_instances(
            ImageId=image, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1, TagSpecifications=spec
        )["Instances"]

    refused = playbook("terminate", story["env"], extra={"gpubox_project": PROJECT})
    assert refused.rc != 0 and "gpubox_confirm=yes" in refused.failure()
    assert box(ec2m, "alpha")["State"]["Name"] == "running"

    run = playbook("terminate", story["env"], "-e", "gpubox_confirm=yes", extra={"gpubox_project": PROJECT})
    assert run.rc == 0, run.output[-3000:]
    left = instances(
        ec2m, ("tag:Project", [PROJECT]), ("tag:ManagedBy", ["gpubox"]), ("instance-state-name", ["pending", "running"])
    )
    assert left == []
    for decoy in decoys:
        state = instances(ec2m, ("instance-id", [decoy["InstanceId"]]))[0]["State"]["Name"]
        assert state == "running"
    # the persistent request is cancelled (AWS lists it as cancelled for a while, the local API drops it)
    assert {r["State"] for r in ec2m.describe_spot_instance_requests()["SpotInstanceRequests"]} <= {"cancelled"}
    config = (story["home"] / ".ssh" / "gpubox" / f"{PROJECT}.conf").read_text()
    assert "Host " not in config
    assert (story["home"] / ".ssh" / "config").read_text().count("Host mine") == 1
