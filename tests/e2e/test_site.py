"""From nothing to a notebook: the rehearsal (unchanged site.yml against the local EC2 API and a container
box), then what a person does next: ssh in, open the tunnel, use JupyterLab in a browser, list, stop, start,
terminate. The tests run in order; each builds on the state the previous one left."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_SETTINGS, changed_count, png_size, run_ansible
from tests.ground.ec2api import EC2Api, api_client
from tests.ground.net import free_port
from tests.ground.rehearsal import Rehearsal

# The box these tests declare for their rehearsal (not the project's: a user may declare other boxes), over the
# tests' own settings (tests/settings/), so your settings never change what the rehearsal does here.
BOX = "d2l"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e-home")
    r = Rehearsal("e2e", tmp_path_factory.mktemp("e2e-state"), home, box_names=[BOX], settings_sources=[TEST_SETTINGS])
    try:
        r.up()
        yield r
    finally:
        # What the playbooks asked of the local EC2 API counts for the IAM policy check.
        EC2Api.stopped_actions |= r.actions()
        r.down()


def ssh(r: Rehearsal, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The user's `ssh`, with the rehearsal's home standing in for ~ (ssh reads ~ from the password file)."""
    cmd = ["ssh", "-F", str(r.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check)


def ssh_entries(r: Rehearsal) -> str:
    return r.ssh_entries.read_text()


def run(r: Rehearsal, playbook: str, *args: str) -> subprocess.CompletedProcess:
    proc = r.playbook(playbook, *args, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc


def ec2_state(r: Rehearsal) -> list[str]:
    ec2 = api_client("ec2", r.state()["endpoint"])
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [BOX]}])
    return [i["State"]["Name"] for res in found["Reservations"] for i in res["Instances"]]


def test_site_rerun_changes_nothing(rehearsal):
    proc = run(rehearsal, "site.yml")
    assert changed_count(proc.stdout) == 0, proc.stdout.split("PLAY RECAP")[-1]
    assert re.search(rf"^{BOX}\s+: ok=\d+", proc.stdout, re.M), "configure.yml did not reach the box"


def test_ssh_box_opens_a_shell_on_it(rehearsal):
    out = ssh(rehearsal, BOX, "hostname; id -un; bash -lc 'command -v nvcc'").stdout.split()
    assert out[:2] == [rehearsal.container(BOX), "ubuntu"]
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
    address = rehearsal.state()["boxes"][BOX]["address"]
    socket.create_connection((address, 22), timeout=5).close()  # the address is right: SSH answers there
    with pytest.raises(OSError):
        socket.create_connection((address, 8888), timeout=5).close()


def test_dynamic_inventory_lists_the_box(rehearsal):
    graph = run_ansible(["ansible-inventory", "--graph", "gpubox"], env=rehearsal.env()).stdout
    assert re.search(rf"^\s*\|--{BOX}$", graph, re.M), graph


def test_stop_start_terminate_and_the_ssh_config_follows(rehearsal):
    run(rehearsal, "playbooks/stop.yml")
    assert ec2_state(rehearsal) == ["stopped"]
    entries = ssh_entries(rehearsal)
    assert f"Host {BOX}\n" not in entries and re.search(rf"# {BOX} \(i-\w+\) is stopped", entries)
    assert ssh(rehearsal, BOX, "true", check=False).returncode != 0

    run(rehearsal, "playbooks/start.yml")
    assert ec2_state(rehearsal) == ["running"]
    assert f"Host {BOX}\n" in ssh_entries(rehearsal)
    assert ssh(rehearsal, BOX, "hostname").stdout.strip() == rehearsal.container(BOX)

    run(rehearsal, "playbooks/terminate.yml", "-e", "gpubox_confirm=yes")
    assert ec2_state(rehearsal) in (["shutting-down"], ["terminated"])
    assert BOX not in ssh_entries(rehearsal)


def test_rehearsal_down_leaves_nothing(tmp_path):
    """A rehearsal's teardown removes its containers, network, daemons, key and ssh entries."""
    r = Rehearsal("e2e-down", tmp_path / "state", tmp_path / "home", box_names=[BOX], settings_sources=[TEST_SETTINGS])
    r._start()
    state = r.state()
    r.down()
    assert not Path(r.state_dir).exists() and not r.key_file.exists()
    names = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    assert r.container(BOX) not in names.split()
    assert subprocess.run(["podman", "network", "exists", r.network]).returncode != 0
    for pid in (state["ec2api_pid"], state["mirror_pid"]):
        assert not Path(f"/proc/{pid}").exists()
