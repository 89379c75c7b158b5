"""Quiet and tidy output: the inventory and list.yml print no warnings (site.yml's: the rehearsal's rerun, in
tests/e2e/test_site.py), and the box table stays aligned whatever
the length of a box's name or DNS name.

Against the local EC2 API only (no containers): boxes are launched with boto3, tagged as provision.yml tags them.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT, load_module, noise, run_ansible
from tests.integration.ec2play import home_env, instances, playbook, unsafe

PROJECT = "quiet"
LONG_NAME = "a-box-whose-name-is-sixty-characters-long-to-stretch-the-tab"
GPUS = {"g4dn.xlarge": "1 \N{MULTIPLICATION SIGN} T4", "g5.xlarge": "1 \N{MULTIPLICATION SIGN} A10G"}


def launch(ec2, name: str, instance_type: str = "g4dn.xlarge") -> dict:
    image = ec2.describe_images(Owners=["099720109477"], Filters=[{"Name": "name", "Values": ["*noble*amd64*"]}])
    box_tags = {"ManagedBy": "gpubox", "Project": PROJECT, "Name": name, "SshUser": "ubuntu"}
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in box_tags.items()]}]
    return ec2.run_instances(
        ImageId=image["Images"][0]["ImageId"],
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=spec,
    )["Instances"][0]


@pytest.fixture
def boxes(aws_env, ec2, tmp_path):
    """Three boxes of the project: a long name, a short one of another type, and a stopped one."""
    launch(ec2, LONG_NAME)
    launch(ec2, "b", "g5.xlarge")
    stopped = launch(ec2, "stopped-box")
    ec2.stop_instances(InstanceIds=[stopped["InstanceId"]])
    found = {i["InstanceId"]: i for i in instances(ec2, ("tag:Project", [PROJECT]))}
    return home_env(aws_env, tmp_path / "home"), found


def test_the_inventory_prints_no_warning_and_keeps_the_host_variables_gpubox_uses(boxes):
    env, found = boxes
    project = ["-e", f"gpubox_project={PROJECT}"]

    listed = run_ansible(["ansible-inventory", "--list", *project], env=env)
    graph = run_ansible(["ansible-inventory", "--graph", *project], env=env)
    # reading a host's variables is what warns about a reserved name
    debug = ["ansible", "gpubox", "-m", "ansible.builtin.debug", "-a", "var=instance_id"]
    shown = run_ansible([*debug, *project], env=env)

    for proc in (listed, graph, shown):
        assert noise(proc.stdout + proc.stderr) == []
    inventory = json.loads(listed.stdout)
    hostvars = inventory["_meta"]["hostvars"]
    assert set(hostvars) == {LONG_NAME, "b"}  # running boxes only
    assert set(inventory["gpubox"]["hosts"]) == {LONG_NAME, "b"}
    assert inventory["type_g5_xlarge"]["hosts"] == ["b"] and inventory["family_g4dn"]["hosts"] == [LONG_NAME]
    assert set(inventory["market_on_demand"]["hosts"]) == {LONG_NAME, "b"}
    assert set(inventory[f"project_{PROJECT}"]["hosts"]) == {LONG_NAME, "b"}
    by_name = {next(t["Value"] for t in i["Tags"] if t["Key"] == "Name"): i for i in found.values()}
    for name, variables in hostvars.items():
        instance = by_name[name]
        # the tags under the name that is not reserved, and no `tags` host variable at all
        assert "tags" not in variables
        assert {k: unsafe(v) for k, v in variables["ec2_tags"].items()} == {
            "ManagedBy": "gpubox",
            "Project": PROJECT,
            "Name": name,
            "SshUser": "ubuntu",
        }
        assert unsafe(variables["ansible_host"]) == instance["PublicIpAddress"]
        assert unsafe(variables["ansible_user"]) == "ubuntu"
        assert unsafe(variables["instance_id"]) == instance["InstanceId"]
        assert unsafe(variables["instance_type"]) == instance["InstanceType"]
    assert f"instance_id: {by_name['b']['InstanceId']}" in shown.stdout


def cells(row: str, starts: list[int]) -> list[str]:
    ends = [*starts[1:], None]
    return [row[start:end].strip() for start, end in zip(starts, ends, strict=True)]


def test_list_prints_an_aligned_table_and_no_warning(boxes):
    env, found = boxes

    run = playbook("list", env, extra={"gpubox_project": PROJECT})

    assert run.rc == 0, run.output[-3000:]
    assert noise(run.output) == []
    (table,) = [result["msg"] for name, result in run.tasks() if name == "ec2_list : Print the boxes"]
    lines = table.splitlines()
    header, *rows = lines[
        : next(i for i, line in enumerate(lines) if line.startswith("$/h:"))
    ]  # the price note ends it
    # a column starts where the header's title does: titles are separated by two spaces or more
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    assert cells(header, starts) == [
        "NAME",
        "INSTANCE ID",
        "TYPE",
        "GPUS",
        "STATE",
        "MARKET",
        "AUTOSTOP",
        "PUBLIC IP / DNS",
        "LAUNCHED (UTC)",
        "$/H ON-DEMAND",
    ]
    assert len(rows) == 3
    seen = set()
    for row in rows:
        # every cell starts exactly under its title, after a gap of at least two spaces
        for start in starts[1:]:
            assert row[start - 2 : start] == "  " and row[start] != " ", f"misaligned at {start}:\n{table}"
        name, instance_id, instance_type, gpus, state, market, autostop, address, launched, price = cells(row, starts)
        instance = found[instance_id]
        idle = next((t["Value"] for t in instance["Tags"] if t["Key"] == "Autostop"), None)
        assert autostop == {None: "-", "0": "off"}.get(idle, f"{idle} min")  # what the box's agent gets
        assert name == next(t["Value"] for t in instance["Tags"] if t["Key"] == "Name")
        assert instance_type == instance["InstanceType"] and market == "on-demand"
        assert gpus == GPUS[instance_type]
        assert state == ("stopped" if name == "stopped-box" else "running")
        if state == "running":
            assert address == f"{instance['PublicIpAddress']} {instance['PublicDnsName']}"
        assert launched == instance["LaunchTime"].strftime("%Y-%m-%d %H:%M")
        assert re.fullmatch(r"[0-9]+\.[0-9]{3}", price), price
        seen.add(name)
    assert seen == {LONG_NAME, "b", "stopped-box"}


def test_the_inventory_plugin_drops_only_the_notice_about_tags():
    plugin = load_module(ROOT / "plugins" / "inventory" / "gpubox_ec2.py", "gpubox_inventory_ec2")
    said = []

    class Display:
        def deprecated(self, msg, **kwargs):
            said.append(msg)

        def warning(self, msg):
            said.append(msg)

    quiet = plugin._WithoutTagsNotice(Display())
    quiet.deprecated("The 'tags' host variable is deprecated. Use 'ec2_tags' instead.", date="2026-12-01")
    quiet.deprecated("The 'use_contrib_script_compatible_sanitization' option is deprecated.", date="2026-12-01")
    quiet.warning("Failed to describe instances")
    assert said == [
        "The 'use_contrib_script_compatible_sanitization' option is deprecated.",
        "Failed to describe instances",
    ]
