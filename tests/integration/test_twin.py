"""The EC2 twin (tests/ground/twin.py): the local EC2 API's instances are containers that the instance lifecycle
drives as EC2 drives machines. Each test talks to the API over HTTP (boto3) and checks the box itself: over SSH
with the key pair, in the container, through the metadata service it serves."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.ground.ec2api import CANONICAL, EC2Api, TwinSettings, api_client, standin_images
from tests.ground.hosts import podman
from tests.ground.imds import utc_stamp
from tests.ground.twin import LABEL_TWIN, by_id_link

NETWORK = PREFIX = "gpubox-twin-test"
NOBLE = next(i["ami_id"] for i in standin_images() if "noble-24.04-amd64" in i["name"] and "20250610" in i["name"])
JAMMY = next(i["ami_id"] for i in standin_images() if "jammy-22.04-amd64" in i["name"] and "20250516" in i["name"])


@pytest.fixture(scope="module")
def twin(ssh_key):
    podman("network", "rm", "-f", NETWORK, check=False)
    api = EC2Api(counted=False, twin=TwinSettings(NETWORK, PREFIX)).start()
    ec2 = api_client("ec2", api.endpoint)
    ec2.import_key_pair(KeyName="twin", PublicKeyMaterial=ssh_key.with_suffix(".pub").read_bytes())
    try:
        yield api
    finally:
        api.stop()
        podman("network", "rm", "-f", NETWORK, check=False)


@pytest.fixture
def ec2(twin):
    return api_client("ec2", twin.endpoint)


def launch(ec2, image: str = NOBLE, instance_type: str = "g4dn.xlarge", **extra) -> str:
    spec = {"ImageId": image, "InstanceType": instance_type, "MinCount": 1, "MaxCount": 1, "KeyName": "twin"}
    return ec2.run_instances(**spec | extra)["Instances"][0]["InstanceId"]


def described(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def container(instance_id: str) -> str:
    return f"{PREFIX}-{instance_id}"


def container_state(instance_id: str) -> str | None:
    """podman's status of the box's container (running, exited, ...), None when there is none."""
    found = podman("inspect", "--format", "{{.State.Status}}", container(instance_id), check=False).stdout
    return found.strip() or None


def on_box(instance_id: str, command: str, check: bool = True) -> str:
    return podman("exec", container(instance_id), "sh", "-c", command, check=check).stdout


def ssh(key, address: str, command: str) -> subprocess.CompletedProcess:
    """The user's ssh with the key pair, bounded in tries and time (sshd comes up with the box)."""
    cmd = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"]
    cmd += ["-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
    for _ in range(20):
        done = subprocess.run([*cmd, f"ubuntu@{address}", command], capture_output=True, text=True, timeout=30)
        if done.returncode != 255:
            return done
        time.sleep(0.5)
    return done


def wait_state(ec2, instance_id: str, state: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while (found := described(ec2, instance_id))["State"]["Name"] != state:
        assert time.monotonic() < deadline, f"{instance_id} is {found['State']['Name']}, not {state}"
        time.sleep(0.3)
    return found


def refused(call, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value


def test_a_launched_instance_is_a_box_its_key_pair_logs_into(ec2, ssh_key):
    instance_id = launch(ec2)
    found = described(ec2, instance_id)
    assert found["State"]["Name"] == "running"
    address = found["PublicIpAddress"]
    assert address == found["PrivateIpAddress"] and address.startswith("10.89.")
    done = ssh(ssh_key, address, "hostname; id -un; cut -d. -f1 /etc/debian_version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [instance_id, "ubuntu", "13"]  # Ubuntu 24.04's stand-in: Debian 13
    # the type's limits: g4dn.xlarge has 16 GiB (less than 3/4 of this machine's), CPUs at most the machine's
    assert int(on_box(instance_id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")) == 16 * 2**30
    assert int(on_box(instance_id, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us")) > 0
    jammy = launch(ec2, JAMMY)
    assert on_box(jammy, "cut -d. -f1 /etc/debian_version").strip() == "12"  # Ubuntu 22.04's stand-in
    ec2.terminate_instances(InstanceIds=[instance_id, jammy])
    assert container_state(instance_id) is None and container_state(jammy) is None


def test_an_image_the_twin_has_no_machine_for_is_refused_and_creates_nothing(ec2):
    images = ec2.describe_images()["Images"]
    other = next(i for i in images if i.get("OwnerId") != CANONICAL and "Ubuntu" not in i.get("Name", ""))
    before = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    error = refused(ec2.run_instances, ImageId=other["ImageId"], InstanceType="t3.micro", MinCount=1, MaxCount=1)
    assert error.response["Error"]["Code"] == "InvalidAMIID.Unavailable" and other["ImageId"] in str(error)
    after = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert after == before


def test_stop_and_start_stop_the_machine_and_give_it_a_new_address(ec2, ssh_key):
    instance_id = launch(ec2)
    first = described(ec2, instance_id)["PublicIpAddress"]
    on_box(instance_id, "echo kept > /var/tmp/work")
    ec2.stop_instances(InstanceIds=[instance_id])
    stopped = described(ec2, instance_id)
    assert stopped["State"]["Name"] == "stopped" and "PublicIpAddress" not in stopped
    assert container_state(instance_id) == "exited"
    assert refused(ec2.start_instances, InstanceIds=["i-00000000000000000"]).response["Error"]["Code"]

    ec2.start_instances(InstanceIds=[instance_id])
    running = described(ec2, instance_id)
    second = running["PublicIpAddress"]
    assert running["State"]["Name"] == "running" and second != first
    done = ssh(ssh_key, second, "cat /var/tmp/work")  # the same disk, at the new address
    assert done.returncode == 0 and done.stdout == "kept\n", done.stderr
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_the_type_changes_only_while_stopped_and_takes_effect_at_the_next_start(ec2):
    instance_id = launch(ec2, instance_type="t3.medium")
    assert int(on_box(instance_id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")) == 4 * 2**30
    error = refused(ec2.modify_instance_attribute, InstanceId=instance_id, InstanceType={"Value": "g4dn.xlarge"})
    assert error.response["Error"]["Code"] == "IncorrectInstanceState"
    assert described(ec2, instance_id)["InstanceType"] == "t3.medium"
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "g4dn.xlarge"})
    ec2.start_instances(InstanceIds=[instance_id])
    assert described(ec2, instance_id)["InstanceType"] == "g4dn.xlarge"
    assert int(on_box(instance_id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")) == 16 * 2**30
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_a_poweroff_on_the_box_stops_or_terminates_it_as_its_shutdown_behaviour_says(ec2):
    stops = launch(ec2)
    terminates = launch(ec2, InstanceInitiatedShutdownBehavior="terminate")
    for instance_id in (stops, terminates):
        podman("exec", container(instance_id), "systemctl", "poweroff", check=False)
    stopped = wait_state(ec2, stops, "stopped", timeout=15)
    assert stopped["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    assert container_state(stops) == "exited"
    wait_state(ec2, terminates, "terminated", timeout=15)
    assert container_state(terminates) is None
    ec2.start_instances(InstanceIds=[stops])  # and it starts again like any stopped box
    assert described(ec2, stops)["State"]["Name"] == "running" and container_state(stops) == "running"
    ec2.terminate_instances(InstanceIds=[stops])


def test_a_reboot_restarts_the_box_at_the_same_address(ec2):
    instance_id = launch(ec2)
    address = described(ec2, instance_id)["PublicIpAddress"]
    on_box(instance_id, "touch /run/before-reboot")
    ec2.reboot_instances(InstanceIds=[instance_id])
    assert on_box(instance_id, "test -e /run/before-reboot || echo gone").strip() == "gone"  # /run is new
    assert described(ec2, instance_id)["PublicIpAddress"] == address
    socket.create_connection((address, 22), timeout=5).close()  # reachable at once (its MAC stayed too)
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_an_image_launches_boxes_with_what_was_installed(ec2, ssh_key):
    source = launch(ec2)
    address = described(ec2, source)["PublicIpAddress"]
    on_box(source, "echo installed > /opt/baked.txt")
    image_id = ec2.create_image(InstanceId=source, Name="twin-baked")["ImageId"]
    ref = f"localhost/{PREFIX}-ami:{image_id}"
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] == "pending"  # while it is committed
    assert refused(ec2.run_instances, ImageId=image_id, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    deadline = time.monotonic() + 60
    while ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] != "available":
        assert time.monotonic() < deadline, "the image is not available after 60 s"
        time.sleep(0.5)
    assert podman("image", "exists", ref, check=False).returncode == 0
    assert described(ec2, source)["State"]["Name"] == "running"  # rebooted (AWS's default), same address
    assert described(ec2, source)["PublicIpAddress"] == address
    socket.create_connection((address, 22), timeout=5).close()
    copy = launch(ec2, image_id)
    done = ssh(ssh_key, described(ec2, copy)["PublicIpAddress"], "cat /opt/baked.txt; hostname")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["installed", copy]
    host_key = "cat /etc/ssh/ssh_host_ed25519_key.pub"
    assert on_box(copy, host_key) != on_box(source, host_key)  # host keys of its own, as cloud-init makes them

    ec2.deregister_image(ImageId=image_id)
    assert ec2.describe_images(Filters=[{"Name": "image-id", "Values": [image_id]}])["Images"] == []
    assert podman("image", "exists", ref, check=False).returncode == 0  # a box still runs it
    ec2.terminate_instances(InstanceIds=[copy, source])
    assert podman("image", "exists", ref, check=False).returncode != 0  # gone with the last box that used it


def test_an_extra_ebs_volume_is_a_block_device_that_outlives_the_box(ec2, twin):
    mappings = [
        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 64}},
        {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "DeleteOnTermination": False}},
    ]
    instance_id = launch(ec2, BlockDeviceMappings=mappings)
    devices = described(ec2, instance_id)["BlockDeviceMappings"]
    volume_id = next(m["Ebs"]["VolumeId"] for m in devices if m["DeviceName"] == "/dev/sdf")
    link = by_id_link(volume_id)
    assert on_box(instance_id, f"readlink -f {link}").strip() == "/dev/nvme1n1"
    assert int(on_box(instance_id, f"blockdev --getsize64 {link}")) == 2**30
    on_box(
        instance_id, f"mkfs.ext4 -q {link} && mkdir -p /mnt/data && mount {link} /mnt/data && echo work >/mnt/data/f"
    )
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.start_instances(InstanceIds=[instance_id])
    assert on_box(instance_id, f"mount {link} /mnt/data && cat /mnt/data/f") == "work\n"  # same data after a start

    ec2.modify_volume(VolumeId=volume_id, Size=2)  # the device grows at once; the filesystem is the box's to grow
    assert int(on_box(instance_id, f"blockdev --getsize64 {link}")) == 2 * 2**30
    # (unmounted: growing a mounted ext4 needs CAP_SYS_RESOURCE, which this machine's root lacks)
    on_box(instance_id, f"umount /mnt/data && e2fsck -fy {link} >/dev/null && resize2fs {link} 2>/dev/null")
    blocks = on_box(instance_id, f"dumpe2fs -h {link} 2>/dev/null | sed -n 's/^Block count: *//p; s/^Block size: *//p'")
    count, size = map(int, blocks.split())
    assert count * size == 2 * 2**30

    ec2.terminate_instances(InstanceIds=[instance_id])
    assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    assert (twin.workdir / "volumes" / f"gpubox-twin-{volume_id}.img").stat().st_size == 2 * 2**30  # kept
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert volume_id not in loops  # the device went with the box


def test_a_volume_attached_to_a_running_box_is_its_next_disk_and_follows_it_to_another_box(ec2, twin):
    first = launch(ec2)
    zone = described(ec2, first)["Placement"]["AvailabilityZone"]
    volume_id = ec2.create_volume(AvailabilityZone=zone, Size=1, VolumeType="gp3")["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=first, Device="/dev/sdf")
    link = by_id_link(volume_id)
    assert on_box(first, f"readlink -f {link}").strip() == "/dev/nvme1n1"  # at once, without a restart
    on_box(first, f"mkfs.ext4 -q {link} && mkdir -p /mnt/data && mount {link} /mnt/data && echo kept >/mnt/data/f")
    ec2.stop_instances(InstanceIds=[first])
    ec2.start_instances(InstanceIds=[first])
    assert on_box(first, f"mount {link} /mnt/data && cat /mnt/data/f") == "kept\n"  # there again after a start
    ec2.terminate_instances(InstanceIds=[first])
    assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"

    second = launch(ec2, Placement={"AvailabilityZone": zone})
    ec2.attach_volume(VolumeId=volume_id, InstanceId=second, Device="/dev/sdf")
    assert on_box(second, f"mkdir -p /mnt/data && mount {link} /mnt/data && cat /mnt/data/f") == "kept\n"
    ec2.terminate_instances(InstanceIds=[second])
    ec2.delete_volume(VolumeId=volume_id)


def test_a_volume_made_from_a_snapshot_has_the_snapshotted_files_in_another_zone(ec2, twin):
    first = launch(ec2)
    zone = described(ec2, first)["Placement"]["AvailabilityZone"]
    other = next(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"] if z["ZoneName"] != zone)
    volume_id = ec2.create_volume(AvailabilityZone=zone, Size=1, VolumeType="gp3")["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=first, Device="/dev/sdf")
    on_box(first, f"mkfs.ext4 -q {by_id_link(volume_id)} && mkdir -p /mnt/d && mount {by_id_link(volume_id)} /mnt/d")
    on_box(first, "echo 'epoch 9' > /mnt/d/f && umount /mnt/d")
    ec2.terminate_instances(InstanceIds=[first])
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    on_snapshot = twin_file(twin, snapshot_id)
    assert on_snapshot.exists()
    copy = ec2.create_volume(AvailabilityZone=other, SnapshotId=snapshot_id, VolumeType="gp3")["VolumeId"]
    ec2.delete_volume(VolumeId=volume_id)
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert not on_snapshot.exists()  # a deleted snapshot's bytes go with it

    second = launch(ec2, Placement={"AvailabilityZone": other})
    ec2.attach_volume(VolumeId=copy, InstanceId=second, Device="/dev/sdf")
    assert on_box(second, f"mkdir -p /mnt/d && mount {by_id_link(copy)} /mnt/d && cat /mnt/d/f") == "epoch 9\n"
    ec2.terminate_instances(InstanceIds=[second])
    ec2.delete_volume(VolumeId=copy)


def twin_file(twin, ebs_id: str):
    """Where the twin keeps a volume's or a snapshot's bytes (tests/ground/twin.py, Twin.volume_file)."""
    return twin.workdir / "volumes" / f"gpubox-twin-{ebs_id}.img"


def metadata(instance_id: str, imds_url: str, path: str) -> str:
    """What the box itself gets from the metadata service (IMDSv2), asked from inside it."""
    script = (
        "import urllib.request as u, sys\n"
        f"t = u.urlopen(u.Request('{imds_url}/latest/api/token', method='PUT', "
        "headers={'X-aws-ec2-metadata-token-ttl-seconds': '60'}), timeout=5).read().decode()\n"
        "try:\n"
        f"    print(u.urlopen(u.Request('{imds_url}{path}', headers={{'X-aws-ec2-metadata-token': t}}), "
        "timeout=5).read().decode())\n"
        "except u.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    return podman("exec", "-i", container(instance_id), "python3", "-", input=script).stdout.strip()


def test_each_box_has_its_metadata_and_a_spot_notice_is_followed_by_the_stop(ec2, twin):
    spot = launch(ec2, InstanceMarketOptions={"MarketType": "spot"})
    other = launch(ec2)
    assert described(ec2, spot)["InstanceLifecycle"] == "spot"
    assert metadata(spot, twin.imds_url, "/latest/meta-data/instance-id") == spot
    assert metadata(other, twin.imds_url, "/latest/meta-data/instance-id") == other
    assert metadata(spot, twin.imds_url, "/latest/meta-data/spot/instance-action") == "404"

    when = utc_stamp(time.time() + 4)
    body = json.dumps({"instance": spot, "action": "stop", "time": when}).encode()
    urllib.request.urlopen(urllib.request.Request(twin.imds_url + "/_control/notice", data=body), timeout=5).close()
    notice = json.loads(metadata(spot, twin.imds_url, "/latest/meta-data/spot/instance-action"))
    assert notice == {"action": "stop", "time": when}
    assert metadata(other, twin.imds_url, "/latest/meta-data/spot/instance-action") == "404"  # its own only
    assert described(ec2, spot)["State"]["Name"] == "running"  # the notice comes first, then the stop
    stopped = wait_state(ec2, spot, "stopped", timeout=15)
    assert stopped["StateReason"]["Code"] == "Server.SpotInstanceShutdown" and container_state(spot) == "exited"
    assert described(ec2, other)["State"]["Name"] == "running"
    ec2.terminate_instances(InstanceIds=[spot, other])


def test_an_api_that_stops_takes_its_boxes_and_images_with_it(ssh_key):
    """Its state is gone, so is what it made: no container, image or loop device is left running unknown."""
    network = "gpubox-twin-test-gone"
    api = EC2Api(counted=False, twin=TwinSettings(network, network)).start()
    try:
        ec2 = api_client("ec2", api.endpoint)
        mappings = [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}]
        spec = {"ImageId": NOBLE, "InstanceType": "t3.micro", "MinCount": 1, "MaxCount": 1}
        instance_id = ec2.run_instances(**spec, BlockDeviceMappings=mappings)["Instances"][0]["InstanceId"]
        image_id = ec2.create_image(InstanceId=instance_id, Name="gone", NoReboot=True)["ImageId"]
        deadline = time.monotonic() + 60
        while ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] != "available":
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        api.stop()
        podman("network", "rm", "-f", network, check=False)
    mine = f"label={LABEL_TWIN}={network}"
    assert podman("ps", "-aq", "--filter", mine).stdout.split() == []
    assert podman("images", "-q", "--filter", mine).stdout.split() == []
    assert "gpubox-twin-vol-" not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout


# Last: it resets the API.
def test_a_container_the_api_did_not_start_is_left_alone(ec2, twin):
    foreign = "gpubox-twin-test-foreign"
    podman("rm", "-f", foreign, check=False)
    podman("run", "-d", "--name", foreign, "--network", NETWORK, "--systemd", "always", "localhost/gpubox-debian12")
    try:
        instance_id = launch(ec2)
        podman("exec", foreign, "systemctl", "poweroff", check=False)  # it stops: nothing of the API's changes
        time.sleep(2)
        assert described(ec2, instance_id)["State"]["Name"] == "running"
        podman("start", foreign)
        urllib.request.urlopen(urllib.request.Request(twin.endpoint + "/moto-api/reset", method="POST")).close()
        deadline = time.monotonic() + 15  # the API forgot its instances: their boxes go, the foreign one stays
        while container_state(instance_id) is not None:
            assert time.monotonic() < deadline, "the reset API's box is still there"
            time.sleep(0.3)
        assert podman("inspect", "--format", "{{.State.Status}}", foreign).stdout.strip() == "running"
        mine = podman("ps", "-a", "--filter", f"label={LABEL_TWIN}={PREFIX}", "--format", "{{.Names}}").stdout.split()
        assert foreign not in mine
    finally:
        podman("rm", "-f", "-t", "2", foreign, check=False)
