"""pytest fixtures for the proving ground: local EC2 API, download mirror, systemd test hosts.

Each part also runs from the shell: python -m tests.ground.{ec2api,mirror,hosts} --help
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.ground import hosts as ground_hosts
from tests.ground.ec2api import EC2Api, api_client
from tests.ground.mirror import Mirror

ROOT = Path(__file__).resolve().parents[1]
# The collection gpubox.gpubox (this checkout, through collections/, as ansible.cfg's collections_path finds it),
# importable as Ansible imports it for a module or plugin (ansible_collections.gpubox.gpubox.plugins...), so that
# tests can load a module or plugin by its path (load_module).
sys.path.insert(0, str(ROOT / "collections"))
VENV_BIN = ROOT / ".venv" / "bin"
# The settings the tests are written against, an inventory source of settings only (its group_vars/all/tests.yml).
TEST_SETTINGS = ROOT / "tests" / "settings"


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in item.path.parts or "e2e" in item.path.parts:
            item.add_marker(pytest.mark.integration)
    # The IAM policy check reads what every other test asked of the local EC2 API, so it runs last.
    items.sort(key=lambda item: item.get_closest_marker("after_all_aws_calls") is not None)


@pytest.fixture(autouse=True)
def _own_fact_cache(tmp_path, monkeypatch):
    """Each test gets its own fact cache: host names repeat across tests, their hosts do not."""
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path / "facts"))


@pytest.fixture(scope="session")
def ec2api() -> Iterator[EC2Api]:
    """One moto server for the session (started once: ~0.5 s)."""
    api = EC2Api().start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def api() -> Iterator[EC2Api]:
    """A local EC2 API of the test module's own, for a module whose tests tell one story in order (launch, rerun,
    stop...); it records the requests it gets, to see what was asked of it."""
    server = EC2Api().start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(ec2api: EC2Api) -> dict[str, str]:
    """A clean local EC2 API for this test, and the environment that points Ansible/boto3 at it."""
    ec2api.reset()
    return ec2api.env


@pytest.fixture
def ec2(aws_env):
    return api_client("ec2", aws_env["AWS_ENDPOINT_URL"])


def with_test_settings(args: list[str], env: dict[str, str]) -> list[str]:
    """Put TEST_SETTINGS right after the first inventory source of an ansible/ansible-playbook/ansible-inventory
    command (the project's inventory/, or a test's own -i file beside the project's group_vars/all), so that what a
    user declares in inventory/group_vars/all/ never changes what a test sees, while a test's -e and later sources
    still win. Without -i, the sources are ANSIBLE_INVENTORY's (env), else the project's inventory/; `env` gets
    the new list."""
    if not args or Path(args[0]).name not in ("ansible", "ansible-playbook", "ansible-inventory"):
        return args
    for n, arg in enumerate(args[:-1]):
        if arg in ("-i", "--inventory"):
            if str(TEST_SETTINGS) in args:
                return args
            return [*args[: n + 2], "-i", str(TEST_SETTINGS), *args[n + 2 :]]
    sources = [s for s in (env.get("ANSIBLE_INVENTORY") or str(ROOT / "inventory")).split(",") if s]
    if str(TEST_SETTINGS) not in sources:
        env["ANSIBLE_INVENTORY"] = ",".join([sources[0], str(TEST_SETTINGS), *sources[1:]])
    return args


# What a normal run must not print: Ansible's warnings and deprecations, and Python's (a CryptographyDeprecationWarning
# from a library Ansible imports, say).
NOISE = re.compile(r"\[DEPRECATION WARNING\]|\[WARNING\]|deprecat|Warning:|reserved name", re.IGNORECASE)


def noise(output: str) -> list[str]:
    """The lines of `output` that are a warning or a deprecation."""
    return [line for line in output.splitlines() if NOISE.search(line)]


def run_ansible(
    args: list[str], env: dict[str, str] | None = None, check: bool = True, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """Run an ansible command from the venv with the project's ansible.cfg and the tests' settings
    (with_test_settings); output is kept for asserts."""
    full_env = dict(os.environ)
    full_env.update(
        {
            "PATH": f"{VENV_BIN}:{full_env.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    full_env.update(env or {})
    args = with_test_settings(args, full_env)
    proc = subprocess.run(args, cwd=cwd, env=full_env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def load_module(path: Path, name: str | None = None):
    """Import a Python file that is not in a package (a role's module or program) by its path."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, after checking that it is one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def changed_count(stdout: str) -> int:
    """The sum of changed=N over the PLAY RECAP of an ansible-playbook run."""
    return sum(int(n) for n in re.findall(r"changed=(\d+)", stdout.split("PLAY RECAP")[-1]))


def with_project_settings(inventory: Path) -> Path:
    """The inventory file `inventory`, with the project's settings beside it as real use has them (Ansible reads
    group_vars/all next to an inventory source): a symlink to inventory/group_vars/all, the one home of
    project-wide values (login user, conda prefix, Jupyter ports, ownership tags)."""
    link = inventory.parent / "group_vars" / "all"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT / "inventory" / "group_vars" / "all", target_is_directory=True)
    return inventory


def run_local_play(
    path: Path, plays: list[dict], check: bool = False, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Write `plays` to `path` and run them on this machine (-c local) with the venv's Python and the project's
    settings (env: added to the environment, as run_ansible's; args: more of ansible-playbook's, --check say)."""
    path.write_text(yaml.safe_dump(plays))
    inventory = with_project_settings(path.with_name("localhost.ini"))
    inventory.write_text("localhost\n")
    return run_ansible(
        [
            "ansible-playbook",
            "-i",
            str(inventory),
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            *args,
            str(path),
        ],
        env=env,
        check=check,
    )


def refusal(tmp_path: Path, role: str, extra: dict) -> str:
    """Apply `role` on this machine as root (a user whose home a role can look up here) with `extra` variables;
    it must fail: its output, for the test to find the refused value and the fix in."""
    play = {"name": f"Apply {role}", "hosts": "localhost", "gather_facts": False, "roles": [role]}
    play["vars"] = {f"{role}_user": "root", **extra}
    out = run_local_play(tmp_path / "play.yml", [play])
    assert out.returncode != 0, f"{role} accepted {extra}"
    return out.stdout + out.stderr


def ssh_inventory(path: Path, host: ground_hosts.TestHost, key: Path, group: str = "gpubox") -> Path:
    """An inventory with the test host as `box` in `group`, reached over SSH as ubuntu, like an EC2 box, with the
    project's settings."""
    box = {
        "ansible_host": "127.0.0.1",
        "ansible_port": host.ssh_port,
        "ansible_user": "ubuntu",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={path.parent}/known_hosts",
    }
    path.write_text(yaml.safe_dump({group: {"hosts": {"box": box}}}))
    return with_project_settings(path)


@pytest.fixture(scope="session")
def podman_network() -> str:
    """The test hosts' podman network; returns the host's address on its bridge."""
    if not shutil.which("podman"):
        pytest.fail("podman is missing: run `make system` (tests/ground/install-system-packages.sh)")
    return ground_hosts.ensure_network()


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mirror")


@pytest.fixture(scope="session")
def mirror(mirror_root: Path, podman_network: str) -> Iterator[Mirror]:
    """Download mirror on loopback and on the test network's bridge address (same port, same state)."""
    m = Mirror(mirror_root, ("127.0.0.1", podman_network)).start()
    m.bridge_url = m.url(podman_network)
    yield m
    m.stop()


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory) -> Path:
    """A throwaway ed25519 key pair (private key 0400)."""
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gpubox-test", "-f", str(key)], check=True)
    key.chmod(0o400)
    return key


@pytest.fixture(scope="session")
def testhost_factory(podman_network: str, ssh_key: Path):
    """Start systemd test hosts reachable over SSH on 127.0.0.1; all removed at the end of the session."""
    started: list[ground_hosts.TestHost] = []

    def start(name: str, image: str = "debian12") -> ground_hosts.TestHost:
        host = ground_hosts.start_host(f"gpubox-test-{name}", image, pubkey=ssh_key.with_suffix(".pub").read_text())
        started.append(host)
        return host

    yield start
    for host in started:
        host.remove()
