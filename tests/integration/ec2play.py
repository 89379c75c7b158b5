"""Run gpubox's EC2 playbooks against the local EC2 API and read their results as JSON."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, run_ansible

SSH_CIDR = "198.51.100.7/32"  # TEST-NET-2: an address nobody has


@dataclass
class PlayRun:
    proc: subprocess.CompletedProcess
    data: dict

    @property
    def rc(self) -> int:
        return self.proc.returncode

    @property
    def stats(self) -> dict:
        return self.data.get("stats", {}).get("localhost", {})

    def tasks(self):
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                result = task.get("hosts", {}).get("localhost")
                if result is not None:
                    yield task["task"]["name"], result

    def failure(self) -> str:
        """The message of the task that failed (the item's message for a loop), not the whole output."""
        for _, result in self.tasks():
            if result.get("failed"):
                # the JSON callback drops "failed" (and at times "skipped") from loop items: the failed one is the
                # one that was not skipped
                for item in result.get("results", []):
                    if item.get("failed") or not (item.get("skipped") or "skip_reason" in item):
                        return item.get("msg", "")
                return result.get("msg", "")
        return ""

    def fact(self, name: str):
        found = None
        for _, result in self.tasks():
            for one in [result, *result.get("results", [])]:
                facts = one.get("ansible_facts", {})
                if name in facts:
                    found = facts[name]
        return found

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


def playbook(name: str, env: dict[str, str], *args: str, extra: dict | None = None) -> PlayRun:
    """ansible-playbook playbooks/NAME.yml with the JSON callback; extra becomes -e JSON."""
    cmd = ["ansible-playbook", str(ROOT / "playbooks" / f"{name}.yml"), *args]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    json_env = dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    proc = run_ansible(cmd, env=json_env, check=False)
    try:
        # profile_tasks prints its timing lines around the JSON document
        data = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{\n") :])[0]
    except ValueError:
        data = {}
    return PlayRun(proc, data)


def unsafe(value):
    """ansible-inventory wraps templated values as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    return value


def home_env(aws_env: dict[str, str], home: Path) -> dict[str, str]:
    """The API's environment plus a throwaway HOME, so keys and ssh config land there."""
    home.mkdir(parents=True, exist_ok=True)
    return dict(aws_env, HOME=str(home))


def provisioned(aws_env: dict[str, str], home: Path, extra: dict) -> tuple[dict[str, str], PlayRun]:
    """A throwaway HOME (home_env) and the provision.yml run that made the project's boxes there, which succeeded."""
    env = home_env(aws_env, home)
    run = playbook("provision", env, extra=extra)
    assert run.rc == 0, run.output[-4000:]
    return env, run


def instances(ec2, *filters: tuple[str, list[str]]) -> list[dict]:
    flt = [{"Name": n, "Values": v} for n, v in filters]
    pages = ec2.get_paginator("describe_instances").paginate(Filters=flt)
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


LIVE = ["pending", "running", "stopping", "stopped"]


def live_box(ec2, project: str, name: str) -> dict:
    """The one instance of box `name` of the project that is not terminated (or going)."""
    found = instances(ec2, ("tag:Name", [name]), ("tag:Project", [project]), ("instance-state-name", LIVE))
    assert len(found) == 1, found
    return found[0]


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def root_volume_asked(params: dict[str, str]) -> dict[str, str]:
    """The first block device of a recorded RunInstances request (form parameters, first values)."""
    prefix = "BlockDeviceMapping.1."
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def snapshot(ec2, *roots: Path, ignore: tuple[str, ...] = (".ansible", "facts")) -> dict:
    """What exists: instances (with state, tags, groups, metadata options), security groups (with rules and tags),
    key pairs, spot requests, images, volumes, and every file under the given directories. A refused run must leave
    this exactly as it was. Ansible's own working directory (~/.ansible) and the tests' fact caches are left out."""

    found = {
        "instances": sorted(
            (
                i["InstanceId"],
                i["State"]["Name"],
                json.dumps(sorted(tags(i).items())),
                json.dumps(sorted(g["GroupId"] for g in i.get("SecurityGroups", []))),
                json.dumps(i.get("MetadataOptions", {}), sort_keys=True, default=str),
            )
            for i in instances(ec2)
        ),
        "groups": sorted(
            json.dumps([g["GroupId"], g["GroupName"], g["IpPermissions"], sorted(tags(g).items())], default=str)
            for g in ec2.describe_security_groups()["SecurityGroups"]
        ),
        "keys": sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
        "spot": sorted(
            (r["SpotInstanceRequestId"], r["State"])
            for r in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]
        ),
        "images": sorted(i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]),
        "volumes": sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]),
        "files": sorted(
            str(p) for root in roots for p in Path(root).rglob("*") if not set(ignore) & set(p.relative_to(root).parts)
        ),
    }
    return found
