"""Rehearsal: the unchanged site.yml on this machine, at no cost, against stand-ins for AWS and the boxes.

What stands in for what:
  AWS                 the local EC2 API (moto) on 127.0.0.1, reached through AWS_ENDPOINT_URL, as the EC2 twin
                      (tests/ground/twin.py): each instance site.yml launches is a systemd container on a podman
                      network of the rehearsal's own, started, stopped, imaged and removed by the instance's
                      lifecycle; the key pair gpubox imports is authorized on it, as cloud-init does on EC2
  the metadata        the twin's instance metadata service on the bridge (the autostop agent's spot watcher)
  service
  NVIDIA's apt repo,  the stand-ins of tests/standins/, served by the download mirror on the bridge
  Miniconda, D2L zip
The only glue is AWS_ENDPOINT_URL and an extra inventory source (STATE/inventory/) that points the download
variables at the mirror and the agent at the twin's metadata service (plus a fact cache of its own, so a real box
of the same name never sees a container's facts). The boxes' addresses come from the EC2 API, as on AWS. Everything
else (Debian's archive, PyPI) is real.
Boxes are those the project's settings declare (gpubox_boxes in inventory/group_vars/all/: gpubox.yml ships one,
`d2l`; a file of your own there counts too), read through Ansible exactly as the playbooks read them.

Shell (as root; `make rehearse` / `make rehearse-down` also install what is needed first):
  python -m tests.ground.rehearsal up       # start (or reuse) the stand-ins, run site.yml, print ssh + Jupyter
  python -m tests.ground.rehearsal env      # the environment to run other playbooks against the rehearsal
  python -m tests.ground.rehearsal down     # terminate.yml, then stop and remove every stand-in
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from tests.ground.ec2api import api_client, client_env, recorded_actions
from tests.ground.hosts import ensure_free_network, podman
from tests.ground.molecule_run import MIRROR_ROOT, prepare_mirror_root
from tests.ground.net import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
PROJECT_INVENTORY = ROOT / "inventory"
STANDIN_VARS = ROOT / "tests" / "standins" / "vars.yml"
# The project's settings the rehearsal itself needs: which boxes to start, and the tunnel's local port it prints.
SETTING_NAMES = ("gpubox_boxes", "gpubox_jupyter_local_port")


def ansible_settings(names: tuple[str, ...] | list[str], sources: list[Path] | None = None) -> dict:
    """The named settings exactly as the playbooks see them, read by Ansible itself in one ad-hoc run: the
    group_vars next to each inventory source (default: the project's inventory/), sources in order, the files of
    group_vars/all/ in Ansible's order (later wins), templates rendered. Each source stands in as a folder with a
    symlink to its group_vars beside an inventory of localhost only (where provision.yml runs), so no inventory
    plugin runs (the EC2 one would call AWS)."""
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"not a variable name: {name!r}")
    with tempfile.TemporaryDirectory(prefix="gpubox-settings-") as tmp:
        inventories = []
        for n, source in enumerate(sources or [PROJECT_INVENTORY]):
            inventory = Path(tmp) / str(n)
            inventory.mkdir()
            if (Path(source) / "group_vars").is_dir():
                (inventory / "group_vars").symlink_to(Path(source).resolve() / "group_vars", target_is_directory=True)
            # Every source parses (no warning): localhost in the first, nothing in the others.
            hosts = "localhost ansible_connection=local\n" if n == 0 else "# settings only\n"
            (inventory / "hosts.ini").write_text(hosts)
            inventories += ["-i", str(inventory)]
        wanted = ", ".join(repr(name) for name in names)
        cmd = [
            str(Path(sys.executable).with_name("ansible")),
            "localhost",
            *inventories,
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={{{{ dict([{wanted}] | zip(query('ansible.builtin.vars', {wanted}))) }}}}",
        ]
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            # JSON on stdout, and no other callback (profile_tasks) writing there: enabling the stdout callback
            # itself is how to enable nothing else.
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
            "ANSIBLE_NOCOLOR": "1",
            # Anything that does not parse (were an inventory plugin to run, say) is an error, not a warning.
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
        }
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, LookupError):
        result = {}
    if proc.returncode != 0 or result.get("failed") or "msg" not in result:
        why = result.get("msg") or proc.stderr.strip()
        raise RuntimeError(f"reading the settings {', '.join(names)} through Ansible failed: {why}")
    return result["msg"]


@dataclass
class Rehearsal:
    """One rehearsal, named so that several (a person's and the tests') can live side by side."""

    name: str = "rehearsal"
    state_dir: Path = ROOT / ".cache" / "rehearsal"
    home: Path = field(default_factory=Path.home)
    # Boxes to declare instead of the project's (the tests and the performance script declare their own).
    box_names: list[str] | None = None
    # Inventory sources of settings between the project's and the rehearsal's own (the tests' pinned settings).
    settings_sources: list[Path] = field(default_factory=list)

    # --- names and paths -------------------------------------------------------------------------------
    @property
    def network(self) -> str:
        return f"gpubox-{self.name}"

    @property
    def prefix(self) -> str:
        """The twin's prefix: its containers are PREFIX-INSTANCEID, its baked images localhost/PREFIX-ami:AMIID."""
        return f"gpubox-{self.name}"

    def instance(self, box: str) -> dict | None:
        """The box's instance as the local EC2 API describes it (the newest of that name not terminated)."""
        ec2 = api_client("ec2", self.state()["endpoint"])
        filters = [{"Name": "tag:Name", "Values": [box]}, {"Name": "tag:Project", "Values": [self.name]}]
        found = [i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]
        alive = [i for i in found if i["State"]["Name"] not in ("terminated", "shutting-down")]
        return max(alive, key=lambda i: i["LaunchTime"]) if alive else None

    def container(self, box: str) -> str:
        """The container that is the box's instance (named after the instance id, as the twin names it)."""
        instance = self.instance(box)
        if instance is None:
            raise LookupError(f"rehearsal {self.name} has no box {box}")
        return f"{self.prefix}-{instance['InstanceId']}"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory"

    @property
    def key_file(self) -> Path:
        return self.home / ".ssh" / f"gpubox-{self.name}.pem"

    @property
    def ssh_config(self) -> Path:
        return self.home / ".ssh" / "config"

    @property
    def ssh_config_dir(self) -> Path:
        return self.home / ".ssh" / "gpubox"

    @property
    def ec2api_dir(self) -> Path:
        """The local EC2 API's log and request recording."""
        return self.state_dir / "ec2api"

    @property
    def ssh_entries(self) -> Path:
        """The ssh config file gpubox writes for this rehearsal's project."""
        return self.ssh_config_dir / f"{self.name}.conf"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    @cached_property
    def settings(self) -> dict:
        """The project's settings the rehearsal needs (SETTING_NAMES), which it keeps as they are: read once,
        through Ansible, from inventory/group_vars/ (and settings_sources), as the playbooks will see them."""
        return ansible_settings(SETTING_NAMES, [PROJECT_INVENTORY, *self.settings_sources])

    def declared_boxes(self) -> list[str]:
        """The boxes the project's settings declare (gpubox.yml ships one, `d2l`)."""
        return [b["name"] for b in self.settings["gpubox_boxes"]]

    def actions(self) -> set[str]:
        """What the playbooks have asked of this rehearsal's local EC2 API (IAM action names)."""
        return recorded_actions(self.ec2api_dir)

    def boxes(self) -> list[str]:
        """The boxes site.yml will launch in this rehearsal."""
        return self.box_names or self.declared_boxes()

    # --- environment -----------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """What a playbook run needs to act on the rehearsal instead of AWS."""
        return {
            **client_env(self.state()["endpoint"]),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_INVENTORY": ",".join(map(str, [PROJECT_INVENTORY, *self.settings_sources, self.inventory])),
            # Facts of its own: a real box may bear the same name as a rehearsal one.
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(self.state_dir / "facts"),
        }

    def playbook(self, playbook: str, *args: str, check: bool = True, **run) -> subprocess.CompletedProcess:
        cmd = [str(Path(sys.executable).with_name("ansible-playbook")), str(ROOT / playbook), *args]
        return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **self.env()}, check=check, **run)

    # --- up --------------------------------------------------------------------------------------------
    def up(self) -> dict:
        state = self.start()
        self.playbook("site.yml")
        self._report(state)
        return state

    def start(self) -> dict:
        """The ground without a site.yml run: the local EC2 API and its twin, the mirror, the key and settings."""
        state = self.state()
        if state and not all(_alive(state[k]) for k in ("ec2api_pid", "mirror_pid")):
            print("an earlier rehearsal is half gone: clearing it first", flush=True)
            self.down()
            state = {}
        return state or self._start()

    def _start(self) -> dict:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        gateway = ensure_free_network(self.network)

        ec2_port, mirror_port, imds_port = free_port(), free_port(), free_port()
        twin = ["--twin-network", self.network, "--twin-prefix", self.prefix, "--imds-port", str(imds_port)]
        state = {
            "endpoint": f"http://127.0.0.1:{ec2_port}",
            "imds_url": f"http://{gateway}:{imds_port}",
            "ec2api_pid": self._daemon(
                "ec2api",
                ["-m", "tests.ground.ec2api", "--port", str(ec2_port), "--workdir", str(self.ec2api_dir), *twin],
            ),
        }
        self.state_file.write_text(json.dumps(state))  # from here on, `down` knows what to stop
        mirror_root = prepare_mirror_root()
        bind = ["--bind", gateway, "--bind", "127.0.0.1"]
        state["mirror_url"] = f"http://{gateway}:{mirror_port}"
        state["mirror_pid"] = self._daemon(
            "mirror", ["-m", "tests.ground.mirror", "--root", str(mirror_root), *bind, "--port", str(mirror_port)]
        )
        self.state_file.write_text(json.dumps(state))
        wait_http(state["endpoint"] + "/moto-api/", timeout=60)
        wait_http(f"http://127.0.0.1:{mirror_port}/probe.txt", timeout=30)

        # The key pair gpubox will import (as it does with a key file you already have); the twin authorizes it on
        # each box it launches, as cloud-init does on EC2 with the key pair named at launch.
        if not self.key_file.exists():
            self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"gpubox {self.name}", "-f", str(self.key_file)],
                check=True,
            )
            self.key_file.chmod(0o400)
        self._write_inventory(state, gateway)
        return state

    def _daemon(self, name: str, args: list[str]) -> int:
        """Start a stand-in that outlives this command (ended by `down`); its output goes to STATE/NAME.log."""
        log = open(self.state_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return proc.pid

    def _write_inventory(self, state: dict, gateway: str) -> None:
        """The extra inventory source: the settings of this rehearsal, the download variables pointed at the
        mirror's stand-ins and the autostop agent at the twin's metadata service."""
        (self.inventory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
        (self.inventory / "hosts.yml").write_text("# Settings only: the boxes come from the EC2 inventory.\nall: {}\n")
        settings = {
            "gpubox_project": self.name,
            "gpubox_key_name": f"gpubox-{self.name}",
            "gpubox_key_file": str(self.key_file),
            "gpubox_ssh_config": str(self.ssh_config),
            "gpubox_ssh_config_dir": str(self.ssh_config_dir),
            # this machine, as the boxes see it
            "gpubox_ssh_cidr": f"{gateway}/32",
            # the instance metadata service, as the boxes reach the twin's (AWS's is 169.254.169.254)
            "autostop_imds_url": state["imds_url"],
        }
        if self.box_names:
            settings["gpubox_boxes"] = [{"name": box} for box in self.box_names]
        standins = yaml.safe_load(STANDIN_VARS.read_text())
        standins.update(standins_dir=str(MIRROR_ROOT), mirror_url=state["mirror_url"])
        (self.inventory / "group_vars" / "all" / "rehearsal.yml").write_text(
            "# The rehearsal's own settings (they win over inventory/group_vars/all/ as a later source).\n"
            + yaml.safe_dump(settings, sort_keys=False)
            + "\n# Downloads that cannot be reached here come from the mirror's stand-ins (tests/standins/).\n"
            + yaml.safe_dump(standins, sort_keys=False, width=1000)
        )

    def jupyter_token(self, box: str) -> str:
        return podman("exec", self.container(box), "cat", "/home/ubuntu/.jupyter/gpubox-token").stdout.strip()

    def _report(self, state: dict) -> None:
        ssh = "ssh" if self.ssh_config == Path.home() / ".ssh" / "config" else f"ssh -F {self.ssh_config}"
        local_port = self.settings["gpubox_jupyter_local_port"]
        print(f"\nRehearsal '{self.name}' is up: local EC2 API {state['endpoint']}, boxes in podman containers.")
        for box in self.boxes():
            instance = self.instance(box)
            if instance is None:
                continue
            token = self.jupyter_token(box)
            where = f"container {self.prefix}-{instance['InstanceId']}, address {instance.get('PublicIpAddress')}"
            print(f"\n  box {box} ({where})")
            print(f"    {ssh} {box}                    # a shell on the box")
            print(f"    {ssh} -N {box}-jupyter         # the tunnel; then browse to")
            print(f"    http://localhost:{local_port}/lab?token={token}")
        print(f'\n  Other playbooks against the rehearsal:  eval "$({_self_cmd(self)} env)"')
        print("    ansible-playbook playbooks/list.yml | stop.yml | start.yml | terminate.yml -e gpubox_confirm=yes")
        print(f"  Tear down:  {_self_cmd(self)} down   (or make rehearse-down)\n", flush=True)

    # --- down ------------------------------------------------------------------------------------------
    def down(self) -> None:
        state = self.state()
        if state and _alive(state.get("ec2api_pid")) and self.inventory.exists():
            # The real teardown first, so gpubox's own ssh config entries go the way they go on AWS.
            self.playbook("playbooks/terminate.yml", "-e", "gpubox_confirm=yes", check=False)
        for key in ("mirror_pid", "ec2api_pid"):
            _stop(state.get(key))
        # What the twin made and terminate.yml left (a stopped API, a box of another project name): its containers
        # and baked images, found by its label; nobody else's.
        mine = f"label=org.gpubox.twin={self.prefix}"
        leftover = podman("ps", "-aq", "--filter", mine, check=False).stdout.split()
        if leftover:
            podman("rm", "-f", "-t", "5", *leftover, check=False)
        images = podman("images", "-q", "--filter", mine, check=False).stdout.split()
        if images:
            podman("rmi", "-f", *set(images), check=False)
        # Not forced: a container of someone else's that joined the network keeps it (and its bridge).
        if (
            podman("network", "rm", self.network, check=False).returncode != 0
            and podman("network", "exists", self.network, check=False).returncode == 0
        ):
            print(f"podman network {self.network} is kept: a container that is not the rehearsal's uses it")
        self.ssh_entries.unlink(missing_ok=True)
        for path in (self.key_file, self.key_file.with_suffix(".pem.pub")):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        print(f"rehearsal '{self.name}' removed", flush=True)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(pid: int | None, timeout: float = 10) -> None:
    """End a stand-in started by `up` (its own process group) and wait for it to go."""
    if not _alive(pid):
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def _self_cmd(r: Rehearsal) -> str:
    cmd = [".venv/bin/python", "-m", "tests.ground.rehearsal"]
    if r.name != "rehearsal":
        cmd += ["--name", r.name, "--state", str(r.state_dir), "--home", str(r.home)]
    return shlex.join(cmd)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "env", "down"])
    parser.add_argument("--name", default="rehearsal", help="project name and prefix of the stand-ins")
    parser.add_argument("--state", type=Path, help="where the rehearsal keeps its state (default .cache/NAME)")
    parser.add_argument("--home", type=Path, default=Path.home(), help="home whose ~/.ssh gets the key and config")
    args = parser.parse_args(argv)
    rehearsal = Rehearsal(args.name, args.state or ROOT / ".cache" / args.name, args.home)
    if args.command == "up":
        rehearsal.up()
    elif args.command == "env":
        for key, value in rehearsal.env().items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        rehearsal.down()


if __name__ == "__main__":
    main()
