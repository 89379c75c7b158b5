"""gpubox as AWX runs it: in the execution environment execution-environment.yml defines, through ansible-runner
(AWX's engine), with the private key of a Machine credential and nothing written under ~/.ssh.

No container registry is reachable here, so the image itself is not built. What keeps the definition honest:
`make ee` writes its build context with ansible-builder (its Containerfile is checked), and a clean virtual
environment gets exactly what the image would: the definition's ansible-core and ansible-runner, the collections
(gpubox's tarball and the collections its galaxy.yml depends on; from the `ansible` package's copies, as Galaxy
cannot be reached) and the Python packages ansible-builder's introspection of those collections asks for. From that
environment ansible-runner runs site.yml against the rehearsal's EC2 twin as an AWX job template would: survey
answers and AWX mode in extravars, the key in env/ssh_key (ansible-runner hands it to an ssh agent), the project's
inventory as the inventory source.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TEST_SETTINGS, VENV_BIN, load_module
from tests.ground.ec2api import EC2Api, api_client, client_env
from tests.ground.hosts import podman
from tests.ground.rehearsal import PROJECT_INVENTORY, Rehearsal

satisfies = load_module(ROOT / "scripts" / "check-collections.py", "gpubox_check_collections").satisfies
DEFINITION = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
BOX = "awx1"
# The job template's survey (docs/awx.md): its answers arrive as extra variables.
SURVEY = {
    "gpubox_awx_box": BOX,
    "gpubox_awx_instance_type": "g4dn.xlarge",
    "gpubox_awx_market": "on-demand",
    "gpubox_region": "us-west-2",
}


def pin(requirement: str) -> tuple[str, str]:
    name, _, wanted = requirement.partition("==")
    return name, wanted


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def ee(tmp_path_factory):
    """The execution environment's build context and a clean venv with exactly its contents."""
    tmp = tmp_path_factory.mktemp("ee")
    run(["make", "--no-print-directory", "ee"], cwd=ROOT)
    context = ROOT / ".cache" / "ee" / "context"
    tarball = ROOT / ".cache" / "ee" / "collection" / "gpubox-gpubox.tar.gz"

    python = run([str(ROOT / "scripts" / "find-python")]).stdout.strip()
    venv = tmp / "venv"
    run([python, "-m", "venv", str(venv)])
    core = DEFINITION["dependencies"]["ansible_core"]["package_pip"]
    runner = DEFINITION["dependencies"]["ansible_runner"]["package_pip"]
    run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", core, runner])

    collections = tmp / "collections"
    galaxy = [str(venv / "bin" / "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(collections)]
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp), "ANSIBLE_CONFIG": str(tmp / "none.cfg")}
    run([*galaxy, str(tarball)], env=env, cwd=tmp)
    # What Galaxy would give for gpubox's dependencies: the copies the `ansible` package bundles (checked against
    # the floors galaxy.yml sets).
    import ansible_collections.amazon.aws as bundled_aws

    bundled = Path(bundled_aws.__path__[0]).parents[1]
    floors = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    for fqcn, floor in floors.items():
        source = bundled / Path(*fqcn.split("."))
        have = json.loads((source / "MANIFEST.json").read_text())["collection_info"]["version"]
        assert satisfies(have, floor), (fqcn, have, floor)
        shutil.copytree(source, collections / "ansible_collections" / Path(*fqcn.split(".")), symlinks=True)

    # ansible-builder's own reading of what the collections need, as it runs while building the image (less what
    # the definition excludes).
    pip_file, bindep_file = tmp / "requirements.txt", tmp / "bindep.txt"
    excluded = context / "_build" / "exclude-requirements.txt"
    run(
        [str(VENV_BIN / "ansible-builder"), "introspect", "--sanitize", str(collections), "--exclude-pip-reqs",
         str(excluded), "--write-pip", str(pip_file), "--write-bindep", str(bindep_file)],
    )  # fmt: skip
    run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "-r", str(pip_file)])
    return {
        "context": context,
        "venv": venv,
        "collections": collections,
        "pip": pip_file.read_text(),
        "bindep": bindep_file.read_text(),
    }


def test_the_build_context_is_what_the_definition_says(ee):
    containerfile = (ee["context"] / "Containerfile").read_text()
    assert f'ARG EE_BASE_IMAGE="{DEFINITION["images"]["base_image"]["name"]}"' in containerfile
    assert f'ARG PYCMD="{DEFINITION["dependencies"]["python_interpreter"]["python_path"]}"' in containerfile
    refs = re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile).group(1).split()
    assert refs == [DEFINITION["dependencies"][k]["package_pip"] for k in ("ansible_core", "ansible_runner")]
    assert (ee["context"] / "_build" / "collection" / "gpubox-gpubox.tar.gz").is_file()


def test_the_definition_pins_the_versions_gpubox_is_tested_with(ee):
    """The image gets the ansible-core and ansible-runner of requirements.lock, and the collection's own Python
    and system needs (requirements-runtime.txt, bindep.txt), not the `ansible` package."""
    for key in ("ansible_core", "ansible_runner"):
        name, wanted = pin(DEFINITION["dependencies"][key]["package_pip"])
        assert version(name) == wanted, (name, wanted)
    for line in (ROOT / "requirements-runtime.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.search(rf"^{re.escape(line)}\b", ee["pip"], re.MULTILINE), (line, ee["pip"])
    assert "rsync" in ee["bindep"] and "openssh-clients" in ee["bindep"]
    frozen = run([str(ee["venv"] / "bin" / "pip"), "freeze"]).stdout
    assert not re.search(r"^ansible==", frozen, re.MULTILINE), frozen


@pytest.fixture(scope="module")
def ground(tmp_path_factory):
    """The rehearsal's EC2 twin, download mirror and settings, without its own site.yml run."""
    r = Rehearsal(
        "awx", tmp_path_factory.mktemp("awx-state"), tmp_path_factory.mktemp("awx-home"),
        box_names=[BOX], settings_sources=[TEST_SETTINGS],
    )  # fmt: skip
    try:
        r.start()
        yield r
    finally:
        EC2Api.stopped_actions |= r.actions()
        r.down()
        podman("network", "rm", "-f", r.network, check=False)


def test_ansible_runner_runs_site_in_awx_mode_from_the_execution_environment(ee, ground, tmp_path):
    r = ground
    # The Machine credential's key: its key pair exists in AWS already (imported by hand, as docs/awx.md says),
    # and its private key is nowhere on disk but in the credential.
    public = run(["ssh-keygen", "-y", "-f", str(r.key_file)]).stdout
    private = r.key_file.read_text()
    r.key_file.unlink()
    key_name = "gpubox-awx-credential"
    ec2 = api_client("ec2", r.state()["endpoint"])
    ec2.import_key_pair(KeyName=key_name, PublicKeyMaterial=public.encode())

    data = tmp_path / "job"
    (data / "env").mkdir(parents=True)
    # The job's home (AWX's is /runner): short, as ssh's control sockets live under it (at most 107 bytes).
    home = Path(tempfile.mkdtemp(prefix="gpubox-awx-"))
    (data / "env" / "ssh_key").write_text(private)
    (data / "env" / "envvars").write_text(
        yaml.safe_dump(
            {
                **client_env(r.state()["endpoint"]),
                "ANSIBLE_COLLECTIONS_PATH": str(ee["collections"]),
                # The inventory source (the project's dynamic inventory and its settings), the tests' settings and
                # the rehearsal's (ansible-runner's --inventory takes one source; AWX hands it its own).
                "ANSIBLE_INVENTORY": ",".join(map(str, [PROJECT_INVENTORY, TEST_SETTINGS, r.inventory])),
            }
        )
    )
    # The job template's extra variables: AWX mode, and the box made from the survey's answers.
    extravars = {
        **SURVEY,
        "gpubox_key_name": key_name,
        "gpubox_key_file": "",
        "gpubox_ssh_config_manage": False,
        "gpubox_boxes": [
            {
                "name": "{{ gpubox_awx_box }}",
                "instance_type": "{{ gpubox_awx_instance_type }}",
                "market": "{{ gpubox_awx_market }}",
            }
        ],
    }
    (data / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    cmd = [str(ee["venv"] / "bin" / "ansible-runner"), "run", str(data), "-p", "site.yml", "--project-dir", str(ROOT)]
    env = {"PATH": f"{ee['venv'] / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
        ssh_dir_written = (home / ".ssh").exists()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    (status,) = (data / "artifacts").glob("*/status")
    assert status.read_text() == "successful", proc.stdout[-6000:] + proc.stderr[-2000:]

    # The box is up and configured: its JupyterLab serves on the box.
    container = r.container(BOX)
    instance = r.instance(BOX)
    assert instance["InstanceType"] == SURVEY["gpubox_awx_instance_type"] and instance["KeyName"] == key_name
    active = podman("exec", container, "systemctl", "is-active", "jupyter", check=False).stdout.strip()
    assert active == "active"
    # Nothing under ~/.ssh, the job's or the rehearsal's: no ssh config, no known hosts, no key.
    assert not ssh_dir_written
    assert not r.ssh_config_dir.exists() and not r.ssh_config.exists()
    # The run used the execution environment's collections, not the checkout's.
    command = json.loads(next((data / "artifacts").glob("*/command")).read_text())
    assert command["cwd"] == str(ROOT) and str(ee["collections"]) in json.dumps(command["env"])
