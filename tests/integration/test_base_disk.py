"""The base role keeps each filesystem of base_grow_filesystems at the size of its disk (tasks/disk.yml,
files/grow-probe.sh): after an EBS volume grew (ModifyVolume), the next converge grows the filesystem, online, and a
rerun changes nothing. On a box of the EC2 twin, whose volumes are block devices: an XFS data volume (a mounted
ext4 grows online only with CAP_SYS_RESOURCE, which this machine's root lacks) and the root filesystem, which in a
container is not on a block device and so has nothing to grow."""

from __future__ import annotations

import shlex

import pytest
import yaml

from tests.conftest import ROOT, changed_count, run_ansible
from tests.ground.hosts import podman
from tests.ground.twin import by_id_link
from tests.integration.twinbox import twin_box_with_volume

NETWORK = "gpubox-test-disk"
MOUNT = "/mnt/data"
PROBE = (ROOT / "roles" / "base" / "files" / "grow-probe.sh").read_text()
# the probe on each mount point given, as the role runs it
PROBE_ALL = f'for m in "$@"; do sh -c {shlex.quote(PROBE)} probe "$m"; done\n'


@pytest.fixture(scope="module")
def box(ssh_key, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("disk")
    with twin_box_with_volume(NETWORK, ssh_key, tmp) as found:
        container, volume = found["container"], found["volume"]
        # XFS on the whole volume, mounted (what a data volume is)
        podman("exec", container, "sh", "-ec", "apt-get update -qq && apt-get install -y -qq xfsprogs >/dev/null")
        podman("exec", container, "sh", "-ec", f"mkfs.xfs -q {by_id_link(volume)} && mkdir -p {MOUNT}")
        podman("exec", container, "mount", by_id_link(volume), MOUNT)
        play = tmp / "disk.yml"
        play.write_text(
            yaml.safe_dump(
                [
                    {
                        "hosts": "gpubox",
                        "become": True,
                        "gather_facts": False,
                        "tasks": [
                            {
                                "name": "The base role's filesystems",
                                "ansible.builtin.include_role": {"name": "base", "tasks_from": "disk.yml"},
                                "vars": {"base_grow_filesystems": ["/", MOUNT]},
                            }
                        ],
                    }
                ]
            )
        )
        yield {**found, "play": play}


def converge(box) -> int:
    proc = run_ansible(["ansible-playbook", "-i", str(box["inventory"]), str(box["play"])])
    return changed_count(proc.stdout)


def size(box) -> int:
    return int(podman("exec", box["container"], "df", "-B1", "--output=size", MOUNT).stdout.split()[-1])


def test_a_filesystem_grows_with_its_disk_and_a_rerun_changes_nothing(box):
    assert converge(box) == 0  # as big as its disk; the root (overlay) is not on a block device
    before = size(box)
    assert before < 2**30
    box["ec2"].modify_volume(VolumeId=box["volume"], Size=3)
    assert converge(box) == 1
    after = size(box)
    assert after > 2.9 * 2**30, (before, after)  # df on the box sees the grown filesystem
    assert converge(box) == 0


def test_the_probe_says_what_it_found(box):
    probe = podman("exec", "-i", box["container"], "sh", "-s", "/", MOUNT, "/not-mounted", input=PROBE_ALL).stdout
    root, data, absent = (yaml.safe_load(line) for line in probe.splitlines())
    nothing = {"block": False, "grow_partition": False, "grow_fs": False}
    assert root == {"mount": "/", **nothing}
    assert data["block"] and data["fstype"] == "xfs" and data["partition"] == ""
    assert data["device_bytes"] == 3 * 2**30 and data["fs_bytes"] == data["device_bytes"]
    assert (data["grow_partition"], data["grow_fs"]) == (False, False)
    assert absent == {"mount": "/not-mounted", **nothing}
