"""gpubox's own plugins that guard what goes into AWS and into the ssh config: the ipv4_cidr filter, the aws_region
test, the gpubox_setting lookup's file order, and the ssh_config role's entry builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, load_module

net = load_module(ROOT / "plugins" / "filter" / "net.py", "gpubox_filter_net")
aws = load_module(ROOT / "plugins" / "test" / "aws.py", "gpubox_test_aws")
setting = load_module(ROOT / "plugins" / "lookup" / "gpubox_setting.py", "gpubox_lookup_setting")
entries = load_module(ROOT / "plugins" / "filter" / "ssh_entries.py", "gpubox_ssh_entries")


@pytest.mark.parametrize(
    "given, cidr, addresses",
    [
        ("203.0.113.7/32", "203.0.113.7/32", 1),
        ("203.0.113.7/24", "203.0.113.0/24", 256),
        ("203.0.113.7/0", "0.0.0.0/0", 2**32),
        ("10.1.2.3/8", "10.0.0.0/8", 2**24),
    ],
)
def test_ipv4_cidr_is_the_range_it_really_is(given, cidr, addresses):
    found = net.ipv4_cidr(given)
    assert found["valid"] and found["cidr"] == cidr and found["addresses"] == addresses


@pytest.mark.parametrize(
    "bad", ["1.2.3.4", "1.2.3.4/33", "1.2.3.300/32", "01.2.3.4/32", " 1.2.3.4/32", "1.2.3.4/32\n", "::/0", "", None, 32]
)
def test_ipv4_cidr_refuses_what_is_not_one(bad):
    assert net.ipv4_cidr(bad)["valid"] is False


def test_tagged_needs_every_wanted_tag_with_exactly_its_value():
    own = {"ManagedBy": "gpubox", "Project": "p1"}
    assert aws.tagged({"ManagedBy": "gpubox", "Project": "p1", "Name": "a"}, own)
    assert aws.tagged([{"Key": "ManagedBy", "Value": "gpubox"}, {"Key": "Project", "Value": "p1"}], own)
    assert aws.tagged([{"key": "ManagedBy", "value": "gpubox"}, {"key": "Project", "value": "p1"}], own)
    assert not aws.tagged({"Project": "p1", "Name": "a"}, own)  # no ManagedBy: a lookalike
    assert not aws.tagged({"ManagedBy": "gpubox", "Project": "p*"}, own)  # a wildcard is not the project
    assert not aws.tagged({"ManagedBy": "gpubox", "Project": "p1 "}, own)
    assert not aws.tagged(None, own) and not aws.tagged("ManagedBy=gpubox", own)


names = load_module(ROOT / "plugins" / "module_utils" / "names.py", "gpubox_names")


@pytest.mark.parametrize("good", ["d2l", "D2L-course_2", "a" * 63])
def test_box_name_takes_literal_names_without_dots(good):
    assert names.box_name(good) and names.literal_name(good)


@pytest.mark.parametrize("bad", ["", "a.b", "-x", "x*", "x/y", "x\n", "a" * 64, None, 7, ["d2l"]])
def test_box_name_refuses_what_would_be_syntax_or_a_pattern(bad):
    assert not names.box_name(bad)


def test_literal_and_login_names():
    assert names.literal_name("cs101.fall") and not names.literal_name("a..b") and not names.literal_name("a\n")
    assert names.login_name("ubuntu") and not names.login_name("Ubuntu") and not names.login_name("ubuntu\n")
    # The ssh config writer checks the very same patterns.
    assert entries.BOX is names.BOX or entries.BOX.pattern == names.BOX.pattern
    assert entries.USER.pattern == names.LOGIN.pattern


def test_aws_region_knows_real_regions_only():
    assert aws.aws_region("us-west-2") and aws.aws_region("eu-central-1") and aws.aws_region("us-gov-west-1")
    for bad in ("us-west-9", "us-west-2\n", "US-WEST-2", "", None, "us-west-2a"):
        assert not aws.aws_region(bad), bad
    # the inventory's settings lookup asks the same test
    assert setting.valid("gpubox_region", "us-west-2") and not setting.valid("gpubox_region", "us-west-9")


def test_setting_files_are_read_in_ansibles_order(tmp_path):
    all_dir = tmp_path / "group_vars" / "all"
    (all_dir / "sub").mkdir(parents=True)
    for name in ("b.yml", "a.yaml", "sub/c.yml", "notes.txt", ".hidden.yml"):
        (all_dir / name).write_text("x: 1\n")
    (tmp_path / "group_vars" / "all.yml").write_text("x: 0\n")
    found = [str(Path(p).relative_to(tmp_path)) for p in setting.group_vars_files(str(tmp_path))]
    assert found == ["group_vars/all.yml", "group_vars/all/a.yaml", "group_vars/all/b.yml", "group_vars/all/sub/c.yml"]


@pytest.mark.parametrize("bad", ["*", "../../x", "a..b", "p\n", "a/b", "", "-x", 7])
def test_setting_refuses_a_project_that_is_not_a_literal_name(bad):
    assert not setting.valid("gpubox_project", bad)
    assert setting.valid("gpubox_project", "cs101.fall-2026")


def box(instance_id="i-0123456789abcdef0", name="d2l", user="ubuntu", state="running", ip="203.0.113.10"):
    return {
        "instance_id": instance_id,
        "tags": {"Name": name, "SshUser": user, "ManagedBy": "gpubox", "Project": "p"},
        "state": {"name": state},
        "public_ip_address": ip,
    }


def test_entries_write_safe_boxes_and_report_hostile_ones():
    hostile = "x\n    ProxyCommand touch /tmp/pwned"
    found = entries.ssh_config_entries(
        [
            box(),
            box("i-0000000000000000a", name=hostile),
            box("i-0000000000000000b", name="ok", user=hostile),
            box("i-0000000000000000c", name="github.com"),
            box("i-0000000000000000d", name="evil", ip="1.2.3.4\nProxyCommand x"),
            box("i-0000000000000000e", name="stopped", state="stopped", ip=None),
            box("i-0000000000000000f\nMatch all", name="idbad"),
        ],
        {},
        [],
        "p",
        "ubuntu",
    )
    written = {b["name"]: b for b in found["boxes"]}
    assert set(written) == {"d2l", "stopped"}
    assert written["d2l"]["aliases"] == ["d2l", "d2l-jupyter"] and written["d2l"]["host"] == "203.0.113.10"
    assert "aliases" not in written["stopped"]
    rejected = "\n".join(found["rejected"])
    for instance_id in ("i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c", "i-0000000000000000d"):
        assert instance_id in rejected
    assert "invalid id" in rejected
    assert "ProxyCommand" not in rejected and "Match" not in rejected


def test_entries_qualify_an_alias_another_project_has_without_regard_to_case():
    other = "Host D2L\n    HostName 198.51.100.1\n\nHost D2L-jupyter\n"
    found = entries.ssh_config_entries([box(), box("i-0000000000000000a", name="cv")], {}, [other], "p", "ubuntu")
    aliases = {b["name"]: b["aliases"] for b in found["boxes"]}
    assert aliases == {"d2l": ["p-d2l", "p-d2l-jupyter"], "cv": ["cv", "cv-jupyter"]}

    both_taken = other + "Host p-d2l p-d2l-jupyter\n"
    found = entries.ssh_config_entries([box()], {}, [both_taken], "p", "ubuntu")
    assert found["boxes"] == [] and "rename the box" in found["rejected"][0]


def test_entries_use_the_address_the_inventory_gives_for_that_very_instance():
    hostvars = {"d2l": {"instance_id": "i-0123456789abcdef0", "ansible_host": "10.88.0.5", "ansible_port": 2222}}
    (found,) = entries.ssh_config_entries([box()], hostvars, [], "p", "ubuntu")["boxes"]
    assert (found["host"], found["port"]) == ("10.88.0.5", 2222)
    # another instance under the same name (a relaunch the inventory has not seen yet): EC2's address
    stale = {"d2l": {"instance_id": "i-00000000000000001", "ansible_host": "10.88.0.5"}}
    (found,) = entries.ssh_config_entries([box()], stale, [], "p", "ubuntu")["boxes"]
    assert (found["host"], found["port"]) == ("203.0.113.10", None)


def test_the_inventory_plugin_documents_the_upstream_options_word_for_word():
    """gpubox_ec2 is amazon.aws.aws_ec2 less a host variable: its options are the upstream ones, written out so that
    ansible-doc can read them. An amazon.aws release that changes them makes this fail: copy them again."""
    from ansible_collections.amazon.aws.plugins.inventory import aws_ec2

    plugin = load_module(ROOT / "plugins" / "inventory" / "gpubox_ec2.py", "gpubox_inventory")
    assert aws_ec2.DOCUMENTATION.replace("name: aws_ec2\n", "name: gpubox_ec2\n", 1) == plugin.DOCUMENTATION
