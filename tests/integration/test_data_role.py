"""The data role on a box of the EC2 twin, whose EBS volumes are block devices with udev's by-id names: a new data
volume is formatted once (XFS) and mounted at the data directory for the login user, a rerun changes nothing, a
volume that grew gets its filesystem grown (df sees it), a volume with files is mounted again and never formatted,
and a volume id or directory that is not safe is refused before any change."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import changed_count, run_ansible
from tests.ground.hosts import podman
from tests.integration.twinbox import twin_box_with_volume

NETWORK = "gpubox-test-data"
MOUNT = "/home/ubuntu/work"


@pytest.fixture(scope="module")
def box(ssh_key, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    volume_id = {"gpubox_data_volume_id": "{volume}"}
    with twin_box_with_volume(NETWORK, ssh_key, tmp, volume_id, DeleteOnTermination=False) as found:
        play = tmp / "data.yml"
        play.write_text(yaml.safe_dump([{"hosts": "gpubox", "become": True, "gather_facts": False, "roles": ["data"]}]))
        yield {**found, "play": play}


def converge(box, *args: str, check: bool = True):
    return run_ansible(["ansible-playbook", "-i", str(box["inventory"]), str(box["play"]), *args], check=check)


def on_box(box, *cmd: str, check: bool = True) -> str:
    return podman("exec", box["container"], *cmd, check=check).stdout.strip()


def test_a_new_volume_is_formatted_once_and_mounted_for_the_user(box):
    converge(box)
    source, fstype = on_box(box, "findmnt", "-n", "-o", "SOURCE,FSTYPE", MOUNT).split()
    assert fstype == "xfs" and on_box(box, "readlink", "-f", source) == on_box(box, "readlink", "-f", by_id(box))
    assert on_box(box, "stat", "-c", "%U:%G %a", MOUNT) == "ubuntu:ubuntu 755"
    fstab = on_box(box, "cat", "/etc/fstab")
    uuid = on_box(box, "blkid", "-o", "value", "-s", "UUID", by_id(box))
    assert f"UUID={uuid} {MOUNT} xfs defaults,nofail" in fstab
    podman("exec", "--user", "ubuntu", box["container"], "sh", "-c", f"echo checkpoint-7 > {MOUNT}/epoch.txt")
    assert changed_count(converge(box).stdout) == 0


def test_a_volume_that_grew_gets_its_filesystem_grown(box):
    before = df_size(box)
    box["ec2"].modify_volume(VolumeId=box["volume"], Size=2)
    assert changed_count(converge(box).stdout) == 1
    assert df_size(box) > 1.9 * 2**30 > before
    assert changed_count(converge(box).stdout) == 0


def test_a_volume_with_files_is_mounted_again_never_formatted(box):
    on_box(box, "umount", MOUNT)
    on_box(box, "sed", "-i", f"\\# {MOUNT} #d", "/etc/fstab")
    assert changed_count(converge(box).stdout) > 0
    assert on_box(box, "cat", f"{MOUNT}/epoch.txt") == "checkpoint-7"


def test_files_in_the_way_are_never_hidden_by_the_mount(box):
    on_box(box, "umount", MOUNT)
    on_box(box, "sed", "-i", f"\\# {MOUNT} #d", "/etc/fstab")
    on_box(box, "sh", "-c", f"echo mine > {MOUNT}/notes.txt")
    proc = converge(box, check=False)
    assert proc.returncode != 0 and "already holds files" in proc.stdout and f"{MOUNT}/notes.txt" in proc.stdout
    assert on_box(box, "findmnt", "-n", MOUNT, check=False) == ""
    on_box(box, "rm", f"{MOUNT}/notes.txt")
    converge(box)
    assert on_box(box, "cat", f"{MOUNT}/epoch.txt") == "checkpoint-7"


@pytest.mark.parametrize(
    "extra, said",
    [
        ({"data_volume_id": "vol-0123; rm -rf /"}, "is not an EBS volume id"),
        ({"data_dir": "../../etc"}, "must be a path of letters"),
        ({"data_dir": "/"}, "must be a path of letters"),
    ],
)
def test_unsafe_input_is_refused_before_any_change(box, extra, said):
    proc = converge(box, "-e", yaml.safe_dump(extra, default_flow_style=True), check=False)
    assert proc.returncode != 0 and said in proc.stdout, proc.stdout[-2000:]


def by_id(box) -> str:
    return "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + box["volume"].replace("-", "")


def df_size(box) -> int:
    return int(on_box(box, "df", "-B1", "--output=size", MOUNT).split()[-1])
