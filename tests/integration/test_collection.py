"""gpubox as users install it: the collection tarball `ansible-galaxy collection build` makes, installed into a fresh
folder, run by FQCN from a working folder outside the checkout against the local EC2 API.

The working folder holds what the README's install section says to copy from the installed collection (its
inventory/ and ansible.cfg); nothing of the checkout is on the way (its collections/ link, plugins/ or roles/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

import pytest

from tests.conftest import ROOT, VENV_BIN, run_ansible
from tests.integration.ec2play import SSH_CIDR, home_env, instances

PROJECT = "pytest-installed"
SETTINGS = {"gpubox_project": PROJECT, "gpubox_ssh_cidr": SSH_CIDR, "gpubox_boxes": [{"name": "solo"}]}


@pytest.fixture(scope="module")
def installed(api, tmp_path_factory):
    """(tarball, the installed collection, the user's working folder, the environment to run in)."""
    tmp = tmp_path_factory.mktemp("collection")
    empty = tmp / "empty.cfg"
    empty.write_text("")
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(empty), "HOME": str(tmp / "home")}
    subprocess.run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(tmp / "build"), str(ROOT)],
        env=env, cwd=tmp, check=True, capture_output=True,
    )  # fmt: skip
    (tarball,) = (tmp / "build").glob("gpubox-gpubox-*.tar.gz")
    collections = tmp / "collections"
    subprocess.run(
        ["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(collections), str(tarball)],
        env=env, cwd=tmp, check=True, capture_output=True,
    )  # fmt: skip
    home = collections / "ansible_collections" / "gpubox" / "gpubox"
    work = tmp / "work"
    work.mkdir()
    shutil.copytree(home / "inventory", work / "inventory")
    shutil.copy(home / "ansible.cfg", work / "ansible.cfg")
    run_env = dict(
        home_env(api.env, tmp / "home"),
        ANSIBLE_CONFIG=str(work / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
    )
    return {"tarball": tarball, "home": home, "work": work, "env": run_env}


def test_the_tarball_holds_the_collection_and_not_the_proving_ground(installed):
    with tarfile.open(installed["tarball"]) as tar:
        names = set(tar.getnames())
    manifest = json.loads((installed["home"] / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("gpubox", "gpubox")
    shipped = ["playbooks/site.yml", "plugins/modules/ec2_box_launch.py", "plugins/module_utils/tags.py"]
    shipped += ["roles/cuda/tasks/main.yml", "inventory/aws_ec2.yml", "meta/runtime.yml", "CHANGELOG.md"]
    assert [n for n in shipped if n not in names] == []
    left_out = ("tests/integration", "tests/ground", "molecule", "collections", ".venv", "requirements.lock")
    assert not [n for n in names if n.startswith(left_out)]


def test_the_installed_collection_runs_by_fqcn_and_lists_its_box(installed, ec2m):
    work, env = installed["work"], installed["env"]
    where = run_ansible(["ansible-galaxy", "collection", "list", "gpubox.gpubox"], env=env, cwd=work)
    assert str(installed["home"].parent.parent) in where.stdout, where.stdout

    # The whole job by its FQCN: every play, role and task resolves from the installed collection alone.
    site = ["ansible-playbook", "gpubox.gpubox.site", "-i", "inventory", "--list-tasks"]
    listed = run_ansible(site, env=env, cwd=work)
    for role in ("ec2_preflight", "ec2_launch", "base", "cuda", "miniconda", "jupyter", "autostop"):
        assert f"{role} : " in listed.stdout, (role, listed.stdout[-3000:])

    run = run_ansible(
        ["ansible-playbook", "gpubox.gpubox.provision", "-i", "inventory", "-e", json.dumps(SETTINGS)],
        env=env, cwd=work, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    (box,) = instances(
        ec2m, ("tag:Name", ["solo"]), ("tag:Project", [PROJECT]), ("tag:ManagedBy", ["gpubox"]),
        ("instance-state-name", ["pending", "running"]),
    )  # fmt: skip

    graph = run_ansible(
        ["ansible-inventory", "-i", "inventory", "--graph", "-e", json.dumps({"gpubox_project": PROJECT})],
        env=env, cwd=work,
    )  # fmt: skip
    assert "@gpubox:" in graph.stdout and "solo" in graph.stdout, graph.stdout
    assert box["InstanceId"]

    confirmed = dict(SETTINGS, gpubox_confirm="yes")
    gone = run_ansible(
        ["ansible-playbook", "gpubox.gpubox.terminate", "-i", "inventory", "-e", json.dumps(confirmed)],
        env=env, cwd=work, check=False,
    )  # fmt: skip
    assert gone.returncode == 0, gone.stdout[-4000:]
    assert not instances(ec2m, ("tag:Project", [PROJECT]), ("instance-state-name", ["pending", "running"]))
