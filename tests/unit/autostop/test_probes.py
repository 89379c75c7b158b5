"""Each probe against a fake source: a /proc tree, /proc/stat, a stand-in nvidia-smi, a stand-in Jupyter, a jobs
folder; and Probes, which runs the enabled ones with backoff and survives a probe that raises."""

from __future__ import annotations

import http.server
import itertools
import os
import threading
import time
from pathlib import Path

import pytest
from autostop_fakes import NOW, FakeTime, make_proc, make_pts, pts, settings
from gpubox_autostop import probes as probes_module
from gpubox_autostop.decisions import Reading
from gpubox_autostop.probes import CpuProbe, Probes, probe_gpu, probe_job, probe_jupyter
from gpubox_autostop.util import parse_utc

from tests.ground.net import send_json


def test_cpu_share_between_two_polls(tmp_path):
    path = tmp_path / "stat"

    def write(user, system, idle, iowait=0, steal=0):
        path.write_text(
            f"cpu  {user} 0 {system} {idle} {iowait} 0 0 {steal} 0 0\n"
            "cpu0 0 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\nintr 1 2 3\n"
        )

    probe = CpuProbe(10.0, str(path), cgroup_root=str(tmp_path / "no-cgroup"), own_cpu=lambda: 0.0)
    write(100, 100, 1000)
    assert probe() == Reading("cpu", detail=f"cpu: first sample ({path})")
    write(200, 200, 1200)  # 200 busy of 400
    assert probe() == Reading("cpu", True, "cpu 50% of 2 CPUs")
    write(205, 200, 1395)  # 5 busy of 200
    assert probe() == Reading("cpu", False, "cpu 2% of 2 CPUs")
    write(205, 200, 1395, iowait=100)  # a job reading its data: iowait is busy
    assert probe().active
    path.unlink()
    assert probe().error.startswith("cpu: ")


@pytest.mark.parametrize(
    ("file", "scale"),
    [("cpu.stat", "v2"), ("cpuacct/cpuacct.usage", "v1"), ("cpu,cpuacct/cpuacct.usage", "v1")],
)
def test_cpu_is_the_boxs_cgroup_less_the_agent_not_the_hosts(tmp_path, file, scale):
    """In a container /proc/stat is the host's: a host at 100 % must not keep the box up; the cgroup tells."""
    host = tmp_path / "stat"
    host.write_text("cpu  1000000 0 0 0 0 0 0 0 0 0\ncpu0 1 0 0 0\ncpu1 1 0 0 0\n")  # the host: all busy
    cgroup = tmp_path / "cgroup"
    (cgroup / file).parent.mkdir(parents=True, exist_ok=True)
    fake, own = FakeTime(mono=500.0), [3.0]

    def used(seconds: float):
        text = (
            f"usage_usec {int(seconds * 1e6)}\nuser_usec 0\nsystem_usec 0\n"
            if scale == "v2"
            else f"{int(seconds * 1e9)}\n"
        )
        (cgroup / file).write_text(text)

    probe = CpuProbe(10.0, str(host), str(cgroup), fake.clock, own_cpu=lambda: own[0], cpus=lambda: 2)
    used(100.0)
    assert probe() == Reading("cpu", detail=f"cpu: first sample ({cgroup / file})")
    fake.mono += 60  # 120 CPU seconds there were
    used(101.0)  # the box's own processes: 1 s
    assert probe() == Reading("cpu", False, "cpu 1% of 2 CPUs")
    fake.mono += 60
    used(101.0 + 30.0)
    assert probe() == Reading("cpu", True, "cpu 25% of 2 CPUs")
    fake.mono += 60
    used(131.0 + 30.0)
    own[0] += 24.0  # of which the agent's own: 24 s; the rest, 6 s of 120, is below 10 %
    assert probe() == Reading("cpu", False, "cpu 5% of 2 CPUs")


def fake_nvidia_smi(tmp_path: Path, monkeypatch, script: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "nvidia-smi"
    exe.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\n{script}\n')
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "args"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("printf '87\\n0\\n'", Reading("gpu", True, "gpu 87% (busiest of 2 GPUs)")),
        ("echo 3", Reading("gpu", False, "gpu 3%")),
        ("echo '[N/A]'", Reading("gpu", False, "gpu: utilisation not reported ([N/A])")),
        (
            "echo 'NVIDIA-SMI has failed'; exit 9",
            Reading("gpu", error="nvidia-smi failed (exit 9): NVIDIA-SMI has failed"),
        ),
    ],
)
def test_gpu_utilisation_from_nvidia_smi(tmp_path, monkeypatch, script, expected):
    args = fake_nvidia_smi(tmp_path, monkeypatch, script)
    assert probe_gpu(5.0) == expected
    assert args.read_text().split() == ["--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]


def test_no_nvidia_smi_is_no_gpu_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert probe_gpu(5.0) == Reading("gpu", detail="gpu: no nvidia-smi")


class FakeJupyter(http.server.BaseHTTPRequestHandler):
    """Jupyter's REST API as far as the agent reads it; `state` is set per test."""

    state: dict

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):
        self.state["requests"].append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "token s3cret-token":
            return self._send(403, {"message": "Forbidden"})
        path = self.path.split("?")[0]
        if path not in self.state["routes"]:
            return self._send(404, {"message": "Not Found"})
        return self._send(200, self.state["routes"][path])

    def _send(self, status, body):
        send_json(self, status, body)


@pytest.fixture
def jupyter(tmp_path):
    state = {"requests": [], "routes": {}}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (FakeJupyter,), {"state": state}))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    token = tmp_path / "gpubox-token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    yield f"http://127.0.0.1:{server.server_address[1]}", str(token), state
    server.shutdown()
    server.server_close()


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


def test_a_busy_kernel_is_jupyter_activity(jupyter):
    url, token, state = jupyter
    state["routes"] = {
        "/api/status": {"last_activity": stamp(NOW - 3000), "kernels": 2},
        "/api/kernels": [
            {"id": "a", "execution_state": "busy", "last_activity": stamp(NOW - 1)},
            {"id": "b", "execution_state": "idle", "last_activity": stamp(NOW - 4000)},
        ],
    }
    assert probe_jupyter(url, token, NOW) == Reading("jupyter", True, "jupyter kernel busy (1 of 2)")
    # every request carries the token and asks Jupyter not to count it as activity
    assert {p.split("?")[0] for p, _ in state["requests"]} == {"/api/status", "/api/kernels", "/api/terminals"}
    assert all(p.endswith("?no_track_activity=1") and auth == "token s3cret-token" for p, auth in state["requests"])


def test_idle_jupyter_reports_its_newest_activity(jupyter):
    url, token, state = jupyter
    state["routes"] = {
        "/api/status": {"last_activity": stamp(NOW - 120)},
        "/api/kernels": [{"execution_state": "idle", "last_activity": stamp(NOW - 900)}],
        "/api/terminals": [{"name": "1", "last_activity": "2023-11-15T00:08:20+02:00"}],  # NOW - 300
    }
    reading = probe_jupyter(url, token, NOW)
    assert not reading.active and reading.activity_ago == pytest.approx(120, abs=0.01)
    assert reading.detail == "jupyter: last activity 2 min ago"
    kernels_only = probe_jupyter(url, token, NOW, server_activity=False)
    assert kernels_only.activity_ago == pytest.approx(300, abs=0.01)


def test_jupyter_refusing_the_token_or_not_answering_is_an_error(jupyter, tmp_path):
    url, token, _state = jupyter
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    assert probe_jupyter(url, str(wrong), NOW) == Reading("jupyter", error="jupyter token refused (HTTP 403)")
    reading = probe_jupyter("http://127.0.0.1:9", token, NOW)
    assert reading.error.startswith("jupyter not answering: ") and not reading.active


def test_the_token_file_is_not_followed_through_a_link(jupyter, tmp_path):
    url, _token, state = jupyter
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    link = tmp_path / "link-token"
    link.symlink_to(secret)
    reading = probe_jupyter(url, str(link), NOW)
    assert reading.error == f"jupyter token file {link}: is a symbolic link (not followed)"
    two_lines = tmp_path / "two-lines"
    two_lines.write_text("abc\ndef\n")
    assert "does not hold a token" in probe_jupyter(url, str(two_lines), NOW).error
    assert state["requests"] == []  # nothing was sent


def test_probes_read_only_the_enabled_signals(tmp_path, monkeypatch):
    proc = make_proc(tmp_path / "proc", [(1, "systemd", 0, 0), (100, "sshd", 1, 0), (101, "bash", 100, pts(1))])
    (proc / "stat").write_text("cpu  1 0 1 100 0 0 0 0 0 0\ncpu0 1 0 1 100 0 0 0 0 0 0\n")
    monkeypatch.setattr(probes_module, "probe_jupyter", lambda *a: pytest.fail("jupyter is not enabled"))
    monkeypatch.setattr(probes_module, "probe_gpu", lambda *a: pytest.fail("gpu is not enabled"))
    s = settings(signals="ssh,cpu,hold", hold_dir=str(tmp_path / "hold"))
    fake = FakeTime(wall=NOW)
    make_pts(tmp_path / "dev", 1, NOW - 20)  # typed into 20 s ago
    dirs = {"proc_root": str(proc), "dev_root": str(tmp_path / "dev"), "cgroup_root": str(tmp_path)}
    readings = Probes(s, fake.clock, fake.wall, **dirs).collect()
    assert readings == [
        Reading("ssh", True, "ssh terminal pts/1 typed 20 s ago", activity_ago=20.0),
        Reading("cpu", detail=f"cpu: first sample ({proc / 'stat'})"),
        Reading("hold", detail="hold: none"),
    ]


def test_a_running_job_is_a_directory_systemd_keeps_and_removes(tmp_path):
    jobs = tmp_path / "gpubox-jobs"
    assert probe_job(str(jobs)) == Reading("job", detail="job: none running")  # no job ever ran
    jobs.mkdir()
    (jobs / "train").mkdir()
    (jobs / "not a job name").mkdir()  # nothing systemd would make: not counted
    assert probe_job(str(jobs)) == Reading("job", True, "job train running")
    for name in ("eval", "sweep-1", "sweep-2"):
        (jobs / name).mkdir()
    assert probe_job(str(jobs)).detail == "jobs eval, sweep-1, sweep-2 (+1 more) running"
    for name in ("eval", "sweep-1", "sweep-2", "train"):
        (jobs / name).rmdir()  # each job ended: systemd removed its directory
    assert probe_job(str(jobs)) == Reading("job", detail="job: none running")
    s = settings(signals="job", jobs_dir=str(jobs))
    assert Probes(s).collect() == [Reading("job", detail="job: none running")]


def test_a_probe_that_raises_is_a_failed_probe_not_a_crash(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("surprise")

    monkeypatch.setattr(probes_module.sessions.SessionProbe, "__call__", broken)
    readings = Probes(settings(signals="ssh,hold", hold_dir=str(tmp_path))).collect()
    assert readings == [
        Reading("ssh", error="ssh probe failed: RuntimeError: surprise"),
        Reading("hold", detail="hold: none"),
    ]


def test_jupyter_and_gpu_are_asked_again_with_backoff(monkeypatch):
    fake = FakeTime(mono=0.0)
    attempts: list[float] = []

    def failing(*args):
        attempts.append(fake.mono)
        return Reading("jupyter", error="jupyter not answering: Connection refused")

    monkeypatch.setattr(probes_module, "probe_jupyter", failing)
    probes = Probes(settings(signals="jupyter"), clock=fake.clock, wall_clock=fake.wall)
    readings = []
    while fake.mono <= 3 * 3600:
        readings.append(probes.collect()[0])
        fake.mono += 60
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[:5] == [60, 120, 240, 480, 600] and set(gaps[5:]) == {600}
    assert all(r.error for r in readings)
    assert any("next try in" in r.error for r in readings)


def test_times_as_jupyter_and_imds_write_them():
    assert parse_utc("2023-11-14T22:13:20Z") == 1_700_000_000
    assert parse_utc("2023-11-14T22:13:20.250000Z") == pytest.approx(1_700_000_000.25)
    assert parse_utc("2023-11-15T00:13:20+02:00") == 1_700_000_000
    assert parse_utc("2023-11-14T22:13:20.5") == pytest.approx(1_700_000_000.5)
    assert parse_utc("yesterday") is None and parse_utc("2023-13-45T99:00:00Z") is None
