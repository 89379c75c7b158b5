"""Test hosts: podman containers running systemd as PID 1, reachable like an EC2 box.

Each has the user `ubuntu` with passwordless sudo, sshd with its own host keys, python3 and the host's
extra CA certificates (see tests/images/build.sh). They sit on a podman network of their own; the host's
address on that bridge is where they find the download mirror.

Shell:
  python -m tests.ground.hosts image debian12               # build (cached) and print the image
  python -m tests.ground.hosts up box1 --ssh-port 2222 --pubkey ~/.ssh/id_ed25519.pub
  python -m tests.ground.hosts down box1
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.ground.net import free_port, wait_tcp

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tests" / "images" / "build.sh"
NETWORK = "gpubox-test"
SUBNET = "10.89.77.0/24"
LABEL = "org.gpubox.testhost=1"


def podman(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:  # noqa: A002
    return subprocess.run(["podman", *args], input=input, text=True, capture_output=True, check=check)


def ensure_image(name: str = "debian12") -> str:
    """Build the image if its recipe changed; return its reference."""
    out = subprocess.run([str(BUILD), name], text=True, stdout=subprocess.PIPE, check=True).stdout
    return out.strip().splitlines()[-1]


def ensure_network(name: str = NETWORK, subnet: str = SUBNET) -> str:
    """Create the network once and make sure its bridge is up; return the host's (gateway) address on it.

    Every server bound to a network's host address (the mirror, the IMDS stand-in) gets that address from here.
    """
    if podman("network", "exists", name, check=False).returncode != 0:
        podman("network", "create", "--subnet", subnet, name)
    info = json.loads(podman("network", "inspect", name).stdout)[0]
    subnets = info.get("subnets") or [
        r[0] for p in info.get("plugins", []) for r in p.get("ipam", {}).get("ranges", [])
    ]
    gateway = subnets[0]["gateway"]
    if not is_local_address(gateway):
        # podman creates the bridge and gives the host its address when the first container joins the network
        # (CNI and netavark alike), and keeps both until the network is removed: a container that joins and
        # exits brings them up for whatever binds to the address before the boxes start.
        podman("run", "--rm", "--network", name, "--label", LABEL, ensure_image(), "true")
        if not is_local_address(gateway):
            raise RuntimeError(f"podman network {name}: no host address {gateway} after a container joined")
    return gateway


def create_network(name: str) -> None:
    """Create `name` on a 10.89.X.0/24 that no podman network uses (retrying if another run took it first)."""
    for x in range(100, 200):
        used = subprocess.run(
            ["podman", "network", "ls", "--format", "{{range .Subnets}}{{.Subnet}} {{end}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        subnet = f"10.89.{x}.0/24"
        if subnet in used:
            continue
        made = subprocess.run(["podman", "network", "create", "--subnet", subnet, name], capture_output=True)
        if made.returncode == 0 or subprocess.run(["podman", "network", "exists", name]).returncode == 0:
            return
    raise RuntimeError("no free 10.89.X.0/24 subnet left for a test network")


def ensure_free_network(name: str) -> str:
    """Create `name` on a free subnet unless it exists; return the host's (gateway) address on it."""
    if subprocess.run(["podman", "network", "exists", name]).returncode != 0:
        create_network(name)
    return ensure_network(name)


def is_local_address(address: str) -> bool:
    """Whether this host has `address` (a server can bind to it)."""
    with socket.socket() as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


# Holds dpkg's locks the way apt and unattended-upgrades do (POSIX record locks on lock-frontend and lock),
# and writes when it got them and when it let them go.
DPKG_LOCK_HOLDER = """
import fcntl, sys, time
files = [open(p, "w") for p in ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")]
for f in files:
    fcntl.lockf(f, fcntl.LOCK_EX)
open("/run/gpubox-lock-held", "w").write(str(time.time()))
time.sleep(float(sys.argv[1]))
open("/run/gpubox-lock-released", "w").write(str(time.time()))
"""


@dataclass
class TestHost:
    name: str
    ssh_port: int
    address: str

    def exec(self, *cmd: str, user: str = "root", input: str | None = None, check: bool = True):  # noqa: A002
        return podman("exec", "-i", "--user", user, self.name, *cmd, input=input, check=check)

    def authorize(self, pubkey: str, user: str = "ubuntu") -> None:
        script = (
            f"install -d -m 0700 -o {user} -g {user} ~{user}/.ssh && "
            f"cat >> ~{user}/.ssh/authorized_keys && chown {user}: ~{user}/.ssh/authorized_keys && "
            f"chmod 0600 ~{user}/.ssh/authorized_keys"
        )
        self.exec("sh", "-c", script, input=pubkey.strip() + "\n")

    def hold_dpkg_lock(self, seconds: float, start_timeout: float = 20) -> None:
        """Hold dpkg's locks for `seconds` in the background; return once they are held (bounded wait)."""
        podman("exec", "-d", self.name, "python3", "-c", DPKG_LOCK_HOLDER, str(seconds))
        deadline = time.monotonic() + start_timeout
        while self.exec("test", "-f", "/run/gpubox-lock-held", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: the dpkg lock holder did not start")
            time.sleep(0.2)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "5", self.name, check=False)


def start_host(
    name: str,
    image: str = "debian12",
    ssh_port: int = 0,
    network: str = NETWORK,
    pubkey: str | None = None,
    boot_timeout: float = 60,
) -> TestHost:
    ref = ensure_image(image)
    ensure_network(network)
    ssh_port = ssh_port or free_port()
    podman("rm", "-f", "-t", "5", name, check=False)
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--hostname",
        name,
        "--label",
        LABEL,
        "--network",
        network,
        "--publish",
        f"127.0.0.1:{ssh_port}:22",
        "--systemd",
        "always",
        ref,
    )
    host = TestHost(name, ssh_port, "")
    deadline = time.monotonic() + boot_timeout
    while True:  # systemd up (degraded is fine: a container lacks some hardware units)
        state = host.exec("systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: systemd still '{state}' after {boot_timeout:.0f} s")
        time.sleep(0.3)
    inspect = json.loads(podman("inspect", name).stdout)[0]
    host.address = inspect["NetworkSettings"]["Networks"][network]["IPAddress"]
    if pubkey:
        host.authorize(pubkey)
    wait_tcp("127.0.0.1", ssh_port)
    return host


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    img = sub.add_parser("image", help="build (if needed) and print an image reference")
    img.add_argument("name", choices=["debian12", "debian13"])
    up = sub.add_parser("up", help="start a test host")
    up.add_argument("name")
    up.add_argument("--image", default="debian12", choices=["debian12", "debian13"])
    up.add_argument("--ssh-port", type=int, default=0)
    up.add_argument("--pubkey", type=Path, help="public key to authorize for 'ubuntu'")
    down = sub.add_parser("down", help="remove a test host")
    down.add_argument("name")
    args = parser.parse_args(argv)
    if args.cmd == "image":
        print(ensure_image(args.name))
    elif args.cmd == "up":
        pubkey = args.pubkey.expanduser().read_text() if args.pubkey else None
        host = start_host(args.name, args.image, args.ssh_port, pubkey=pubkey)
        print(f"{host.name}: ssh -p {host.ssh_port} ubuntu@127.0.0.1  (bridge address {host.address})")
    elif args.cmd == "down":
        TestHost(args.name, 0, "").remove()


if __name__ == "__main__":
    main()
