"""The EC2 twin: the local EC2 API's instances are podman containers, driven by the instance lifecycle the way EC2
drives virtual machines. moto keeps state only; inside the moto server's process (tests/ground/moto_server.py) this
module wraps the EC2 backend's lifecycle calls, so every client (Ansible's modules, the inventory plugin, boto3) sees
instances whose machines really start, stop, power themselves off and are baked into images.

What each call and event does, and what the twin does not honour: docs/testing.md, "The EC2 twin". Here: a box is
the container PREFIX-INSTANCEID on the twin's network, labelled org.gpubox.twin=PREFIX (nothing without that label
is ever touched) and org.gpubox.instance=INSTANCEID; its address is the twin's choice (podman --ip, with a MAC made
from it), so a reboot keeps it and a start gets another; baked images are localhost/PREFIX-ami:AMIID; EBS volume
files are WORKDIR/volumes/gpubox-twin-VOLUMEID.img on loop devices (AttachVolume makes a running box's device node
itself: its container may use loop devices), a snapshot of one is a copy of its file (gpubox-twin-SNAPSHOTID.img),
and a volume created from that snapshot starts as a copy of it; the instance metadata service is
tests/ground/imds.py on the network's host address, told which box asks by the client address.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import ipaddress
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.ground.hosts import ensure_free_network, ensure_image, podman

LABEL_TWIN = "org.gpubox.twin"
LABEL_INSTANCE = "org.gpubox.instance"
BOOT_TIMEOUT = 60

# The test image that stands for a stock AMI, by the release its name says (Canonical's names, and AWS's Deep
# Learning AMI, which is Ubuntu 22.04). An AMI none of these match cannot be launched by the twin.
STOCK_IMAGES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"ubuntu-jammy-22\.04|\(Ubuntu 22\.04\)"), "debian12"),
    (re.compile(r"ubuntu-noble-24\.04|\(Ubuntu 24\.04\)"), "debian13"),
]
# The login user of those images (Ubuntu's), whose authorized_keys gets the key pair's public key.
LOGIN_USER = "ubuntu"

# EC2's states and their codes.
PENDING, RUNNING, SHUTTING_DOWN, STOPPING = ("pending", 0), ("running", 16), ("shutting-down", 32), ("stopping", 64)


# Loop devices (block major 7): the EBS volumes of a box are loop devices, some attached after its start.
LOOP_RULE = "b 7:* rwm"


def type_limits(instance_type: str, host_cpus: int | None = None, host_mib: int | None = None) -> tuple[int, int]:
    """(CPUs, memory MiB) of a box of this type: the type's vCPUs and memory, at most this machine's CPUs and
    three quarters of its memory."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    info = INSTANCE_TYPES.get(instance_type, {})
    vcpus = int(info.get("VCpuInfo", {}).get("DefaultVCpus", 2))
    mib = int(info.get("MemoryInfo", {}).get("SizeInMiB", 4096))
    host_cpus = host_cpus or os.cpu_count() or 1
    host_mib = host_mib or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return min(vcpus, host_cpus), min(mib, host_mib * 3 // 4)


def stock_image(ami_name: str) -> str | None:
    """The test image standing for a stock AMI of this name, or None."""
    return next((image for pattern, image in STOCK_IMAGES if pattern.search(ami_name or "")), None)


def by_id_link(volume_id: str) -> str:
    """udev's name for an EBS volume on a Nitro instance."""
    return "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" + volume_id.replace("-", "")


def ec2_error(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


@dataclass
class Volume:
    volume_id: str
    file: Path
    loop: str
    device: str  # in the box: /dev/nvmeNn1
    hot: bool = False  # attached to the running box (AttachVolume): its device node is made in the box at each boot


@dataclass
class Box:
    """What the twin knows of one instance's machine."""

    instance: Any  # moto's Instance
    container: str
    image: str
    baked: bool  # from an image CreateImage made (not a stock one)
    address: str = ""
    volumes: list[Volume] = field(default_factory=list)


class Twin:
    def __init__(self, network: str, prefix: str, workdir: Path, imds_port: int = 0, poll: float = 1.0):
        self.network, self.prefix, self.workdir, self.poll = network, prefix, Path(workdir), poll
        self.gateway = ensure_free_network(network)
        net = ipaddress.ip_network(
            json.loads(podman("network", "inspect", network).stdout)[0]["subnets"][0]["subnet"], strict=False
        )
        # Addresses handed out in turn from .10 up, so a box that starts again gets another one (EC2's public IPs).
        self._pool = [str(ip) for ip in net.hosts() if int(ip) - int(net.network_address) >= 10]
        self._next = 0
        self._lock = threading.RLock()
        self.boxes: dict[str, Box] = {}  # instance id -> box
        self._busy: set[str] = set()
        self._images: dict[str, str] = {}  # AMI id -> committed image, for AMIs this twin baked
        self._orphans: set[str] = set()  # committed images of deregistered AMIs still used by a box
        self._stop = threading.Event()
        self.imds_port = imds_port
        self.imds = None

    # --- wiring ------------------------------------------------------------------------------------------

    def install(self) -> Twin:
        """Wrap the EC2 backend's lifecycle calls (in this process), serve the IMDS, watch the boxes."""
        from moto.ec2.models import EC2Backend
        from moto.ec2.responses.amis import AmisResponse

        twin = self
        original = {
            name: getattr(EC2Backend, name)
            for name in (
                "run_instances",
                "start_instances",
                "stop_instances",
                "terminate_instances",
                "reboot_instances",
                "modify_instance_attribute",
                "create_image",
                "deregister_image",
                "modify_volume",
                "attach_volume",
                "create_snapshot",
                "delete_snapshot",
                "create_volume",
            )
        }
        no_reboot = threading.local()

        def run_instances(backend, image_id, count, user_data, security_group_names, **kwargs):
            image = twin.image_for(backend, image_id)  # refused before anything is created
            reservation = original["run_instances"](backend, image_id, count, user_data, security_group_names, **kwargs)
            for instance in reservation.instances:
                twin.launch(instance, image)
            return reservation

        def start_instances(backend, instance_ids):
            return twin.start(backend, instance_ids, original["start_instances"])

        def stop_instances(backend, instance_ids):
            return twin.transition(backend, instance_ids, STOPPING, twin.stop_box, original["stop_instances"])

        def terminate_instances(backend, instance_ids):
            done = twin.transition(
                backend, instance_ids, SHUTTING_DOWN, twin.remove_box, original["terminate_instances"]
            )
            twin.release_volumes(backend)
            return done

        def reboot_instances(backend, instance_ids):
            rebooted = original["reboot_instances"](backend, instance_ids)
            for instance in rebooted:
                twin.reboot_box(instance.id)
            return rebooted

        def modify_instance_attribute(backend, instance_id, key, value):
            instance = backend.get_instance(instance_id)
            if key == "instance_type" and instance._state.name != "stopped":
                raise ec2_error(
                    "IncorrectInstanceState",
                    f"The instance '{instance_id}' is not in the 'stopped' state.",
                )
            return original["modify_instance_attribute"](backend, instance_id, key, value)

        def create_image(backend, instance_id, name, description, tag_specifications):
            ami = original["create_image"](backend, instance_id, name, description, tag_specifications)
            twin.bake(ami, instance_id, reboot=not getattr(no_reboot, "value", False))
            return ami

        def deregister_image(backend, ami_id):
            original["deregister_image"](backend, ami_id)
            twin.forget_image(ami_id)

        def modify_volume(backend, volume_id, target_size=None, *args, **kwargs):
            volume = original["modify_volume"](backend, volume_id, target_size, *args, **kwargs)
            if target_size:
                twin.grow_volume(volume_id, int(target_size))
            return volume

        def attach_volume(backend, volume_id, instance_id, device_path, delete_on_termination=False):
            attachment = original["attach_volume"](backend, volume_id, instance_id, device_path, delete_on_termination)
            if attachment is not None and instance_id in twin.boxes:
                twin.hot_attach(backend, instance_id, volume_id)
            return attachment

        def create_snapshot(backend, volume_id, description, *args, **kwargs):
            snapshot = original["create_snapshot"](backend, volume_id, description, *args, **kwargs)
            twin.copy_volume_file(volume_id, snapshot.id)
            return snapshot

        def delete_snapshot(backend, snapshot_id):
            snapshot = original["delete_snapshot"](backend, snapshot_id)
            twin.volume_file(snapshot_id).unlink(missing_ok=True)
            return snapshot

        def create_volume(backend, size, zone_name, snapshot_id=None, *args, **kwargs):
            volume = original["create_volume"](backend, size, zone_name, snapshot_id, *args, **kwargs)
            if snapshot_id:
                twin.copy_volume_file(snapshot_id, volume.id)
            return volume

        def amis_create_image(response):
            no_reboot.value = str(response._get_param("NoReboot", "false")).lower() == "true"
            try:
                return original_create_image_response(response)
            finally:
                no_reboot.value = False

        original_create_image_response = AmisResponse.create_image
        AmisResponse.create_image = amis_create_image
        for name, wrapper in (
            ("run_instances", run_instances),
            ("start_instances", start_instances),
            ("stop_instances", stop_instances),
            ("terminate_instances", terminate_instances),
            ("reboot_instances", reboot_instances),
            ("modify_instance_attribute", modify_instance_attribute),
            ("create_image", create_image),
            ("deregister_image", deregister_image),
            ("modify_volume", modify_volume),
            ("attach_volume", attach_volume),
            ("create_snapshot", create_snapshot),
            ("delete_snapshot", delete_snapshot),
            ("create_volume", create_volume),
        ):
            setattr(EC2Backend, name, wrapper)

        self._serve_imds()
        threading.Thread(target=self._watch, name="twin-watch", daemon=True).start()
        atexit.register(self.close)
        return self

    def close(self) -> None:
        """The API is going, and its state with it: what it made goes too (its boxes, their loop devices, its
        baked images; the volume files stay in its working directory)."""
        self._stop.set()
        if self.imds:
            self.imds.stop()
        with self._lock:
            instance_ids = list(self.boxes)
        for instance_id in instance_ids:
            self._forget(instance_id)
        mine = f"label={LABEL_TWIN}={self.prefix}"
        images = podman("images", "-q", "--filter", mine, check=False).stdout.split()
        if images:
            podman("rmi", "-f", *set(images), check=False)

    # --- images ------------------------------------------------------------------------------------------

    def image_for(self, backend, image_id: str) -> str:
        """The container image a box of this AMI runs; refuses an AMI the twin has none for."""
        with self._lock:
            if image_id in self._images:
                return self._images[image_id]
        amis = backend.describe_images(ami_ids=[image_id]) if image_id else []
        name = amis[0].name if amis else ""
        test_image = stock_image(name)
        if test_image is None:
            raise ec2_error(
                "InvalidAMIID.Unavailable",
                f"The local EC2 twin has no machine image for AMI {image_id} ({name!r}): it runs Ubuntu 22.04 and "
                "24.04 stock images and images made by CreateImage (tests/ground/twin.py, STOCK_IMAGES).",
            )
        return ensure_image(test_image)

    def bake(self, ami, instance_id: str, reboot: bool) -> None:
        """CreateImage: the AMI is `pending` while the box is committed (stopped first, then started again at its
        address, unless NoReboot), then `available`, as on EC2 while its snapshots are taken."""
        box = self._box(instance_id)
        ref = f"localhost/{self.prefix}-ami:{ami.id}"
        labels = ["--change", f"LABEL {LABEL_TWIN}={self.prefix}", "--change", f"LABEL org.gpubox.ami={ami.id}"]
        ami.state = "pending"

        def commit() -> None:
            with self._busy_with(instance_id):
                running = box.instance._state.name == "running"
                if running and reboot:
                    podman("stop", "-t", "30", box.container)
                    done = podman("commit", "--quiet", *labels, box.container, ref, check=False)
                    self._boot(box)
                else:
                    done = podman("commit", "--quiet", "--pause=true", *labels, box.container, ref, check=False)
            if done.returncode != 0:
                ami.state = "failed"
                ami.state_reason = done.stderr.strip()
                return
            with self._lock:
                self._images[ami.id] = ref
            ami.state = "available"

        threading.Thread(target=commit, name=f"bake-{ami.id}", daemon=True).start()

    def forget_image(self, ami_id: str) -> None:
        with self._lock:
            ref = self._images.pop(ami_id, None)
        if ref and podman("rmi", ref, check=False).returncode != 0:
            with self._lock:
                self._orphans.add(ref)  # a box still runs it: removed with the last such box

    # --- the lifecycle -------------------------------------------------------------------------------------

    def launch(self, instance, image: str) -> None:
        baked = image.startswith(f"localhost/{self.prefix}-ami:")
        box = Box(instance, f"{self.prefix}-{instance.id}", image, baked)
        with self._lock:
            self.boxes[instance.id] = box
        with self._busy_with(instance.id):
            instance._state.name, instance._state.code = PENDING
            box.volumes = self._attach_volumes(instance)
            cpus, mib = type_limits(instance.instance_type)
            devices = [arg for v in box.volumes for arg in ("--device", f"{v.loop}:{v.device}")]
            address = self._run_with_address(
                [
                    "run",
                    "-d",
                    "--name",
                    box.container,
                    "--hostname",
                    instance.id,
                    "--label",
                    f"{LABEL_TWIN}={self.prefix}",
                    "--label",
                    f"{LABEL_INSTANCE}={instance.id}",
                    "--network",
                    self.network,
                    "--systemd",
                    "always",
                    "--cpus",
                    str(cpus),
                    "--memory",
                    f"{mib}m",
                    # a box may mount its disks, and take a volume attached later (hot_attach)
                    "--cap-add",
                    "SYS_ADMIN",
                    "--device-cgroup-rule",
                    LOOP_RULE,
                    *devices,
                ],
                [image],
            )
            self._booted(box, address)
            self._cloud_init(box, first_boot=True)
            instance._state.name, instance._state.code = RUNNING

    def start(self, backend, instance_ids: list[str], original) -> list:
        instances = backend.get_multi_instances_by_id(instance_ids)
        for instance in instances:
            if instance._state.name not in ("stopped", "running", "pending"):
                raise ec2_error(
                    "IncorrectInstanceState",
                    f"The instance '{instance.id}' is not in a state from which it can be started.",
                )
        previous = {i.id: copy.copy(i._state) for i in instances}
        for instance in instances:
            if instance._state.name != "stopped":
                continue
            box = self._box(instance.id)
            with self._busy_with(instance.id):
                instance._state.name, instance._state.code = PENDING
                podman("network", "disconnect", self.network, box.container, check=False)
                address = self._run_with_address(["network", "connect"], [self.network, box.container])
                self._boot(box, address)
                original(backend, [instance.id])
                self._set_address(instance, box.address)
        return [(i, previous[i.id]) for i in instances]

    def transition(self, backend, instance_ids: list[str], passing: tuple[str, int], work, original) -> list:
        """Stop or terminate: each instance shows the passing state while its container goes, then moto's own."""
        instances = backend.get_multi_instances_by_id(instance_ids)
        previous = {i.id: copy.copy(i._state) for i in instances}
        for instance in instances:
            if (passing == STOPPING and instance.disable_api_stop is True) or (
                passing == SHUTTING_DOWN and instance.disable_api_termination is True
            ):
                return original(backend, instance_ids)  # moto refuses it, as EC2 does, before anything happens
        for instance in instances:
            if instance._state.name in ("terminated", "stopped") and passing == STOPPING:
                continue
            if instance.id not in self.boxes or instance._state.name == "terminated":
                continue
            with self._busy_with(instance.id):
                instance._state.name, instance._state.code = passing
                work(instance.id)
        done = original(backend, instance_ids)
        for instance in instances:
            if instance._state.name == "stopped":
                instance.nics[0].public_ip = None  # as EC2: no public IP while stopped
        return [(i, previous[i.id]) for i, _ in done]

    def stop_box(self, instance_id: str) -> None:
        podman("stop", "-t", "30", self._box(instance_id).container)

    def remove_box(self, instance_id: str) -> None:
        box = self._box(instance_id)
        podman("rm", "-f", "-t", "10", box.container, check=False)
        with self._lock:
            orphans = set(self._orphans)
        for ref in orphans:
            if podman("rmi", ref, check=False).returncode == 0:
                with self._lock:
                    self._orphans.discard(ref)

    def reboot_box(self, instance_id: str) -> None:
        box = self._box(instance_id)
        with self._busy_with(instance_id):
            podman("stop", "-t", "30", box.container)
            self._boot(box)

    def release_volumes(self, backend) -> None:
        """Volumes of terminated boxes: the loop device goes; the file too where the volume was deleted."""
        with self._lock:
            gone = [b for b in self.boxes.values() if b.instance._state.name == "terminated" and b.volumes]
        for box in gone:
            for volume in box.volumes:
                subprocess.run(["losetup", "-d", volume.loop], capture_output=True)
                with contextlib.suppress(Exception):
                    backend.get_volume(volume.volume_id)
                    continue
                volume.file.unlink(missing_ok=True)
            box.volumes = []

    def grow_volume(self, volume_id: str, size_gib: int) -> None:
        with self._lock:
            found = [v for b in self.boxes.values() for v in b.volumes if v.volume_id == volume_id]
        for volume in found:
            if volume.file.stat().st_size < size_gib * 2**30:
                os.truncate(volume.file, size_gib * 2**30)
                subprocess.run(["losetup", "-c", volume.loop], check=True, capture_output=True)

    def hot_attach(self, backend, instance_id: str, volume_id: str) -> None:
        """AttachVolume: the volume's loop device becomes the box's next NVMe disk, at once if the box runs (its
        container allows loop devices: LOOP_RULE), else at its next boot."""
        box = self._box(instance_id)
        with self._lock:
            if any(v.volume_id == volume_id for v in box.volumes):
                return
            file, loop = self._loop_for(backend.get_volume(volume_id))
            volume = Volume(volume_id, file, loop, f"/dev/nvme{len(box.volumes) + 1}n1", hot=True)
            box.volumes.append(volume)
        if podman("inspect", "--format", "{{.State.Status}}", box.container, check=False).stdout.strip() == "running":
            self._make_nodes(box)

    def _make_nodes(self, box: Box) -> None:
        """The device nodes of the hot-attached volumes and udev's links to them (what the kernel and udev do)."""
        script = []
        for volume in box.volumes:
            if volume.hot:
                rdev = os.stat(volume.loop).st_rdev
                node = f"{volume.device} b {os.major(rdev)} {os.minor(rdev)}"
                script.append(
                    f"{{ [ -b {volume.device} ] || mknod -m 0660 {node}; }} && mkdir -p /dev/disk/by-id && "
                    f"ln -sfn {volume.device} {by_id_link(volume.volume_id)}"
                )
        if script:
            podman("exec", "--privileged", box.container, "sh", "-ec", " && ".join(script))

    def interrupt(self, instance_id: str, action: str) -> None:
        """A spot interruption notice's time has come: EC2 stops (or terminates) the instance."""
        box = self.boxes.get(instance_id)
        if box is None or box.instance._state.name != "running":
            return
        backend = box.instance.ec2_backend
        if action == "terminate":
            backend.terminate_instances([instance_id])
        else:
            backend.stop_instances([instance_id])
        box.instance.state_reason.code = "Server.SpotInstanceShutdown"
        box.instance.state_reason.message = "Server.SpotInstanceShutdown: Spot Instance Shutdown"

    # --- a box powering itself off -----------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            with self._lock:
                watched = {i: b for i, b in self.boxes.items() if i not in self._busy}
            for instance_id, box in list(watched.items()):
                try:
                    known = box.instance.ec2_backend.get_instance(instance_id) is box.instance
                except Exception:
                    known = False
                if not known:  # the API was reset: its boxes go with its state
                    self._forget(instance_id)
                    del watched[instance_id]
            if not any(b.instance._state.name == "running" for b in watched.values()):
                continue
            mine = f"label={LABEL_TWIN}={self.prefix}"
            listed = podman("ps", "-a", "--filter", mine, "--format", "json", check=False)
            try:
                states = {c["Labels"].get(LABEL_INSTANCE): c["State"] for c in json.loads(listed.stdout or "[]")}
            except (ValueError, KeyError, AttributeError):
                continue
            for instance_id, box in watched.items():
                if box.instance._state.name == "running" and states.get(instance_id) in ("exited", "stopped"):
                    self._powered_off(box.instance)

    def _powered_off(self, instance) -> None:
        """The box shut itself down: EC2 follows its shutdown behaviour. Claimed under the lock and checked once
        more, since a call of the API (a stop, an image's reboot) may have taken the box meanwhile."""
        from moto.ec2.models.instances import StateReason

        with self._lock:
            if instance.id in self._busy or instance._state.name != "running":
                return
            self._busy.add(instance.id)
        try:
            box = self.boxes[instance.id]
            state = podman("inspect", "--format", "{{.State.Status}}", box.container, check=False).stdout.strip()
            if state not in ("exited", "stopped"):
                return
            if instance.instance_initiated_shutdown_behavior == "terminate":
                self.remove_box(instance.id)
                instance.terminate()
                self.release_volumes(instance.ec2_backend)
            else:
                instance.stop()
                instance.nics[0].public_ip = None
            instance.state_reason = StateReason(
                "Client.InstanceInitiatedShutdown: Instance initiated shutdown", "Client.InstanceInitiatedShutdown"
            )
            instance._reason = ""
        finally:
            with self._lock:
                self._busy.discard(instance.id)

    def _forget(self, instance_id: str) -> None:
        with self._lock:
            box = self.boxes.pop(instance_id, None)
        if box:
            podman("rm", "-f", "-t", "1", box.container, check=False)
            for volume in box.volumes:
                subprocess.run(["losetup", "-d", volume.loop], capture_output=True)

    # --- helpers -----------------------------------------------------------------------------------------

    def _box(self, instance_id: str) -> Box:
        with self._lock:
            box = self.boxes.get(instance_id)
        if box is None:
            raise ec2_error("InternalError", f"the local EC2 twin has no machine for {instance_id}")
        return box

    @contextlib.contextmanager
    def _busy_with(self, instance_id: str):
        with self._lock:
            self._busy.add(instance_id)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(instance_id)

    def _run_with_address(self, head: list[str], tail: list[str]) -> str:
        """Run a podman command that joins the network with the next address of the pool that no box of this twin
        holds (`--ip`: the address is the twin's choice, so a reboot keeps it and a start gets another)."""
        taken = self._addresses_in_use()
        with self._lock:
            used = taken | {b.address for b in self.boxes.values()}
            free = [a for a in self._pool[self._next :] + self._pool[: self._next] if a not in used]
            if not free:
                raise ec2_error("InsufficientFreeAddressesInSubnet", f"no free address left on {self.network}")
            address = free[0]
            self._next = (self._pool.index(address) + 1) % len(self._pool)
        # The MAC follows the address: the host's neighbour entry for an address stays right across a reboot.
        mac = "02:42:" + ":".join(f"{int(octet):02x}" for octet in address.split("."))
        done = podman(*head, "--ip", address, "--mac-address", mac, *tail, check=False)
        if done.returncode != 0:
            raise ec2_error("InternalError", f"podman {' '.join(head[:2])}: {done.stderr.strip()}")
        return address

    def _addresses_in_use(self) -> set[str]:
        """The addresses of the running containers on the network, the twin's and anyone else's."""
        ids = podman("ps", "-q", "--filter", f"network={self.network}", check=False).stdout.split()
        if not ids:
            return set()
        template = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        return set(podman("inspect", "--format", template, *ids, check=False).stdout.split())

    def _boot(self, box: Box, address: str | None = None) -> None:
        podman("start", box.container)
        self._booted(box, address or box.address)
        self._cloud_init(box, first_boot=False)

    def _booted(self, box: Box, address: str) -> None:
        """Wait for systemd (degraded is fine: a container lacks some hardware units), then apply the type's
        limits and the address."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            state = podman("exec", box.container, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise ec2_error("InternalError", f"{box.container}: systemd still '{state}' after {BOOT_TIMEOUT} s")
            time.sleep(0.2)
        cpus, mib = type_limits(box.instance.instance_type)
        podman("update", "--cpus", str(cpus), "--memory", f"{mib}m", box.container, check=False)
        box.address = address
        self._set_address(box.instance, address)

    def _set_address(self, instance, address: str) -> None:
        nic = instance.nics[0]
        nic.private_ip_address = nic.public_ip = address
        for entry in nic.private_ip_addresses:
            if entry.get("Primary"):
                entry["PrivateIpAddress"] = address

    def _cloud_init(self, box: Box, first_boot: bool) -> None:
        """What cloud-init does on EC2: the key pair's public key for the login user, SSH host keys of the box's
        own on its first boot from a baked image, and (every boot) udev's links to the EBS volumes."""
        self._make_nodes(box)
        script = []
        for volume in box.volumes:
            if not volume.hot:
                script.append(f"mkdir -p /dev/disk/by-id && ln -sfn {volume.device} {by_id_link(volume.volume_id)}")
        if first_boot and box.baked:
            script.append("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A -q && (systemctl try-restart ssh || true)")
        key = None
        if first_boot and box.instance.key_name:
            pair = box.instance.ec2_backend.key_pairs.get(box.instance.key_name)
            key = pair.material_public if pair else None
            key = key.decode() if isinstance(key, bytes) else key
        if key:
            user, keys = LOGIN_USER, f"~{LOGIN_USER}/.ssh/authorized_keys"
            script.append(
                f"install -d -m 0700 -o {user} -g {user} ~{user}/.ssh && touch {keys} && "
                f'(grep -qxF "$KEY" {keys} || echo "$KEY" >> {keys}) && chown {user}: {keys} && chmod 0600 {keys}'
            )
        if script:
            env = ["--env", f"KEY={key.strip()}"] if key else []
            podman("exec", *env, box.container, "sh", "-ec", " && ".join(script))

    def _attach_volumes(self, instance) -> list[Volume]:
        volumes = []
        mappings = sorted(instance.get_block_device_mapping, key=lambda item: item[0])
        extra = [(name, bdt) for name, bdt in mappings if name != instance.root_device_name]
        for n, (_, device) in enumerate(extra, start=1):
            file, loop = self._loop_for(instance.ec2_backend.get_volume(device.volume_id))
            volumes.append(Volume(device.volume_id, file, loop, f"/dev/nvme{n}n1"))
        return volumes

    def volume_file(self, ebs_id: str) -> Path:
        """Where a volume's (or a snapshot's) bytes live: the name tests/ground/fresh.sh knows."""
        return self.workdir / "volumes" / f"gpubox-twin-{ebs_id}.img"

    def copy_volume_file(self, source_id: str, target_id: str) -> None:
        """A snapshot of a volume, or a volume from a snapshot: a sparse copy of the bytes (none yet: nothing to
        copy; a root volume is its container)."""
        source = self.volume_file(source_id)
        if source.exists():
            subprocess.run(["cp", "--sparse=always", str(source), str(self.volume_file(target_id))], check=True)

    def _loop_for(self, ebs) -> tuple[Path, str]:
        """The volume's file (kept across its attachments: its data) as a loop device."""
        file = self.volume_file(ebs.id)
        file.parent.mkdir(parents=True, exist_ok=True)
        if not file.exists() or file.stat().st_size < ebs.size * 2**30:
            with open(file, "ab") as f:
                f.truncate(ebs.size * 2**30)
        loop = subprocess.run(["losetup", "-f", "--show", str(file)], capture_output=True, text=True, check=True)
        return file, loop.stdout.strip()

    def _serve_imds(self) -> None:
        from tests.ground.imds import ImdsStandin

        def resolve(client: str) -> str | None:
            with self._lock:
                return next((i for i, b in self.boxes.items() if b.address == client), None)

        self.imds = ImdsStandin(self.gateway, self.imds_port, resolve=resolve, on_due=self.interrupt).start()
        # where the test and the rehearsal find it (EC2Api.imds_url)
        (self.workdir / "twin.json").write_text(json.dumps({"imds_url": self.imds.url, "gateway": self.gateway}))
