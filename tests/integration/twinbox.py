"""A box of the EC2 twin with a second EBS volume, for the tests of the roles that work on disks (base's filesystem
growth, data)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.conftest import with_project_settings
from tests.ground.ec2api import EC2Api, TwinSettings, api_client, standin_images
from tests.ground.hosts import podman

NOBLE = next(i["ami_id"] for i in standin_images() if "noble-24.04-amd64" in i["name"] and "20250610" in i["name"])


@contextlib.contextmanager
def twin_box_with_volume(network: str, ssh_key: Path, tmp: Path, host_vars: dict | None = None, **ebs) -> Iterator:
    """A box of the EC2 twin on its own network (a t3.medium of the stand-in Ubuntu 24.04 image, the key authorized)
    with a 1 GiB EBS volume at /dev/sdf (`ebs`: more of its mapping), and an inventory of it as host `box` of the
    group gpubox, with the project's settings (`host_vars`: more, `{volume}` replaced by the volume's id). Yields
    ec2, volume, container and inventory; the API, its container and the network are removed after."""
    podman("network", "rm", "-f", network, check=False)
    api = EC2Api(counted=False, twin=TwinSettings(network, network)).start()
    try:
        ec2 = api_client("ec2", api.endpoint)
        ec2.import_key_pair(KeyName=network, PublicKeyMaterial=ssh_key.with_suffix(".pub").read_bytes())
        mappings = [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, **ebs}}]
        spec = {"ImageId": NOBLE, "InstanceType": "t3.medium", "MinCount": 1, "MaxCount": 1, "KeyName": network}
        instance = ec2.run_instances(**spec, BlockDeviceMappings=mappings)["Instances"][0]
        found = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
        volume = next(m["Ebs"]["VolumeId"] for m in found["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")
        inventory = with_project_settings(tmp / "hosts.yml")
        host = {
            "ansible_host": found["PublicIpAddress"],
            "ansible_user": "ubuntu",
            "ansible_ssh_private_key_file": str(ssh_key),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={tmp}/known_hosts -o StrictHostKeyChecking=no",
        }
        host.update({key: value.format(volume=volume) for key, value in (host_vars or {}).items()})
        inventory.write_text(yaml.safe_dump({"gpubox": {"hosts": {"box": host}}}))
        container = f"{network}-{found['InstanceId']}"
        yield {"ec2": ec2, "volume": volume, "container": container, "inventory": inventory}
    finally:
        api.stop()
        podman("network", "rm", "-f", network, check=False)
