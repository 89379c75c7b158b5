"""From nothing to a notebook and through the box's life: the rehearsal (unchanged site.yml against the local EC2
API, whose instances are containers: the EC2 twin), then what a person does next: ssh in, open the tunnel, use
JupyterLab in a browser, list, stop, start, let autostop power the box off, bake an image and launch from it, live
through a spot interruption, move a box out of a zone without capacity, keep a data volume across boxes, terminate.
The tests run in order; each builds on the state the previous one left."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_SETTINGS, changed_count, noise, png_size, run_ansible
from tests.ground.ec2api import EC2Api, api_client
from tests.ground.ec2faults import FaultProxy
from tests.ground.hosts import podman
from tests.ground.imds import utc_stamp
from tests.ground.net import free_port
from tests.ground.rehearsal import Rehearsal
from tests.ground.twin import type_limits

# The box these tests declare for their rehearsal (not the project's: a user may declare other boxes), over the
# tests' own settings (tests/settings/), so your settings never change what the rehearsal does here.
BOX = "d2l"
ARTIFACTS = ROOT / "test-artifacts"
IMAGE = "e2e-baked"
# Later in the story: two more boxes from the image BOX is baked into, one of them a spot box.
MORE_BOXES = [
    {"name": BOX},
    {"name": "baked", "image": f"my:{IMAGE}"},
    {"name": "spot", "image": f"my:{IMAGE}", "market": "spot"},
]
# An autostop that powers an unused box off within a minute: idle 30 s, grace 6 s, a look every 5 s, and nothing
# but a hold counts as use (this machine's CPU is the boxes' CPU, and busy with other tests).
QUICK_AUTOSTOP = [
    "-e",
    json.dumps(
        {
            "autostop_idle_minutes": 0.5,
            "autostop_grace_minutes": 0.1,
            "autostop_poll_seconds": 5,
            "autostop_signals": ["hold"],
        }
    ),
]


FOREIGN = "gpubox-e2e-foreign"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e-home")
    r = Rehearsal("e2e", tmp_path_factory.mktemp("e2e-state"), home, box_names=[BOX], settings_sources=[TEST_SETTINGS])
    try:
        r.up()
        # Someone else's container on the rehearsal's network: nothing the API does may touch it.
        podman("rm", "-f", FOREIGN, check=False)
        podman(
            "run", "-d", "--name", FOREIGN, "--network", r.network, "--systemd", "always", "localhost/gpubox-debian12"
        )
        yield r
    finally:
        # What the playbooks asked of the local EC2 API counts for the IAM policy check.
        EC2Api.stopped_actions |= r.actions()
        r.down()
        podman("rm", "-f", "-t", "2", FOREIGN, check=False)
        podman("network", "rm", "-f", r.network, check=False)


def ssh(r: Rehearsal, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The user's `ssh`, with the rehearsal's home standing in for ~ (ssh reads ~ from the password file)."""
    cmd = ["ssh", "-F", str(r.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check)


def ssh_entries(r: Rehearsal) -> str:
    return r.ssh_entries.read_text()


def run(r: Rehearsal, playbook: str, *args: str) -> subprocess.CompletedProcess:
    proc = r.playbook(playbook, *args, check=False, capture_output=True, text=True)
    if proc.returncode != 0:  # the whole output, for the failure that is not in its tail
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "e2e-failed-run.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc


def ec2_state(r: Rehearsal, box: str = BOX) -> list[str]:
    ec2 = api_client("ec2", r.state()["endpoint"])
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [box]}])
    return [i["State"]["Name"] for res in found["Reservations"] for i in res["Instances"]]


def said(proc: subprocess.CompletedProcess) -> str:
    """A run's output with its whitespace made single spaces (the yaml callback may fold a long message line)."""
    return " ".join(proc.stdout.split())


def container_state(name: str) -> str:
    return podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip() or "gone"


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    """Wait (bounded) until check() gives something true; return it."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(every)
    return found


def host_name(r: Rehearsal, box: str = BOX) -> str:
    """The address gpubox's ssh config gives the box."""
    return re.search(rf"^Host {box}\n\s+HostName (\S+)", ssh_entries(r), re.M)[1]


def test_site_rerun_changes_nothing(rehearsal):
    proc = run(rehearsal, "site.yml")
    assert changed_count(proc.stdout) == 0, proc.stdout.split("PLAY RECAP")[-1]
    assert noise(proc.stdout + proc.stderr) == []  # a normal run is quiet: no warning, Ansible's or Python's
    assert re.search(rf"^{BOX}\s+: ok=\d+", proc.stdout, re.M), "configure.yml did not reach the box"


def test_ssh_box_opens_a_shell_on_it(rehearsal):
    out = ssh(rehearsal, BOX, "hostname; id -un; bash -lc 'command -v nvcc'").stdout.split()
    assert out[:2] == [rehearsal.instance(BOX)["InstanceId"], "ubuntu"]  # the box is the instance's machine
    assert re.fullmatch(r"/usr/local/cuda(-[\d.]+)?/bin/nvcc", out[2]), f"the login shell finds no nvcc: {out}"


@pytest.fixture(scope="module")
def tunnel(rehearsal):
    """A real `ssh -N -L PORT:localhost:8888 d2l`, as the D2L chapter opens it (another local port than 8889,
    which may be in use on this machine)."""
    port = free_port()
    proc = subprocess.Popen(
        ["ssh", "-F", str(rehearsal.ssh_config), "-o", "BatchMode=yes", "-N", "-L", f"{port}:localhost:8888", BOX]
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, "ssh -N -L exited"
            assert time.monotonic() < deadline, "the tunnel did not open within 20 s"
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_tunnel_serves_jupyter_behind_its_token(rehearsal, tunnel):
    token = rehearsal.jupyter_token(BOX)
    request = urllib.request.Request(tunnel + "/api/status", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tunnel + "/api/status", timeout=10)
    assert refused.value.code == 403


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: run `make system`"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    flags += ["--disable-background-networking", "--window-size=1280,900", "--virtual-time-budget=20000"]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def test_jupyterlab_renders_in_a_browser_through_the_tunnel(rehearsal, tunnel):
    url = f"{tunnel}/lab?token={rehearsal.jupyter_token(BOX)}"
    dom = chromium("--dump-dom", url).stdout
    # JupyterLab's shell was built by its JavaScript (the served HTML has none of this).
    assert 'id="main"' in dom and "jp-LabShell" in dom
    assert "jp-Launcher" in dom and "Python (d2l)" in dom, "the launcher does not offer the d2l kernel"
    assert re.search(r"jp-DirListing-itemText[^>]*>\s*<span[^>]*>pytorch<", dom), "the d2l notebooks are not listed"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "jupyterlab-through-tunnel.png"
    shot.unlink(missing_ok=True)
    chromium(f"--screenshot={shot}", url)
    assert png_size(shot) == (1280, 900) and shot.stat().st_size > 20_000


def test_jupyter_port_is_closed_on_the_box_address(rehearsal):
    address = rehearsal.instance(BOX)["PublicIpAddress"]
    socket.create_connection((address, 22), timeout=5).close()  # the address is right: SSH answers there
    with pytest.raises(OSError):
        socket.create_connection((address, 8888), timeout=5).close()


def test_dynamic_inventory_lists_the_box(rehearsal):
    graph = run_ansible(["ansible-inventory", "--graph", "gpubox"], env=rehearsal.env()).stdout
    assert re.search(rf"^\s*\|--{BOX}$", graph, re.M), graph


def test_stop_start_and_the_ssh_config_follows(rehearsal):
    container = rehearsal.container(BOX)
    before = rehearsal.instance(BOX)["PublicIpAddress"]
    run(rehearsal, "playbooks/stop.yml")
    assert ec2_state(rehearsal) == ["stopped"] and container_state(container) == "exited"
    entries = ssh_entries(rehearsal)
    assert f"Host {BOX}\n" not in entries and re.search(rf"# {BOX} \(i-\w+\) is stopped", entries)
    assert ssh(rehearsal, BOX, "true", check=False).returncode != 0

    run(rehearsal, "playbooks/start.yml")
    assert ec2_state(rehearsal) == ["running"] and container_state(container) == "running"
    after = rehearsal.instance(BOX)["PublicIpAddress"]
    assert after != before and host_name(rehearsal) == after  # a new address, and the ssh config follows it
    assert ssh(rehearsal, BOX, "hostname").stdout.strip() == rehearsal.instance(BOX)["InstanceId"]
    proc = run(rehearsal, "playbooks/configure.yml")
    assert changed_count(proc.stdout) == 0, proc.stdout.split("PLAY RECAP")[-1]


def test_a_start_in_a_zone_out_of_the_boxs_type_takes_its_next_declared_type(rehearsal):
    """start.yml through the fault proxy: the twin's zone has no g4dn.xlarge, so the stopped box's type is changed to
    the next one it declares, and the container starts with that type's limits."""
    declared = json.dumps({"gpubox_boxes": [{"name": BOX, "instance_type": ["g4dn.xlarge", "g4dn.2xlarge"]}]})
    run(rehearsal, "playbooks/stop.yml")
    with FaultProxy(rehearsal.state()["endpoint"]) as proxy:
        proxy.add_rule("StartInstances", "InsufficientInstanceCapacity", instance_type="g4dn.xlarge")
        cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(ROOT / "playbooks" / "start.yml"), "-e", declared]
        env = {**os.environ, **rehearsal.env(), **proxy.env}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert proxy.outcomes("StartInstances") == ["InsufficientInstanceCapacity", "passed"]
    assert "started as a g4dn.2xlarge" in said(proc)
    instance = rehearsal.instance(BOX)
    assert instance["InstanceType"] == "g4dn.2xlarge" and instance["State"]["Name"] == "running"
    limit = podman("exec", rehearsal.container(BOX), "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert int(limit) == type_limits("g4dn.2xlarge")[1] * 2**20  # the box is the bigger type now
    assert ssh(rehearsal, BOX, "true").returncode == 0
    proc = run(rehearsal, "playbooks/configure.yml")
    assert changed_count(proc.stdout) == 0, proc.stdout.split("PLAY RECAP")[-1]


def test_a_changed_autostop_declaration_reaches_the_boxs_agent(rehearsal):
    container = rehearsal.container(BOX)
    declared = {"name": BOX, "instance_type": ["g4dn.xlarge", "g4dn.2xlarge"], "autostop": 45, "max_hours": 999}
    proc = run(rehearsal, "site.yml", "-e", json.dumps({"gpubox_boxes": [declared]}))
    assert "what is declared differs from what the boxes are" in said(proc)
    # the plan's row (one of the lines of a list, as the yaml callback prints it)
    assert re.search(r"- '?d2l +autostop +60 +45 ", said(proc)), proc.stdout[-4000:]
    conf = podman("exec", container, "cat", "/etc/gpubox/autostop.conf").stdout
    assert "idle_minutes=45\n" in conf and "max_hours=999\n" in conf
    assert "45 min, 999 h cap" in run(rehearsal, "playbooks/list.yml").stdout
    # back to the box's own settings: declared again, given again
    run(rehearsal, "site.yml", "-e", json.dumps({"gpubox_boxes": [{**declared, "autostop": 60, "max_hours": 0}]}))
    conf = podman("exec", container, "cat", "/etc/gpubox/autostop.conf").stdout
    assert "idle_minutes=60\n" in conf and "max_hours=0\n" in conf


def test_a_running_box_changes_type_with_a_restart_when_allowed(rehearsal):
    assert rehearsal.instance(BOX)["InstanceType"] == "g4dn.2xlarge"  # as the start above left it
    declared = json.dumps({"gpubox_boxes": [{"name": BOX, "instance_type": "g4dn.xlarge"}]})
    proc = run(rehearsal, "site.yml", "-e", declared)
    assert "no change while it runs" in said(proc) and "gpubox_allow_restart=yes" in said(proc)
    assert rehearsal.instance(BOX)["InstanceType"] == "g4dn.2xlarge"
    proc = run(rehearsal, "site.yml", "-e", declared, "-e", "gpubox_allow_restart=yes")
    assert "stopped, changed from g4dn.2xlarge to g4dn.xlarge, started" in said(proc)
    instance = rehearsal.instance(BOX)
    assert instance["InstanceType"] == "g4dn.xlarge" and host_name(rehearsal) == instance["PublicIpAddress"]
    limit = podman("exec", rehearsal.container(BOX), "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert int(limit) == type_limits("g4dn.xlarge")[1] * 2**20
    recap = proc.stdout.split("PLAY RECAP")[-1]
    assert re.search(rf"^{BOX}\s+: ok=\d+\s+changed=0\b", recap, re.M), recap  # configured as it was


def test_autostop_powers_the_box_off_and_it_shows_as_stopped(rehearsal):
    container = rehearsal.container(BOX)
    run(rehearsal, "playbooks/configure.yml", "--tags", "autostop", *QUICK_AUTOSTOP)
    # the agent: idle, a warning, the grace, then poweroff; the EC2 API follows the box within seconds
    powered_off = wait_for("the box powered off", lambda: container_state(container) == "exited", 150)
    assert powered_off
    off_at = time.monotonic()
    wait_for("the instance stopped", lambda: ec2_state(rehearsal) == ["stopped"], 30, 0.5)
    listed = run(rehearsal, "playbooks/list.yml").stdout
    assert time.monotonic() - off_at < 60
    assert re.search(rf"\b{BOX}\b.*\bstopped\b", listed), listed[-3000:]
    reason = api_client("ec2", rehearsal.state()["endpoint"]).describe_instances(
        InstanceIds=[rehearsal.instance(BOX)["InstanceId"]]
    )["Reservations"][0]["Instances"][0]["StateReason"]["Code"]
    assert reason == "Client.InstanceInitiatedShutdown"

    run(rehearsal, "playbooks/start.yml")
    assert host_name(rehearsal) == rehearsal.instance(BOX)["PublicIpAddress"]
    # a hold keeps the quick autostop from powering it off again while the rest runs
    assert ssh(rehearsal, BOX, "gpubox-hold 1h").returncode == 0
    proc = run(rehearsal, "playbooks/configure.yml", *QUICK_AUTOSTOP)
    assert changed_count(proc.stdout) == 0, proc.stdout.split("PLAY RECAP")[-1]
    run(rehearsal, "playbooks/configure.yml", "--tags", "autostop")  # the box's own autostop again
    ssh(rehearsal, BOX, "gpubox-hold off")


def test_a_box_from_a_baked_image_needs_nothing(rehearsal):
    run(rehearsal, "playbooks/image.yml", "-e", f"gpubox_box={BOX}", "-e", f"gpubox_image_name={IMAGE}")
    ec2 = api_client("ec2", rehearsal.state()["endpoint"])
    (image,) = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [IMAGE]}])["Images"]
    assert (
        podman("image", "exists", f"localhost/{rehearsal.prefix}-ami:{image['ImageId']}", check=False).returncode == 0
    )
    done = ssh(rehearsal, BOX, "true", check=False)
    seen = (rehearsal.instance(BOX)["State"], container_state(rehearsal.container(BOX)), host_name(rehearsal))
    assert done.returncode == 0, f"{done.stderr} {seen}"  # the image's reboot kept the box's address

    boxes = ["-e", json.dumps({"gpubox_boxes": MORE_BOXES})]
    proc = run(rehearsal, "site.yml", *boxes)
    recap = proc.stdout.split("PLAY RECAP")[-1]
    for box in (BOX, "baked"):  # everything was in the image: nothing to install, nothing to change
        assert re.search(rf"^{box}\s+: ok=\d+\s+changed=0\b", recap, re.M), recap
    baked = rehearsal.instance("baked")
    assert baked["ImageId"] == image["ImageId"]
    out = ssh(rehearsal, "baked", "hostname; cat ~/.jupyter/gpubox-token | wc -c").stdout.split()
    assert out[0] == baked["InstanceId"] and int(out[1]) > 20


def test_a_spot_interruption_runs_the_hooks_then_ec2_stops_the_box(rehearsal):
    spot = rehearsal.instance("spot")
    assert spot["InstanceLifecycle"] == "spot"
    hook = "#!/bin/sh\ndate +%%s > /var/tmp/interrupted\n"  # printf's format: %% is %
    ssh(rehearsal, "spot", f"printf '{hook}' | sudo install -m 0755 /dev/stdin /etc/gpubox/on-interrupt.d/50-e2e")
    container = rehearsal.container("spot")
    when = time.time() + 20  # the agent looks every 5 s: its hooks run before the stop
    notice = {"instance": spot["InstanceId"], "action": "stop", "time": utc_stamp(when)}
    request = urllib.request.Request(
        rehearsal.state()["imds_url"] + "/_control/notice", data=json.dumps(notice).encode()
    )
    urllib.request.urlopen(request, timeout=10).close()
    ran = wait_for("the hook", lambda: podman("exec", container, "cat", "/var/tmp/interrupted", check=False).stdout, 25)
    assert int(ran) <= when
    wait_for("the stop", lambda: ec2_state(rehearsal, "spot") == ["stopped"], 30, 0.5)
    assert container_state(container) == "exited" and ec2_state(rehearsal, "baked") == ["running"]

    run(rehearsal, "playbooks/start.yml", "-e", "gpubox_only=spot")
    assert ec2_state(rehearsal, "spot") == ["running"]
    assert ssh(rehearsal, "spot", "cat /var/tmp/interrupted").stdout.strip() == ran.strip()  # the same disk


def test_a_box_whose_zone_is_out_of_capacity_moves_with_the_users_files(rehearsal):
    """start.yml -e gpubox_allow_move=yes through the fault proxy: no capacity for any of the stopped box's types in
    its zone, so it moves: an image of it, a new box from that image in its other declared zone, the old one
    terminated once the new one answers over SSH. The user's file comes along."""
    old = rehearsal.instance("baked")
    ssh(rehearsal, "baked", "mkdir -p ~/work && echo 'epoch 7, loss 0.31' > ~/work/notes.txt")
    ec2 = api_client("ec2", rehearsal.state()["endpoint"])
    here = old["Placement"]["AvailabilityZone"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    there = sorted(s["AvailabilityZone"] for s in subnets if s["AvailabilityZone"] != here)[0]
    boxes = [{**b, "zones": [here, there]} if b["name"] == "baked" else b for b in MORE_BOXES]
    run(rehearsal, "playbooks/stop.yml", "-e", "gpubox_only=baked")
    with FaultProxy(rehearsal.state()["endpoint"]) as proxy:
        proxy.add_rule("StartInstances", "InsufficientInstanceCapacity", zone=here)
        cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(ROOT / "playbooks" / "start.yml")]
        cmd += ["-e", "gpubox_only=baked", "-e", "gpubox_allow_move=yes", "-e", json.dumps({"gpubox_boxes": boxes})]
        env = {**os.environ, **rehearsal.env(), **proxy.env}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert [e["zone"] for e in proxy.requests if e["action"] == "RunInstances"] == [there]
    assert f"Box 'baked' moved from {here} to {there}" in said(proc)
    new = rehearsal.instance("baked")
    assert new["InstanceId"] != old["InstanceId"] and new["Placement"]["AvailabilityZone"] == there
    assert ec2.describe_instances(InstanceIds=[old["InstanceId"]])["Reservations"][0]["Instances"][0]["State"][
        "Name"
    ] in ("shutting-down", "terminated")
    assert container_state(f"{rehearsal.prefix}-{old['InstanceId']}") == "gone"
    assert host_name(rehearsal, "baked") == new["PublicIpAddress"]
    out = ssh(rehearsal, "baked", "hostname; cat ~/work/notes.txt").stdout.splitlines()
    assert out == [new["InstanceId"], "epoch 7, loss 0.31"]  # the new box, with the user's file
    moving = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:SourceBox", "Values": ["baked"]}])["Images"]
    assert moving == []  # the move's image is gone; only the image baked by image.yml (SourceBox d2l) stays


def test_a_data_volume_outlives_its_box_and_comes_back_with_the_next_one(rehearsal):
    """A box that declares data_volume gets it mounted at ~/work; terminate.yml keeps it (and says so), list.yml shows
    it, the next site.yml launches the box again and mounts it with the user's file; the flag deletes it."""
    boxes = json.dumps({"gpubox_boxes": [*MORE_BOXES, {"name": "work", "image": f"my:{IMAGE}", "data_volume": 1}]})
    on_data = ["-e", "gpubox_notebooks_on_data=yes"]
    run(rehearsal, "site.yml", "-e", boxes, *on_data)
    first = rehearsal.instance("work")
    assert ssh(rehearsal, "work", "findmnt -n -o FSTYPE ~/work").stdout.strip() == "xfs"
    ssh(rehearsal, "work", "echo 'epoch 12: 0.27' > ~/work/results.txt")
    # the notebooks are on the volume, and Jupyter opens them there
    ssh(rehearsal, "work", "echo '# my note' >> ~/work/d2l-en/pytorch/chapter_introduction/index.ipynb")
    assert "WorkingDirectory=/home/ubuntu/work/d2l-en" in ssh(rehearsal, "work", "systemctl cat jupyter").stdout
    proc = run(rehearsal, "playbooks/terminate.yml", "-e", "gpubox_only=work", "-e", "gpubox_confirm=yes")
    ec2 = api_client("ec2", rehearsal.state()["endpoint"])
    (volume,) = ec2.describe_volumes(Filters=[{"Name": "tag:DataOf", "Values": ["work"]}])["Volumes"]
    assert f"Kept the data volume of box work: {volume['VolumeId']}" in said(proc)
    assert volume["State"] == "available"
    assert volume["VolumeId"] in run(rehearsal, "playbooks/list.yml").stdout

    run(rehearsal, "site.yml", "-e", boxes, *on_data)
    again = rehearsal.instance("work")
    assert again["InstanceId"] != first["InstanceId"]
    out = ssh(rehearsal, "work", "hostname; cat ~/work/results.txt").stdout.splitlines()
    assert out == [again["InstanceId"], "epoch 12: 0.27"]  # a new box, with the user's file
    edited = ssh(rehearsal, "work", "tail -n 1 ~/work/d2l-en/pytorch/chapter_introduction/index.ipynb").stdout
    assert edited.strip() == "# my note"  # and the notebook the user edited

    run(rehearsal, "playbooks/terminate.yml", "-e", "gpubox_only=work", "-e", "gpubox_confirm=yes", "-e",
        "gpubox_delete_data=yes")  # fmt: skip
    assert ec2.describe_volumes(Filters=[{"Name": "tag:DataOf", "Values": ["work"]}])["Volumes"] == []


# A training script as the D2L snippet in roles/autostop/README.md writes it: an epoch at a time, a checkpoint after
# each, SIGUSR1 (the interruption notice) finishes the epoch and stops; GPUBOX_RESUME=1 continues from the checkpoint.
TRAIN = """\
import os, signal, sys, time
from pathlib import Path

epochs, seconds = int(sys.argv[1]), float(sys.argv[2])
checkpoint = Path(os.environ["GPUBOX_CHECKPOINT_DIR"]) / "next_epoch"
start = int(checkpoint.read_text()) if os.environ["GPUBOX_RESUME"] == "1" and checkpoint.exists() else 0
interrupted = False


def on_interrupt(signum, frame):
    global interrupted
    interrupted = True


signal.signal(signal.SIGUSR1, on_interrupt)
ticket = Path("/run/gpubox/interrupt") / str(os.getpid())
ticket.touch()
print(f"resume={os.environ['GPUBOX_RESUME']} from epoch {start} in {os.environ['CONDA_DEFAULT_ENV']}")
for epoch in range(start, epochs):
    time.sleep(seconds)
    checkpoint.write_text(str(epoch + 1))
    print(f"epoch {epoch} done")
    if interrupted:
        print("interrupted: checkpoint saved")
        break
ticket.unlink()
"""
EPOCHS = 12


def test_a_job_runs_unattended_keeps_the_box_up_and_resumes_after_an_interruption(rehearsal, tmp_path):
    """run.yml syncs a workdir (not .git, not what .gitignore ignores) to the spot box and starts the job; an
    interruption notice: the job saves its checkpoint, EC2 stops the box; start.yml: the job starts again at boot
    and finishes with no epoch lost or repeated, its log followed by logs.yml; autostop (counting only jobs, 30 s
    idle) keeps the box up while the job runs, and powers it off after the job has ended."""
    spot = rehearsal.instance("spot")
    container = rehearsal.container("spot")
    work = tmp_path / "mnist"
    (work / "data").mkdir(parents=True)
    (work / "train.py").write_text(TRAIN)
    (work / ".gitignore").write_text("data/\n*.bin\n")
    (work / "data" / "train.csv").write_text("0,1\n")
    (work / "weights.bin").write_bytes(b"\0" * 1024)
    (work / ".git").mkdir()
    (work / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    jobs_only = json.loads(QUICK_AUTOSTOP[1]) | {"autostop_signals": ["job"]}
    run(rehearsal, "playbooks/configure.yml", "--tags", "autostop", "--limit", "spot", "-e", json.dumps(jobs_only))
    job = ["-e", "gpubox_box=spot", "-e", f"gpubox_workdir={work}", "-e", "gpubox_restart=on-interruption"]
    proc = run(rehearsal, "playbooks/run.yml", *job, "-e", f"gpubox_cmd='python train.py {EPOCHS} 6'")
    assert "Job mnist runs on box spot" in said(proc)
    assert ssh(rehearsal, "spot", "ls -A ~/jobs/mnist/code").stdout.split() == [".gitignore", "train.py"]
    again = rehearsal.playbook("playbooks/run.yml", *job, "-e", "gpubox_cmd=true", check=False, capture_output=True,
                               text=True)  # fmt: skip
    assert again.returncode != 0 and "Job mnist runs on box spot" in said(again)

    log = "cat ~/jobs/mnist/log"
    wait_for("epoch 1", lambda: "epoch 1 done" in ssh(rehearsal, "spot", log).stdout, 40)
    when = time.time() + 15
    notice = {"instance": spot["InstanceId"], "action": "stop", "time": utc_stamp(when)}
    request = urllib.request.Request(
        rehearsal.state()["imds_url"] + "/_control/notice", data=json.dumps(notice).encode()
    )
    urllib.request.urlopen(request, timeout=10).close()
    wait_for("the stop", lambda: ec2_state(rehearsal, "spot") == ["stopped"], 40, 0.5)
    assert container_state(container) == "exited"

    run(rehearsal, "playbooks/start.yml", "-e", "gpubox_only=spot")
    booted = time.monotonic()
    follow = ["-e", "gpubox_box=spot", "-e", "gpubox_job=mnist", "-e", "gpubox_follow=yes"]
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(ROOT / "playbooks" / "logs.yml"), *follow]
    env = {**os.environ, **rehearsal.env()}
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        arrivals = [(time.monotonic(), line) for line in proc.stdout]
    ran = time.monotonic() - booted
    followed = "".join(line for _, line in arrivals)
    assert proc.returncode == 0, followed[-3000:]
    # streamed: the first epoch's line came while the job still had epochs to go, not with the end of the run
    first = next(t for t, line in arrivals if re.match(r"epoch \d+ done", line))
    assert arrivals[-1][0] - first > 12, followed[-3000:]
    assert "started again after an interruption (GPUBOX_RESUME=1)" in followed, followed[-3000:]
    assert re.search(r"gpubox: job mnist ended: exit 0 after", followed), followed[-3000:]
    whole = ssh(rehearsal, "spot", log).stdout
    done = [int(n) for n in re.findall(r"^epoch (\d+) done$", whole, re.M)]
    assert done == list(range(EPOCHS)), whole  # none lost, none done twice
    assert "interrupted: checkpoint saved" in whole and "interrupted by a spot interruption notice" in whole
    assert re.search(r"^resume=1 from epoch [1-9]\d* in d2l$", whole, re.M), whole
    # Up for longer than idle + grace while the job ran, and off soon after it ended.
    assert ran > 36 and container_state(container) == "running"
    wait_for("the box powered off", lambda: container_state(container) == "exited", 90)
    wait_for("the instance stopped", lambda: ec2_state(rehearsal, "spot") == ["stopped"], 30, 0.5)


def test_terminate_removes_the_boxes_and_nothing_else(rehearsal):
    containers = [rehearsal.container(box["name"]) for box in MORE_BOXES]
    run(
        rehearsal, "playbooks/terminate.yml", "-e", "gpubox_confirm=yes", "-e", json.dumps({"gpubox_boxes": MORE_BOXES})
    )
    for box in MORE_BOXES:
        assert ec2_state(rehearsal, box["name"])[-1] in ("shutting-down", "terminated")
        assert box["name"] not in ssh_entries(rehearsal)
    assert [container_state(c) for c in containers] == ["gone"] * len(containers)
    assert container_state(FOREIGN) == "running"  # a container the API does not know


def test_rehearsal_down_leaves_nothing(tmp_path):
    """A rehearsal's teardown removes its containers, network, daemons, key and ssh entries."""
    r = Rehearsal("e2e-down", tmp_path / "state", tmp_path / "home", box_names=[BOX], settings_sources=[TEST_SETTINGS])
    r._start()
    state = r.state()
    ec2 = api_client("ec2", state["endpoint"])
    images = ec2.describe_images(Owners=["099720109477"])["Images"]
    image = next(i for i in images if "noble" in i["Name"] and "amd64" in i["Name"])
    ec2.run_instances(ImageId=image["ImageId"], InstanceType="t3.micro", MinCount=1, MaxCount=1)
    r.down()
    assert not Path(r.state_dir).exists() and not r.key_file.exists()
    mine = podman("ps", "-aq", "--filter", f"label=org.gpubox.twin={r.prefix}").stdout.split()
    assert mine == []
    assert subprocess.run(["podman", "network", "exists", r.network]).returncode != 0
    for pid in (state["ec2api_pid"], state["mirror_pid"]):
        assert not Path(f"/proc/{pid}").exists()
