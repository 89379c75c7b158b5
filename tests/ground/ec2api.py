"""Local EC2 API: a moto server on 127.0.0.1 with validation on, stand-in Canonical Ubuntu images and AWS's key
pair fingerprints.

Playbooks reach it only through AWS_ENDPOINT_URL and test credentials, exactly as they would reach AWS.

With a twin (EC2Api(twin=Twin settings), or --twin-network), its instances are podman containers driven by the
instance lifecycle: tests/ground/twin.py.

Shell:  python -m tests.ground.ec2api [--port N] [--twin-network NET --twin-prefix NAME --imds-port P]
        prints the environment to export, serves until ^C
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar

from tests.ground.net import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]

REGION = "us-west-2"
CANONICAL = "099720109477"
AMAZON = "898082745236"

# Stand-ins for Canonical's public images (moto ships none for 22.04/24.04): two dated builds per
# release so "latest" is really chosen, amd64 and arm64, names exactly as Canonical publishes them.
_UBUNTU = [
    ("jammy", "22.04", "hvm-ssd", "20250327"),
    ("jammy", "22.04", "hvm-ssd", "20250516"),
    ("noble", "24.04", "hvm-ssd-gp3", "20250305"),
    ("noble", "24.04", "hvm-ssd-gp3", "20250610"),
]


def _ami_id(seed: str) -> str:
    import hashlib

    return "ami-" + hashlib.sha256(seed.encode()).hexdigest()[:17]


def standin_images() -> list[dict]:
    images = []
    for codename, release, store, date in _UBUNTU:
        for arch, ami_arch in (("amd64", "x86_64"), ("arm64", "arm64")):
            name = f"ubuntu/images/{store}/ubuntu-{codename}-{release}-{arch}-server-{date}"
            images.append(
                {
                    "ami_id": _ami_id(name),
                    "state": "available",
                    "public": True,
                    "owner_id": CANONICAL,
                    "image_location": f"{CANONICAL}/{name}",
                    "sriov": "simple",
                    "root_device_type": "ebs",
                    "root_device_name": "/dev/sda1",
                    "description": f"Canonical, Ubuntu, {release} LTS, {arch} {codename} image",
                    "image_type": "machine",
                    "platform": None,
                    "architecture": ami_arch,
                    "name": name,
                    "virtualization_type": "hvm",
                    "hypervisor": "xen",
                }
            )
    # AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04), as published by Amazon.
    name = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20250523"
    images.append(
        {
            "ami_id": _ami_id(name),
            "state": "available",
            "public": True,
            "owner_id": AMAZON,
            "image_location": f"amazon/{name}",
            "sriov": "simple",
            "root_device_type": "ebs",
            "root_device_name": "/dev/sda1",
            "description": "Supported EC2 instances: G4dn, G5, G6, Gr6, G6e, P4d, P4de, P5, P5e, P5en, P6-B200.",
            "image_type": "machine",
            "platform": None,
            "architecture": "x86_64",
            "name": name,
            "virtualization_type": "hvm",
            "hypervisor": "xen",
        }
    )
    return images


def amis_file(directory: Path) -> Path:
    """moto's default images plus the stand-ins, as a MOTO_AMIS_PATH file."""
    default = resources.files("moto.ec2").joinpath("resources/amis.json.gz").read_bytes()
    path = Path(directory) / "amis.json"
    path.write_text(json.dumps(json.loads(gzip.decompress(default)) + standin_images()))
    return path


def client_env(endpoint: str) -> dict[str, str]:
    """What Ansible and boto3 need to talk to the local API instead of AWS."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# The request recording's file name in the server's working directory.
RECORDING = "recording.jsonl"

# User-Agent mark of the tests' own boto3 clients, so their calls are not counted as the playbooks'.
TEST_AGENT = "gpubox-tests/1"


def api_client(service: str, endpoint: str):
    """A boto3 client for the tests' own checks against the local API (marked, see TEST_AGENT)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(user_agent_extra=TEST_AGENT),
    )


def request_params(entry: dict) -> dict[str, list[str]]:
    """The form parameters of one recorded request (query protocol: Action=...&...), body or URL."""
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    return urllib.parse.parse_qs(body) or urllib.parse.parse_qs(urllib.parse.urlsplit(entry["url"]).query)


# Where an API call's IAM action has another name (Budgets: one action to read a budget, one to change it;
# https://docs.aws.amazon.com/cost-management/latest/userguide/billing-permissions-ref.html).
IAM_NAMES = {
    **dict.fromkeys(
        ("DescribeBudget", "DescribeBudgets", "DescribeNotificationsForBudget", "DescribeSubscribersForNotification"),
        "budgets:ViewBudget",
    ),
    **dict.fromkeys(
        ("CreateBudget", "UpdateBudget", "DeleteBudget", "CreateNotification", "DeleteNotification"),
        "budgets:ModifyBudget",
    ),
}


def iam_action(entry: dict) -> str | None:
    """`service:Action` of one recorded request (SigV4 credential scope + Action parameter or X-Amz-Target);
    None for the tests' own calls and for requests that are not AWS API calls."""
    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    if TEST_AGENT in headers.get("user-agent", ""):
        return None
    scope = re.search(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", headers.get("authorization", ""))
    if not scope:
        return None
    target = headers.get("x-amz-target", "")
    name = target.rsplit(".", 1)[-1] if target else (request_params(entry).get("Action") or [""])[0]
    if not name:
        return None
    return (
        IAM_NAMES.get(name, f"{scope.group(1)}:{name}") if scope.group(1) == "budgets" else f"{scope.group(1)}:{name}"
    )


def recorded_requests(workdir: Path) -> list[dict]:
    """Every request a local API with this working directory has recorded so far."""
    recording = workdir / RECORDING
    if not recording.exists():
        return []
    return [json.loads(line) for line in recording.read_text().splitlines() if line]


def recorded_actions(workdir: Path) -> set[str]:
    """The IAM names of the AWS calls a local API with this working directory recorded (see iam_action)."""
    return {action for action in map(iam_action, recorded_requests(workdir)) if action}


@dataclass
class TwinSettings:
    """Where the twin's boxes live: a podman network, the prefix of its container and image names, and the port
    of its instance metadata service on the network's host address (0: a free one)."""

    network: str
    prefix: str
    imds_port: int = 0

    def env(self, workdir: Path) -> dict[str, str]:
        return {
            "GPUBOX_TWIN_NETWORK": self.network,
            "GPUBOX_TWIN_PREFIX": self.prefix,
            "GPUBOX_TWIN_WORKDIR": str(workdir),
            "GPUBOX_TWIN_IMDS_PORT": str(self.imds_port),
        }


class EC2Api:
    # What the playbooks asked of every local API of this process, for the IAM policy check (see all_actions).
    stopped_actions: ClassVar[set[str]] = set()
    running: ClassVar[list[EC2Api]] = []

    def __init__(
        self, port: int = 0, workdir: Path | None = None, counted: bool = True, twin: TwinSettings | None = None
    ):
        """counted=False: the requests this API gets are not gpubox's playbooks' (e.g. the ground's own smoke
        playbook) and stay out of all_actions, which the IAM policy check compares with the policy.
        twin: its instances are containers (tests/ground/twin.py)."""
        self.counted = counted
        self.twin = twin
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="gpubox-ec2api-")
        self.workdir = Path(workdir or self._tmp.name)
        self.proc: subprocess.Popen | None = None

    def actions(self) -> set[str]:
        """IAM names (`ec2:RunInstances`) of the AWS calls recorded so far, the tests' own left out."""
        return recorded_actions(self.workdir)

    def start(self) -> EC2Api:
        env = dict(os.environ)
        env.update(
            MOTO_AMIS_PATH=str(amis_file(self.workdir)),
            MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION="true",
            MOTO_ENABLE_AMI_VALIDATION="true",
            MOTO_ENABLE_KEYPAIR_VALIDATION="true",
            # Every request is kept, so tests can see which AWS actions the playbooks really call.
            MOTO_ENABLE_RECORDING="true",
            MOTO_RECORDER_FILEPATH=str(self.workdir / RECORDING),
        )
        if self.twin:
            env.update(self.twin.env(self.workdir))
        log = open(self.workdir / "moto.log", "ab")  # noqa: SIM115 - lives as long as the server
        # moto's server with AWS's key pair fingerprints (see moto_server.py); run from the repo root so that
        # `tests` imports whatever the caller's working directory.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ground.moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_http(self.endpoint + "/moto-api/", timeout=30)
        if self.counted:
            EC2Api.running.append(self)
        return self

    @property
    def imds_url(self) -> str:
        """The twin's instance metadata service, as its boxes reach it."""
        return json.loads((self.workdir / "twin.json").read_text())["imds_url"]

    @classmethod
    def all_actions(cls) -> set[str]:
        """The actions recorded by every local API this process started, running or stopped."""
        return cls.stopped_actions.union(*(api.actions() for api in cls.running))

    @property
    def env(self) -> dict[str, str]:
        return client_env(self.endpoint)

    def reset(self) -> None:
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        if self in EC2Api.running:
            EC2Api.running.remove(self)
            EC2Api.stopped_actions |= self.actions()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)  # a twin removes its boxes and images on the way out
        if self._tmp:
            self._tmp.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the server's files (log, request recording) here")
    parser.add_argument("--twin-network", help="be the EC2 twin: instances are containers on this podman network")
    parser.add_argument("--twin-prefix", default="gpubox-twin", help="prefix of the twin's container names")
    parser.add_argument("--imds-port", type=int, default=0, help="the twin's metadata service port (0: a free one)")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    twin = TwinSettings(args.twin_network, args.twin_prefix, args.imds_port) if args.twin_network else None
    api = EC2Api(args.port, args.workdir, twin=twin).start()
    for key, value in api.env.items():
        print(f"export {key}={value}")
    print(f"# local EC2 API on {api.endpoint}; ^C stops it", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        api.proc.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
