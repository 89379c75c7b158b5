"""Safe to point at a real AWS account: gpubox touches only what it made, refuses unsafe settings before anything
exists, and nothing it reads back from AWS can change this machine.

Against the local EC2 API only (no containers). Every refusal is checked twice: the message names the value, and a
snapshot of the API's resources and of the test's HOME is exactly what it was before the run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_ansible
from tests.integration.ec2play import SSH_CIDR, home_env, instances, playbook, snapshot, tags, unsafe

PROJECT = "safety"
BASE = {"gpubox_project": PROJECT, "gpubox_ssh_cidr": SSH_CIDR, "gpubox_boxes": [{"name": "d2l"}]}
HOSTILE = "ProxyCommand sh -c 'touch {marker}'"


def ssh_g(config: Path, alias: str) -> dict[str, list[str]]:
    """What `ssh ALIAS` would do with this config, as ssh itself resolves it."""
    proc = subprocess.run(["ssh", "-G", "-F", str(config), alias], capture_output=True, text=True)
    assert proc.returncode == 0, f"ssh cannot read {config}: {proc.stderr}"
    settings: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)
    return settings


def image_id(ec2) -> str:
    images = ec2.describe_images(Owners=["099720109477"], Filters=[{"Name": "name", "Values": ["*noble*amd64*"]}])
    return images["Images"][0]["ImageId"]


def run_instance(ec2, instance_tags: dict[str, str]) -> dict:
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in instance_tags.items()]}]
    return ec2.run_instances(
        ImageId=image_id(ec2), InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1, TagSpecifications=spec
    )["Instances"][0]


def describe(ec2, instance_id: str) -> dict:
    return instances(ec2, ("instance-id", [instance_id]))[0]


# --- ownership -------------------------------------------------------------------------------------------------


def test_an_instance_made_by_hand_is_never_adopted_nor_terminated(aws_env, ec2, tmp_path):
    foreign = run_instance(ec2, {"Name": "d2l", "Project": PROJECT})
    before = describe(ec2, foreign["InstanceId"])
    home = tmp_path / "home"
    state = snapshot(ec2, home)

    run = playbook("provision", home_env(aws_env, home), extra=BASE)

    assert run.rc != 0
    message = run.failure()
    assert foreign["InstanceId"] in message and "ManagedBy=gpubox" in message
    assert "rename the box" in message and "create-tags" in message
    assert snapshot(ec2, home) == state

    gone = playbook("terminate", home_env(aws_env, home), "-e", "gpubox_confirm=yes", extra={"gpubox_project": PROJECT})
    assert gone.rc == 0, gone.output[-3000:]
    after = describe(ec2, foreign["InstanceId"])
    assert after["State"]["Name"] == "running"
    assert tags(after) == tags(before)
    assert after["SecurityGroups"] == before["SecurityGroups"]
    assert after["MetadataOptions"] == before["MetadataOptions"]


def test_a_security_group_of_the_projects_name_made_by_hand_is_not_taken_over(aws_env, ec2, tmp_path):
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group = ec2.create_security_group(GroupName=f"gpubox-{PROJECT}-ssh", Description="mine", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="10.0.0.0/8")
    home = tmp_path / "home"
    state = snapshot(ec2, home)

    run = playbook("provision", home_env(aws_env, home), extra=BASE)

    assert run.rc != 0
    assert group in run.failure() and f"gpubox-{PROJECT}-ssh" in run.failure()
    assert snapshot(ec2, home) == state


# --- settings refused before anything exists ---------------------------------------------------------------------

REFUSED = [
    ("ssh-cidr-slash-0", {"gpubox_ssh_cidr": "203.0.113.7/0"}, ["203.0.113.7/0", "0.0.0.0/0", "4294967296"]),
    ("ssh-cidr-0000", {"gpubox_ssh_cidr": "0.0.0.0/0"}, ["0.0.0.0/0", "whole internet"]),
    ("ssh-cidr-wide", {"gpubox_ssh_cidr": "198.51.100.7/8"}, ["198.0.0.0/8", "16777216", "gpubox_ssh_cidr_allow_wide"]),
    (
        "ssh-cidr-0-acknowledged",
        {"gpubox_ssh_cidr": "0.0.0.0/0", "gpubox_ssh_cidr_allow_wide": True},
        ["0.0.0.0/0", "whole internet"],
    ),
    ("volume-huge", {"gpubox_boxes": [{"name": "d2l", "volume_size": 100000}]}, ["100000", "16384"]),
    ("volume-fraction", {"gpubox_boxes": [{"name": "d2l", "volume_size": 64.9}]}, ["64.9", "whole number"]),
    ("volume-text", {"gpubox_boxes": [{"name": "d2l", "volume_size": "64.9"}]}, ['"64.9"', "whole number"]),
    ("region", {"gpubox_region": "us-west-9"}, ["us-west-9", "not an AWS region"]),
    ("box-dot", {"gpubox_boxes": [{"name": "github.com"}]}, ['"github.com"', "dot"]),
    ("box-jupyter", {"gpubox_boxes": [{"name": "d2l"}, {"name": "d2l-jupyter"}]}, ['"d2l-jupyter"', "tunnel"]),
    ("box-case", {"gpubox_boxes": [{"name": "D2L"}, {"name": "d2l"}]}, ['"D2L"', '"d2l"']),
    ("box-newline", {"gpubox_boxes": [{"name": "d2l\nProxyCommand x"}]}, ["d2l\\nProxyCommand x"]),
    ("project-wildcard", {"gpubox_project": "*"}, ['"*"', "gpubox_project"]),
    ("project-traversal", {"gpubox_project": "../../x"}, ['"../../x"', "gpubox_project"]),
    ("project-dotdot", {"gpubox_project": "a..b"}, ['"a..b"', "gpubox_project"]),
    ("project-newline", {"gpubox_project": "p\n"}, ['"p\\n"', "gpubox_project"]),
    ("key-name-newline", {"gpubox_key_name": "k\nx"}, ['"k\\nx"', "gpubox_key_name"]),
    ("key-file-quote", {"gpubox_key_file": '~/.ssh/my"key.pem'}, ["gpubox_key_file", "quotes"]),
    ("key-file-percent", {"gpubox_key_file": "~/.ssh/%d.pem"}, ["gpubox_key_file", "%d.pem"]),
    ("ssh-dir-newline", {"gpubox_ssh_config_dir": "~/.ssh/x\nProxyCommand y"}, ["gpubox_ssh_config_dir"]),
    ("port-huge", {"gpubox_jupyter_local_port": 99999}, ["gpubox_jupyter_local_port", "99999", "65535"]),
    ("port-text", {"gpubox_jupyter_local_port": "8889 -R 1"}, ["gpubox_jupyter_local_port", "8889 -R 1"]),
    ("port-remote", {"gpubox_jupyter_remote_port": 0}, ["gpubox_jupyter_remote_port", "0"]),
    ("ssh-user", {"gpubox_ssh_user": "ubuntu\nProxyCommand x"}, ["gpubox_ssh_user", "ubuntu\\nProxyCommand x"]),
    ("image-wildcard", {"gpubox_boxes": [{"name": "d2l", "image": "my:d2l-*"}]}, ["my:d2l-*", "wildcard"]),
    ("stop-at-8pm", {"gpubox_boxes": [{"name": "d2l", "stop_at": "8pm"}]}, ['stop_at "8pm"', '"20:00 Europe/Berlin"']),
    # unquoted in YAML, 20:00 is the sexagesimal number 1200
    ("stop-at-number", {"gpubox_boxes": [{"name": "d2l", "stop_at": 1200}]}, ["stop_at 1200", "the number 1200"]),
    ("stop-at-zone", {"gpubox_boxes": [{"name": "d2l", "stop_at": "20:00 Mars/Olympus"}]}, ['"20:00 Mars/Olympus"']),
    ("stop-at-default", {"gpubox_stop_at": "25:00"}, ['stop_at "25:00"', "HH:MM"]),
    ("ssh-config-manage", {"gpubox_ssh_config_manage": "sometimes"}, ["gpubox_ssh_config_manage", '"sometimes"']),
    # The agent's key (an AWX Machine credential) cannot make a key pair: gpubox would have nowhere to keep it.
    ("agent-key-no-pair", {"gpubox_key_file": "", "gpubox_key_name": "nowhere"}, ["'nowhere'", "import-key-pair"]),
]


@pytest.mark.parametrize("extra, expected", [(e, x) for _, e, x in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_unsafe_settings_are_refused_and_leave_nothing(aws_env, ec2, tmp_path, extra, expected):
    home = tmp_path / "home"
    state = snapshot(ec2, tmp_path)

    run = playbook("provision", home_env(aws_env, home), extra={**BASE, **extra})

    assert run.rc != 0, run.output[-3000:]
    message = run.failure()
    for text in expected:
        assert text in message, message
    assert snapshot(ec2, tmp_path) == {**state, "files": [str(home)]}


@pytest.mark.parametrize("skip", ["preflight", "always", "preflight,always"])
def test_skipping_the_preflight_creates_nothing_unchecked(aws_env, ec2, tmp_path, skip):
    home = tmp_path / "home"
    state = snapshot(ec2, tmp_path)

    run = playbook(
        "provision", home_env(aws_env, home), "--skip-tags", skip, extra={**BASE, "gpubox_ssh_cidr": "0.0.0.0/0"}
    )

    assert run.rc != 0
    assert snapshot(ec2, tmp_path) == {**state, "files": [str(home)]}


# A job request that is right but for the one value a case adds.
RUN = ["-e", "gpubox_box=d2l", "-e", "gpubox_cmd=true"]
LIFECYCLE_REFUSED = [
    ("image-box-wildcard", "image", ["-e", "gpubox_box=d*", "-e", "gpubox_image_name=baked"], ['"d*"', "gpubox_box"]),
    ("image-name-wildcard", "image", ["-e", "gpubox_box=d2l", "-e", "gpubox_image_name=bak*"], ['"bak*"']),
    ("image-name-slash", "image", ["-e", "gpubox_box=d2l", "-e", "gpubox_image_name=a/../b"], ['"a/../b"']),
    ("stop-project", "stop", ["-e", "gpubox_project=*"], ['"*"', "gpubox_project"]),
    ("start-only", "start", ["-e", "gpubox_only=d*"], ['"d*"', "gpubox_only"]),
    ("list-project", "list", ["-e", "gpubox_project=../../x"], ['"../../x"']),
    (
        "terminate-project",
        "terminate",
        ["-e", "gpubox_project=../../x", "-e", "gpubox_confirm=yes"],
        ['"../../x"', "gpubox_project"],
    ),
    ("terminate-only", "terminate", ["-e", "gpubox_only=d2l,*", "-e", "gpubox_confirm=yes"], ["gpubox_only"]),
    ("run-box-wildcard", "run", ["-e", "gpubox_box=d*", "-e", "gpubox_cmd=true"], ['"d*"', "gpubox_box"]),
    ("run-box-unknown", "run", ["-e", "gpubox_box=d3l", "-e", "gpubox_cmd=true"], ['"d3l"', "not a running box"]),
    ("run-no-box", "run", ["-e", "gpubox_cmd=true"], ["-e gpubox_box=NAME"]),
    ("run-cmd-list", "run", ["-e", '{"gpubox_box": "d2l", "gpubox_cmd": ["python", "x.py"]}'], ['["python", "x.py"]']),
    ("run-cmd-blank", "run", ["-e", "gpubox_box=d2l", "-e", "gpubox_cmd=' '"], ['gpubox_cmd is " "']),
    ("run-no-workdir", "run", [*RUN, "-e", "gpubox_workdir=/no/such"], ['"/no/such"', "not a directory"]),
    ("run-job-path", "run", [*RUN, "-e", "gpubox_job=../x"], ['"../x"', "not a job name"]),
    (
        "run-workdir-name",
        "run",
        [*RUN, "-e", "gpubox_workdir=/"],
        ['The job takes its workdir name, ""', "-e gpubox_job="],
    ),
    ("run-restart", "run", [*RUN, "-e", "gpubox_restart=always"], ['gpubox_restart is "always"', "on-interruption"]),
    ("logs-box-unknown", "logs", ["-e", "gpubox_box=d3l"], ['"d3l"', "not a running box"]),
    ("logs-job-glob", "logs", ["-e", "gpubox_box=d2l", "-e", "gpubox_job=*"], ['"*"', "not a job name"]),
]


@pytest.mark.parametrize(
    "name, args, expected", [(p, a, x) for _, p, a, x in LIFECYCLE_REFUSED], ids=[i for i, *_ in LIFECYCLE_REFUSED]
)
def test_lifecycle_playbooks_take_literal_names_only(aws_env, ec2, tmp_path, name, args, expected):
    """Wildcards and paths are refused before any call: the box d2l (which `d*` would match) stays untouched."""
    home = tmp_path / "home"
    env = home_env(aws_env, home)
    run_instance(ec2, {"ManagedBy": "gpubox", "Project": PROJECT, "Name": "d2l", "SshUser": "ubuntu"})
    state = snapshot(ec2, tmp_path)

    project = [] if any(a.startswith("gpubox_project=") for a in args) else ["-e", f"gpubox_project={PROJECT}"]
    run = playbook(name, env, *project, *args)

    assert run.rc != 0, run.output[-3000:]
    for text in expected:
        assert text in run.failure(), run.failure()
    assert snapshot(ec2, tmp_path) == state


# --- nothing from AWS is trusted as syntax -----------------------------------------------------------------------


def test_hostile_tags_never_reach_the_ssh_config_or_the_inventory(aws_env, ec2, tmp_path):
    marker = tmp_path / "pwned"
    hostile = HOSTILE.format(marker=marker)
    home = tmp_path / "home"
    env = home_env(aws_env, home)
    made = playbook("provision", env, extra=BASE)
    assert made.rc == 0, made.output[-3000:]
    owned = {"ManagedBy": "gpubox", "Project": PROJECT}
    evil = [
        run_instance(ec2, {**owned, "Name": f"x\n{hostile}", "SshUser": "ubuntu"}),
        run_instance(ec2, {**owned, "Name": "bad-user", "SshUser": f"ubuntu\n{hostile}"}),
        run_instance(ec2, {**owned, "Name": "github.com", "SshUser": "ubuntu"}),
        run_instance(ec2, {**owned, "Name": "Match all", "SshUser": "ubuntu"}),
    ]

    run = playbook("start", env, extra={"gpubox_project": PROJECT})

    assert run.rc == 0, run.output[-3000:]
    conf = home / ".ssh" / "gpubox" / f"{PROJECT}.conf"
    text = conf.read_text()
    for word in ("ProxyCommand", "LocalCommand", "Match", "github.com", "bad-user", "touch"):
        assert word not in text, text
    reported = "\n".join(str(r.get("msg", "")) for _, r in run.tasks() for r in [r, *r.get("results", [])])
    for instance in evil:
        assert instance["InstanceId"] in reported
    config = home / ".ssh" / "config"
    d2l = instances(ec2, ("tag:Name", ["d2l"]))[0]
    assert ssh_g(config, "d2l")["hostname"] == [d2l["PublicIpAddress"]]
    for alias in ("x", "bad-user", "github.com", "all"):
        resolved = ssh_g(config, alias)
        assert "proxycommand" not in resolved and "localcommand" not in resolved
        assert resolved["hostname"] == [alias]
    assert not marker.exists()

    listed = run_ansible(["ansible-inventory", "--list", "-e", f"gpubox_project={PROJECT}"], env=env)
    inventory = json.loads(listed.stdout)
    assert inventory["gpubox"]["hosts"] == ["d2l"]


def test_a_home_and_key_path_with_spaces_keep_every_ssh_command_working(aws_env, ec2, tmp_path):
    home = tmp_path / "my home"
    extra = {**BASE, "gpubox_key_file": "~/my keys/gpubox.pem"}

    run = playbook("provision", home_env(aws_env, home), extra=extra)

    assert run.rc == 0, run.output[-3000:]
    config = home / ".ssh" / "config"
    assert config.read_text().startswith(f'Include "{home}/.ssh/gpubox/*.conf"')
    d2l = ssh_g(config, "d2l")
    assert d2l["identityfile"] == [f"{home}/my keys/gpubox.pem"]
    assert d2l["userknownhostsfile"] == [f"{home}/.ssh/gpubox/known_hosts"]
    assert (home / "my keys" / "gpubox.pem").stat().st_mode & 0o777 == 0o400
    # the rest of the user's ssh still works: ssh reads the whole config without error
    assert ssh_g(config, "example.org")["hostname"] == ["example.org"]


def test_a_reused_local_port_setting_writes_a_valid_tunnel(aws_env, ec2, tmp_path):
    home = tmp_path / "home"
    run = playbook("provision", home_env(aws_env, home), extra={**BASE, "gpubox_jupyter_local_port": "18889"})
    assert run.rc == 0, run.output[-3000:]
    assert ssh_g(home / ".ssh" / "config", "d2l-jupyter")["localforward"] == ["18889 [localhost]:8888"]


# --- SSH exposure ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, extra, used",
    [
        ("203.0.113.7/24", {}, "203.0.113.0/24"),
        ("203.0.113.7/32", {}, "203.0.113.7/32"),
        ("198.51.100.7/16", {"gpubox_ssh_cidr_allow_wide": True}, "198.51.0.0/16"),
    ],
)
def test_the_ssh_range_is_used_as_it_really_is(aws_env, ec2, tmp_path, given, extra, used):
    run = playbook(
        "provision",
        home_env(aws_env, tmp_path / "home"),
        "--tags",
        "firewall",
        extra={**BASE, "gpubox_ssh_cidr": given, **extra},
    )
    assert run.rc == 0, run.output[-3000:]
    (group,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"gpubox-{PROJECT}-ssh"]}])[
        "SecurityGroups"
    ]
    assert [r["CidrIp"] for p in group["IpPermissions"] for r in p["IpRanges"]] == [used]


# --- two projects, one region ------------------------------------------------------------------------------------


def test_two_projects_with_the_same_box_name_stay_apart(aws_env, ec2, tmp_path):
    home = tmp_path / "home"
    env = home_env(aws_env, home)
    ids = {}
    for project in ("alpha", "beta"):
        run = playbook("provision", env, extra={**BASE, "gpubox_project": project})
        assert run.rc == 0, run.output[-3000:]
        (box,) = instances(ec2, ("tag:Project", [project]), ("tag:Name", ["d2l"]))
        ids[project] = box

    for project, box in ids.items():
        listed = run_ansible(["ansible-inventory", "--list", "-e", f"gpubox_project={project}"], env=env)
        hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
        assert list(hostvars) == ["d2l"]
        assert unsafe(hostvars["d2l"]["instance_id"]) == box["InstanceId"]

    # the first project keeps `ssh d2l`; the second one's alias is qualified, never shadowed
    config = home / ".ssh" / "config"
    assert ssh_g(config, "d2l")["hostname"] == [ids["alpha"]["PublicIpAddress"]]
    assert ssh_g(config, "beta-d2l")["hostname"] == [ids["beta"]["PublicIpAddress"]]
    assert ssh_g(config, "beta-d2l-jupyter")["localforward"] == ["8889 [localhost]:8888"]
    # ...and configure.yml prints the tunnel command with the alias that works
    for project, alias in (("gpubox_project=alpha", "d2l"), ("gpubox_project=beta", "beta-d2l")):
        shown = run_ansible(
            ["ansible", "d2l", "-m", "ansible.builtin.debug", "-a", "var=jupyter_ssh_destination", "-e", project],
            env=env,
        )
        assert f"jupyter_ssh_destination: {alias}\n" in shown.stdout, shown.stdout

    stopped = playbook("stop", env, extra={"gpubox_project": "alpha"})
    assert stopped.rc == 0, stopped.output[-3000:]
    assert describe(ec2, ids["alpha"]["InstanceId"])["State"]["Name"] == "stopped"
    assert describe(ec2, ids["beta"]["InstanceId"])["State"]["Name"] == "running"
    assert "Host beta-d2l" in (home / ".ssh" / "gpubox" / "beta.conf").read_text()


def test_the_inventory_reads_the_project_where_the_playbooks_do(aws_env, ec2, tmp_path):
    """A later inventory source's group_vars/all (as the rehearsal uses) sets the project for both."""
    env = home_env(aws_env, tmp_path / "home")
    for project in ("alpha", "beta"):
        run_instance(ec2, {"ManagedBy": "gpubox", "Project": project, "Name": "d2l", "SshUser": "ubuntu"})
    extra_source = tmp_path / "inventory"
    (extra_source / "group_vars" / "all").mkdir(parents=True)
    (extra_source / "group_vars" / "all" / "mine.yml").write_text("gpubox_project: beta\n")
    (extra_source / "hosts.yml").write_text("all: {}\n")
    sources = dict(env, ANSIBLE_INVENTORY=f"{ROOT / 'inventory'},{extra_source}")
    listed = run_ansible(["ansible-inventory", "--list"], env=sources)
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
    (beta,) = instances(ec2, ("tag:Project", ["beta"]))
    assert unsafe(hostvars["d2l"]["instance_id"]) == beta["InstanceId"]
    assert unsafe(hostvars["d2l"]["gpubox_project"]) == "beta"

    templated = extra_source / "group_vars" / "all" / "mine.yml"
    templated.write_text("gpubox_project: \"{{ 'be' ~ 'ta' }}\"\n")
    refused = run_ansible(["ansible-inventory", "--list"], env=sources, check=False)
    assert "literal" in refused.stdout + refused.stderr


# --- fresh facts -------------------------------------------------------------------------------------------------


def cached_facts(cache: Path, host: str) -> dict:
    payload = json.loads((cache / f"s1_{host}").read_text())["__payload__"]
    return {
        key: value.get("value", value) if isinstance(value, dict) else value
        for key, value in json.loads(payload).items()
    }


def test_a_box_relaunched_under_its_name_never_sees_the_old_facts(aws_env, ec2, tmp_path):
    cache = tmp_path / "facts"
    env = dict(home_env(aws_env, tmp_path / "home"), ANSIBLE_CACHE_PLUGIN_CONNECTION=str(cache))
    assert playbook("provision", env, extra=BASE).rc == 0
    (old,) = instances(ec2, ("tag:Name", ["d2l"]), ("instance-state-name", ["running"]))
    # facts as a configure run of the old instance leaves them (a marker stands for the gathered facts)
    stale = tmp_path / "stale.yml"
    stale.write_text(
        "- hosts: gpubox\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.set_fact:\n        gpubox_facts_instance: '{{ instance_id }}'\n"
        "        old_release: jammy\n        cacheable: true\n"
    )
    run_ansible(["ansible-playbook", str(stale), "-e", f"gpubox_project={PROJECT}"], env=env)
    assert cached_facts(cache, "d2l")["old_release"] == "jammy"

    assert playbook("terminate", env, "-e", "gpubox_confirm=yes", extra={"gpubox_project": PROJECT}).rc == 0
    assert (
        playbook("provision", env, extra={**BASE, "gpubox_boxes": [{"name": "d2l", "instance_type": "g5.xlarge"}]}).rc
        == 0
    )
    (new,) = instances(ec2, ("tag:Name", ["d2l"]), ("instance-state-name", ["running"]))
    assert new["InstanceId"] != old["InstanceId"]

    # configure.yml's first play (the box cannot be reached here: a closed port makes the wait fail at once)
    run_ansible(
        [
            "ansible-playbook",
            str(ROOT / "playbooks" / "configure.yml"),
            "--tags",
            "none-of-the-roles",
            "-e",
            f"gpubox_project={PROJECT}",
            "-e",
            "gpubox_boot_timeout=1",
            "-e",
            "ansible_host=127.0.0.1",
            "-e",
            "ansible_port=9",
        ],
        env=env,
        check=False,
    )
    facts = cached_facts(cache, "d2l")
    assert "old_release" not in facts
    assert facts["gpubox_facts_instance"] == new["InstanceId"]

    # the same instance again: its cached facts are kept (not gathered anew on every run)
    stale.write_text(stale.read_text().replace("old_release: jammy", "new_release: noble"))
    run_ansible(["ansible-playbook", str(stale), "-e", f"gpubox_project={PROJECT}"], env=env)
    first_play = [str(ROOT / "playbooks" / "configure.yml"), "--tags", "none-of-the-roles"]
    unreachable = ["-e", "gpubox_boot_timeout=1", "-e", "ansible_host=127.0.0.1", "-e", "ansible_port=9"]
    run_ansible(
        ["ansible-playbook", *first_play, "-e", f"gpubox_project={PROJECT}", *unreachable], env=env, check=False
    )
    assert cached_facts(cache, "d2l")["new_release"] == "noble"
