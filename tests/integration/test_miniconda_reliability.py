"""Reliability of the miniconda and jupyter roles on a systemd host reached over SSH, with the stand-in
installers and notebooks on the test mirror:

- the mirror answers 503 twice (or sends corrupted bytes once): the download is retried and succeeds;
- a wrong checksum: a clear failure naming the variable, and nothing half-installed (no prefix on a fresh
  host, the previous installation intact on an update);
- drift: the environment deleted; a package of its spec uninstalled inside it, or at another version; a module
  that no longer imports; the kernel spec deleted; a notebook deleted (restored) next to one the user edited
  (left as it is); the jupyter service stopped and disabled, or its unit edited → the role rerun alone with
  `--tags` repairs it → a second run changes nothing;
- check mode (`--check`): on the configured box changed=0; on a drifted box the drift is reported (changed)
  and the box stays as it was.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, ssh_inventory
from tests.conftest import run_ansible as _run_ansible

MINIFORGE = "Miniforge3-25.3.1-0-Linux-x86_64.sh"
MINICONDA = "Miniconda3-py311_25.5.1-1-Linux-x86_64.sh"
PREFIX = "/home/ubuntu/miniconda3"


@pytest.fixture(scope="module")
def standins(mirror_root):
    """The stand-in downloads, built (cached) and put on the mirror; returns their SHA-256 by file name."""
    cache = ROOT / ".cache" / "mirror"
    subprocess.run([str(ROOT / "tests" / "standins" / "build.sh"), str(cache)], check=True)
    sums = {}
    for part in ("miniconda", "d2l"):
        shutil.copytree(cache / part, mirror_root / part, dirs_exist_ok=True)
        for line in (cache / part / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split("  ")
            sums[name] = digest
    return sums


def run_ansible(args: list[str], check: bool = True):
    """ansible-playbook with a fact cache of this test's own: each test host is a new box under the same name."""
    cache = Path(args[2]).parent / "facts"
    return _run_ansible(args, env={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache)}, check=check)


def install_play(tmp_path, variables: dict) -> str:
    """Only the download-and-install part of the role (its `install` tasks), with ordinary variables."""
    play = [
        {
            "name": "Install Miniconda",
            "hosts": "box",
            "become": True,
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Install",
                    "ansible.builtin.include_role": {"name": "miniconda", "tasks_from": "install.yml"},
                    "vars": variables,
                }
            ],
        }
    ]
    path = tmp_path / "install.yml"
    path.write_text(yaml.safe_dump(play))
    return str(path)


def installer_vars(mirror, standins, name: str, sha256: str | None = None) -> dict:
    return {
        # The install tasks alone skip the role's lookup of the user's home (tasks/main.yml): say where it is.
        "miniconda_home": str(Path(PREFIX).parent),
        "miniconda_installer_url": f"{mirror.bridge_url}/miniconda/{name}",
        "miniconda_installer_sha256": sha256 or standins[name],
        "miniconda_download_delay": 1,
    }


def failure_message(output: str) -> str:
    """The message of the failed task itself (not the task source ansible-core prints under it)."""
    found = re.findall(r"msg: (.*?)(?:\n\S|\n\s*\n|\Z)", output, re.S)
    return " ".join(" ".join(found[-1].split()).split("'")) if found else output


def test_download_retried_then_installed(testhost_factory, ssh_key, mirror, standins, tmp_path):
    host = testhost_factory("miniconda-dl")
    inv = str(ssh_inventory(tmp_path / "hosts.yml", host, ssh_key))
    mirror.reset()
    path = f"/miniconda/{MINIFORGE}"
    mirror.fault(path, count=2, status=503)
    run_ansible(["ansible-playbook", "-i", inv, install_play(tmp_path, installer_vars(mirror, standins, MINIFORGE))])
    assert [r["status"] for r in mirror.requests(path)] == [503, 503, 200]
    assert host.exec("runuser", "-u", "ubuntu", "--", f"{PREFIX}/bin/conda", "--version").stdout == "conda 25.3.1\n"
    assert host.exec("ls", "/var/tmp/gpubox").stdout == ""

    # A corrupted transfer fails the checksum and is fetched again; the update (-u) keeps the prefix's envs.
    host.exec("mkdir", "-p", f"{PREFIX}/envs/keep/conda-meta", user="ubuntu")
    mirror.reset()
    path = f"/miniconda/{MINICONDA}"
    mirror.fault(path, count=1, corrupt=True)
    run_ansible(["ansible-playbook", "-i", inv, install_play(tmp_path, installer_vars(mirror, standins, MINICONDA))])
    assert [r["status"] for r in mirror.requests(path)] == [200, 200]
    assert host.exec("runuser", "-u", "ubuntu", "--", f"{PREFIX}/bin/conda", "--version").stdout == "conda 25.5.1\n"
    assert host.exec("test", "-d", f"{PREFIX}/envs/keep/conda-meta", check=False).returncode == 0
    # Same installer again: nothing to do.
    again = run_ansible(
        ["ansible-playbook", "-i", inv, install_play(tmp_path, installer_vars(mirror, standins, MINICONDA))]
    )
    assert re.search(r"box\s*: ok=\d+\s+changed=0", again.stdout), again.stdout[-2000:]


def test_wrong_checksum_leaves_nothing_half_installed(testhost_factory, ssh_key, mirror, standins, tmp_path):
    host = testhost_factory("miniconda-sum")
    inv = str(ssh_inventory(tmp_path / "hosts.yml", host, ssh_key))
    wrong = "0" * 64
    out = run_ansible(
        ["ansible-playbook", "-i", inv, install_play(tmp_path, installer_vars(mirror, standins, MINIFORGE, wrong))],
        check=False,
    )
    assert out.returncode != 0
    message = failure_message(out.stdout)
    assert "miniconda_installer_sha256" in message and wrong in message, message
    assert f"Nothing was left in {PREFIX}" in message
    assert host.exec("test", "-e", PREFIX, check=False).returncode != 0
    assert host.exec("ls", "/var/tmp/gpubox").stdout == ""

    # On an update, the installation already there stays as it was.
    run_ansible(["ansible-playbook", "-i", inv, install_play(tmp_path, installer_vars(mirror, standins, MINIFORGE))])
    out = run_ansible(
        ["ansible-playbook", "-i", inv, install_play(tmp_path, installer_vars(mirror, standins, MINICONDA, wrong))],
        check=False,
    )
    assert out.returncode != 0
    assert "The installation already there is left as it was" in failure_message(out.stdout)
    assert host.exec("runuser", "-u", "ubuntu", "--", f"{PREFIX}/bin/conda", "--version").stdout == "conda 25.3.1\n"
    assert host.exec("cat", f"{PREFIX}/.gpubox/installer").stdout.startswith(MINIFORGE)


def configure_play(tmp_path, mirror, standins) -> str:
    """Both roles, each tagged with its name (as playbooks/configure.yml applies them)."""
    play = [
        {
            "name": "Configure the box",
            "hosts": "box",
            "become": True,
            "vars": {
                "miniconda_distribution": "miniforge",
                "miniconda_framework": "none",
                "miniconda_download_delay": 1,
                "miniconda_installer_url": f"{mirror.bridge_url}/miniconda/{MINIFORGE}",
                "miniconda_installer_version": "25.3.1-0",
                "miniconda_installer_sha256": standins[MINIFORGE],
                "miniconda_notebooks_url": f"{mirror.bridge_url}/d2l/d2l-en-1.0.3.zip",
                "miniconda_notebooks_sha256": standins["d2l-en-1.0.3.zip"],
            },
            "roles": [{"role": "miniconda", "tags": ["miniconda"]}, {"role": "jupyter", "tags": ["jupyter"]}],
        }
    ]
    path = tmp_path / "configure.yml"
    path.write_text(yaml.safe_dump(play))
    return str(path)


def changed(output: str) -> int:
    return int(re.search(r"box\s*: ok=\d+\s+changed=(\d+)", output).group(1))


ENV = f"{PREFIX}/envs/d2l"
SITE = f"{ENV}/lib/python3.11/site-packages"
NOTEBOOKS = "/home/ubuntu/d2l-en/pytorch/chapter_preliminaries"
KERNEL = "/home/ubuntu/.local/share/jupyter/kernels/d2l/kernel.json"


def d2l_version(host) -> str:
    out = host.exec(
        "runuser",
        "-u",
        "ubuntu",
        "--",
        f"{ENV}/bin/python",
        "-c",
        "import importlib.metadata as m; print(m.version('d2l'))",
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else "missing"


def imports(host, module: str) -> bool:
    return (
        host.exec(
            "runuser", "-u", "ubuntu", "--", f"{ENV}/bin/python", "-c", f"import {module}", check=False
        ).returncode
        == 0
    )


def test_drift_repaired_by_rerunning_the_role(testhost_factory, ssh_key, mirror, standins, tmp_path):
    host = testhost_factory("miniconda-drift", image="debian13")
    inv = str(ssh_inventory(tmp_path / "hosts.yml", host, ssh_key))
    play = configure_play(tmp_path, mirror, standins)

    def rerun(tag: str, *extra: str) -> int:
        return changed(run_ansible(["ansible-playbook", "-i", inv, play, "--tags", tag, *extra]).stdout)

    first = run_ansible(["ansible-playbook", "-i", inv, play])
    assert "ssh -N -L 8889:localhost:8888 ubuntu@127.0.0.1" in first.stdout
    assert re.search(r"http://localhost:8889/lab\?token=[A-Za-z0-9]{48}", first.stdout)
    # Check mode on the configured box: nothing to change.
    assert changed(run_ansible(["ansible-playbook", "-i", inv, play, "--check"]).stdout) == 0

    # The environment deleted: the miniconda role alone creates it again, then changes nothing.
    host.exec("rm", "-rf", ENV)
    assert rerun("miniconda") > 0
    check = host.exec("runuser", "-u", "ubuntu", "--", f"{ENV}/bin/python", "-c", "import d2l, numpy")
    assert check.returncode == 0
    assert rerun("miniconda") == 0

    # d2l uninstalled inside the environment: check mode reports it and leaves it; the role reinstalls it.
    host.exec("runuser", "-u", "ubuntu", "--", f"{ENV}/bin/python", "-m", "pip", "uninstall", "-y", "-q", "d2l")
    assert d2l_version(host) == "missing"
    assert rerun("miniconda", "--check") > 0
    assert d2l_version(host) == "missing"
    assert rerun("miniconda") > 0
    assert d2l_version(host) == "1.0.3" and imports(host, "d2l")
    assert rerun("miniconda") == 0

    # Another d2l version, a module that no longer imports (its files damaged, its metadata intact), the kernel
    # spec deleted, a notebook deleted next to one the user edited.
    host.exec(
        "runuser",
        "-u",
        "ubuntu",
        "--",
        "env",
        "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",  # the box's CAs
        f"{ENV}/bin/python",
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "d2l==1.0.0",
    )
    assert d2l_version(host) == "1.0.0"
    host.exec("sh", "-c", f"echo 'raise ImportError(\"damaged\")' > {SITE}/ipykernel/__init__.py")
    assert not imports(host, "ipykernel")
    host.exec("rm", KERNEL, f"{NOTEBOOKS}/pandas.ipynb")
    edited = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "note": "my own work"}\n'
    host.exec("sh", "-c", f"printf '%s' '{edited}' > {NOTEBOOKS}/ndarray.ipynb")
    assert rerun("miniconda") > 0
    assert d2l_version(host) == "1.0.3" and imports(host, "d2l") and imports(host, "ipykernel")
    kernel = json.loads(host.exec("cat", KERNEL).stdout)
    assert kernel["argv"][0] == f"{ENV}/bin/python" and kernel["display_name"] == "Python (d2l)"
    restored = host.exec("stat", "-c", "%U", f"{NOTEBOOKS}/pandas.ipynb")
    assert restored.stdout.strip() == "ubuntu"
    assert json.loads(host.exec("cat", f"{NOTEBOOKS}/pandas.ipynb").stdout)["nbformat"] == 4
    assert host.exec("cat", f"{NOTEBOOKS}/ndarray.ipynb").stdout == edited
    assert rerun("miniconda") == 0
    assert host.exec("cat", f"{NOTEBOOKS}/ndarray.ipynb").stdout == edited

    # The service stopped and disabled: the jupyter role alone starts and enables it, then changes nothing.
    host.exec("systemctl", "disable", "--now", "jupyter")
    assert rerun("jupyter") > 0
    assert host.exec("systemctl", "is-active", "jupyter").stdout.strip() == "active"
    assert host.exec("systemctl", "is-enabled", "jupyter").stdout.strip() == "enabled"
    assert rerun("jupyter") == 0

    # The unit edited (and loaded): check mode reports it; the role restores and restarts it.
    unit = "/etc/systemd/system/jupyter.service"
    original = host.exec("cat", unit).stdout
    host.exec("sed", "-i", "s/^Restart=on-failure/Restart=no/", unit)
    host.exec("systemctl", "daemon-reload")
    assert rerun("jupyter", "--check") > 0
    assert "Restart=no" in host.exec("cat", unit).stdout
    assert rerun("jupyter") > 0
    assert host.exec("cat", unit).stdout == original
    assert host.exec("systemctl", "show", "-p", "Restart", "--value", "jupyter").stdout.strip() == "on-failure"
    assert host.exec("systemctl", "is-active", "jupyter").stdout.strip() == "active"
    assert rerun("jupyter") == 0
