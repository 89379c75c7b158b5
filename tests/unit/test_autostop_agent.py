"""The autostop agent (roles/autostop/files/gpubox_autostop.py): the decision with a fake clock and fake
readings, each probe against a fake source (a /proc tree, /proc/stat, a stand-in nvidia-smi, a stand-in
Jupyter, hold files), the hold command, the settings, the wiring, and the spot watcher against the
stand-in metadata service (tests/ground/imds.py).
"""

from __future__ import annotations

import http.server
import importlib.util
import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.ground.imds import INSTANCE_ACTION, REBALANCE, ImdsStandin
from tests.ground.net import send_json

PROGRAM = ROOT / "roles" / "autostop" / "files" / "gpubox_autostop.py"


def _load_agent():
    """Import the program by path, registered in sys.modules: its dataclasses look their module up there."""
    spec = importlib.util.spec_from_file_location("gpubox_autostop", PROGRAM)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpubox_autostop"] = module
    spec.loader.exec_module(module)
    return module


ag = _load_agent()
SOURCES = ("jupyter", "gpu", "ssh", "cpu", "hold", "job")
MIN = 60.0


def settings(**overrides) -> ag.Settings:
    base = {"idle_minutes": 60.0, "grace_minutes": 5.0, "poll_seconds": 60.0, "log_every_minutes": 10.0}
    return ag.Settings(**{**base, **overrides})


def quiet(**replace: ag.Reading) -> list:
    """One reading per source, none active, with some replaced."""
    return [replace.get(s, ag.Reading(s, detail=f"{s}: quiet")) for s in SOURCES]


def drive(decider, start: float, end: float, readings, step: float = MIN) -> list[tuple[float, object]]:
    """Step the decider every `step` seconds from start to end (inclusive); readings(t) gives each poll's."""
    out, t = [], start
    while t <= end:
        out.append((t, decider.step(t, readings(t))))
        t += step
    return out


def logged(decisions) -> list[tuple[float, str]]:
    return [(t, d.line) for t, d in decisions if d.log]


def first(decisions, predicate) -> tuple[float, object] | None:
    return next(((t, d) for t, d in decisions if predicate(d)), None)


# --- the decision ---------------------------------------------------------------------------------------

ACTIVE = {
    "jupyter": ag.Reading("jupyter", True, "jupyter kernel busy (1 of 2)"),
    "gpu": ag.Reading("gpu", True, "gpu 87%"),
    "ssh": ag.Reading("ssh", True, "ssh terminal pts/0"),
    "cpu": ag.Reading("cpu", True, "cpu 34% of 4 CPUs"),
    "hold": ag.Reading("hold", True, "hold by ubuntu until 16:42 UTC (1 h 58 min left)"),
    "job": ag.Reading("job", True, "job train running"),
}


@pytest.mark.parametrize("source", SOURCES)
def test_each_signal_alone_keeps_the_box_up(source):
    decider = ag.Autostop(settings(), now=0.0)
    decisions = drive(decider, 0, 6 * 3600, lambda t: quiet(**{source: ACTIVE[source]}))
    assert not any(d.wall or d.poweroff for _, d in decisions)
    assert {d.phase for _, d in decisions} == {"active"}
    assert logged(decisions)[0] == (0, f"active: {ACTIVE[source].detail}")


def test_quiet_for_the_window_warns_then_powers_off_after_the_grace():
    decider = ag.Autostop(settings(), now=0.0)
    decisions = drive(decider, 0, 4 * 3600, lambda t: quiet())
    lines = logged(decisions)
    assert lines[:3] == [
        (0, "idle 0/60 min: no signal"),
        (600, "idle 10/60 min: no signal"),
        (1200, "idle 20/60 min: no signal"),
    ]
    warn_t, warn = first(decisions, lambda d: d.wall)
    assert warn_t == 3600
    assert warn.line == "warning: idle 60 min, powering off in 5 min"
    assert "gpubox-hold 2h" in warn.wall and "idle for 60 min" in warn.wall
    off_t, off = first(decisions, lambda d: d.poweroff)
    assert (off_t, off.line) == (3900, "poweroff: idle 65 min")
    # one power-off, then again only if the box is still up 5 minutes later (the command failed)
    again = [t for t, d in decisions if d.poweroff]
    assert again[:3] == [3900, 4200, 4500]
    assert next(d.line for t, d in decisions if t == 4200).startswith("poweroff: still running 5 min")


def test_activity_during_the_grace_cancels_and_the_idle_clock_restarts():
    decider = ag.Autostop(settings(), now=0.0)
    ssh_at = 3720.0

    def readings(t):
        return quiet(ssh=ACTIVE["ssh"]) if t == ssh_at else quiet()

    decisions = drive(decider, 0, 4 * 3600, readings)
    walls = [(t, d.wall) for t, d in decisions if d.wall]
    assert walls[0][0] == 3600
    assert walls[1] == (ssh_at, "gpubox autostop: power-off cancelled, the box is in use again.")
    cancel = dict(decisions)[ssh_at]
    assert cancel.line == "cancelled: active: ssh terminal pts/0; the idle clock restarts"
    assert cancel.log and not cancel.poweroff
    # the next warning comes a whole window after that activity, and nothing powered off in between
    assert walls[2][0] == ssh_at + 3600
    assert first(decisions, lambda d: d.poweroff)[0] == ssh_at + 3600 + 300


def test_jupyter_activity_seen_during_the_grace_cancels():
    decider = ag.Autostop(settings(), now=0.0)

    def readings(t):
        ago = 5.0 if t == 3720 else t  # Jupyter last active at its start, then someone runs a cell
        return quiet(jupyter=ag.Reading("jupyter", detail=f"jupyter: last activity {ago} s ago", activity_ago=ago))

    decisions = drive(decider, 0, 3900, readings)
    t, cancel = first(decisions, lambda d: d.line.startswith("cancelled"))
    assert t == 3720 and "jupyter: last activity 5.0 s ago" in cancel.line
    assert not any(d.poweroff for _, d in decisions)


def test_jupyter_last_activity_counts_from_when_it_happened():
    decider = ag.Autostop(settings(), now=0.0)
    # at t=1800 Jupyter reports activity 10 min ago: the idle clock restarts at t=1200
    reading = {1800: 600.0}
    decisions = drive(
        decider,
        0,
        6000,
        lambda t: quiet(jupyter=ag.Reading("jupyter", activity_ago=reading.get(t, t - 1200 if t > 1800 else t))),
    )
    assert first(decisions, lambda d: d.wall)[0] == 1200 + 3600


def test_a_hold_keeps_the_box_up_and_expires(tmp_path):
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir(mode=0o1777)
    wall0 = 1_700_000_000.0
    ag.write_hold(str(hold_dir), os.getuid(), int(wall0 + 7200))
    decider = ag.Autostop(settings(), now=0.0)
    decisions = drive(decider, 0, 5 * 3600, lambda t: quiet(hold=ag.probe_hold(str(hold_dir), wall0 + t, 24 * 3600)))
    assert logged(decisions)[0][1].startswith("active: hold by ")
    assert "(2 h left)" in logged(decisions)[0][1]
    # active until 7140 (the last poll before the expiry), then a whole idle window
    assert first(decisions, lambda d: d.wall)[0] == 7140 + 3600
    assert (hold_dir / str(os.getuid())).read_text() == f"{int(wall0 + 7200)}\n"


def test_the_hard_cap_stops_the_box_even_while_busy_and_held():
    # started 10 min after boot; max_hours 2 -> the warning 2 h after boot, power-off 5 min later
    decider = ag.Autostop(settings(max_hours=2.0), now=0.0, since_boot=600.0)
    decisions = drive(decider, 0, 3 * 3600, lambda t: quiet(jupyter=ACTIVE["jupyter"], hold=ACTIVE["hold"]))
    warn_t, warn = first(decisions, lambda d: d.wall)
    assert warn_t == 7200 - 600
    assert warn.line == "warning: up 2 h (max_hours 2), powering off in 5 min even if busy"
    assert "a hold does not prevent this" in warn.wall
    off_t, off = first(decisions, lambda d: d.poweroff)
    assert (off_t, off.line) == (warn_t + 300, "poweroff: up 2 h 5 min (max_hours 2)")
    assert not any(d.line.startswith("cancelled") for _, d in decisions)


def test_the_cap_takes_over_an_idle_warning_that_activity_would_cancel():
    # the cap falls due (t=3780) during the idle grace (3600..3900); someone comes back at 3840
    decider = ag.Autostop(settings(max_hours=1.05), now=0.0)
    decisions = drive(decider, 0, 4500, lambda t: quiet(ssh=ACTIVE["ssh"]) if t >= 3840 else quiet())
    walls = [(t, d.line) for t, d in decisions if d.wall]
    assert walls == [
        (3600, "warning: idle 60 min, powering off in 5 min"),
        (3840, "warning: up 1 h 4 min (max_hours 1.05), powering off in 5 min even if busy"),
    ]
    assert first(decisions, lambda d: d.poweroff) == (
        4140,
        ag.Decision("poweroff", "poweroff: up 1 h 9 min (max_hours 1.05)", True, poweroff=True),
    )


def test_a_new_start_measures_idle_from_itself():
    # what an agent before a reboot saw does not exist for the new one: idle starts at its own start
    decider = ag.Autostop(settings(), now=50_000.0, since_boot=30.0)
    stale_jupyter = ag.Reading("jupyter", activity_ago=86_400.0)  # Jupyter's last activity: yesterday
    decisions = drive(decider, 50_000, 50_000 + 3600, lambda t: quiet(jupyter=stale_jupyter))
    assert [t for t, d in decisions if d.wall] == [50_000 + 3600]


def test_idle_minutes_zero_never_stops_but_the_cap_still_does():
    decider = ag.Autostop(settings(idle_minutes=0.0), now=0.0)
    decisions = drive(decider, 0, 7 * 86400, lambda t: quiet(), step=600)
    assert not any(d.wall or d.poweroff for _, d in decisions)
    assert logged(decisions) == [(0, "autostop off: idle_minutes is 0")]  # once
    assert not decider.wants_readings
    capped = ag.Autostop(settings(idle_minutes=0.0, max_hours=1.0), now=0.0)
    assert first(drive(capped, 0, 7200, lambda t: []), lambda d: d.poweroff)[0] == 3900


def test_a_failing_probe_is_no_signal_and_is_named_on_the_line():
    decider = ag.Autostop(settings(), now=0.0)
    down = ag.Reading("jupyter", error="jupyter not answering: Connection refused")
    decisions = drive(decider, 0, 3900, lambda t: quiet(jupyter=down))
    assert logged(decisions)[0] == (0, "idle 0/60 min: no signal (jupyter not answering: Connection refused)")
    assert first(decisions, lambda d: d.poweroff)[0] == 3900
    # the same box with Jupyter busy behind the failure of another probe stays up, and says both
    busy = drive(ag.Autostop(settings(), now=0.0), 0, 600, lambda t: quiet(jupyter=ACTIVE["jupyter"], gpu=down_gpu()))
    assert logged(busy)[0][1] == "active: jupyter kernel busy (1 of 2) (nvidia-smi failed (exit 9): no driver)"


def down_gpu() -> ag.Reading:
    return ag.Reading("gpu", error="nvidia-smi failed (exit 9): no driver")


def test_lines_are_written_on_change_and_at_most_every_log_every_minutes():
    decider = ag.Autostop(settings(log_every_minutes=10.0), now=0.0)

    def readings(t):
        if t < 1800:
            detail = f"jupyter kernel busy ({int(t // 60) % 3 + 1} of 3)"  # the detail changes each poll
            return quiet(jupyter=ag.Reading("jupyter", True, detail))
        if t < 2400:
            return quiet(jupyter=ACTIVE["jupyter"], gpu=ACTIVE["gpu"])  # a second source: a change
        return quiet()

    lines = logged(drive(decider, 0, 3000, readings))
    assert [t for t, _ in lines] == [0, 600, 1200, 1800, 2400, 3000]
    assert lines[3][1] == "active: jupyter kernel busy (1 of 2); gpu 87%"
    assert lines[4][1] == "idle 1/60 min: no signal"  # since the last active poll, at 2340
    assert lines[5][1] == "idle 11/60 min: no signal"


# --- the wiring: run_agent with a fake clock ------------------------------------------------------------


class FakeTime:
    def __init__(self, mono: float = 100.0, wall: float = 1_700_000_000.0):
        self.mono, self.wall0, self.mono0 = mono, wall, mono

    def clock(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall0 + (self.mono - self.mono0)


class FakeProbes:
    def __init__(self, readings):
        self.readings, self.calls = readings, 0

    def collect(self):
        self.calls += 1
        return self.readings()


def run_fake_agent(tmp_path, seconds: float, readings, **overrides):
    fake, stop, lines, commands = FakeTime(), threading.Event(), [], []
    s = settings(status_file=str(tmp_path / "run" / "autostop.json"), hold_dir=str(tmp_path / "hold"), **overrides)

    def wait(delay):
        assert 0 < delay <= s.poll_seconds  # never a busy loop
        fake.mono += delay
        if fake.mono - fake.mono0 > seconds:
            stop.set()

    def runner(argv, stdin_text=None, timeout=30.0):
        commands.append((fake.mono - fake.mono0, argv, stdin_text))
        return 0, ""

    ag.run_agent(
        s,
        stop=stop,
        clock=fake.clock,
        wall_clock=fake.wall,
        wait=wait,
        log=lines.append,
        probes=FakeProbes(readings),
        runner=runner,
        since_boot=5.0,
    )
    return lines, commands, s


def test_the_loop_warns_with_wall_then_runs_the_poweroff_command(tmp_path):
    lines, commands, s = run_fake_agent(tmp_path, 4000, quiet)
    assert lines[0].startswith("start: idle_minutes 60, grace 5 min, max_hours off, poll 1 min")
    assert "warning: idle 60 min, powering off in 5 min" in lines
    assert "poweroff: idle 65 min" in lines and lines[-1] == "stop: agent exits"
    wall_at, argv, message = commands[0]
    assert (wall_at, argv) == (3600, ["wall"]) and "gpubox-hold 2h" in message
    assert commands[1][:2] == (3900, ["systemctl", "poweroff"])
    assert len(commands) == 2
    status = json.loads(Path(s.status_file).read_text())
    assert status["phase"] == "poweroff" and status["line"] == "poweroff: idle 65 min"
    assert status["vmrss_kib"] > 0 and status["cpu_s"] >= 0
    assert stat.S_IMODE(os.stat(s.hold_dir).st_mode) == 0o1777  # made for users to write holds in


def test_the_grace_is_polled_more_often_so_a_hold_cancels_soon(tmp_path):
    polls: list[float] = []
    lines, commands, _ = run_fake_agent(tmp_path, 3900, lambda: polls.append(1) or quiet())
    # one poll a minute for the idle hour (61), then one every 15 s during the 5 min grace (20)
    assert len(polls) == 61 + 20
    assert [c[1] for c in commands] == [["wall"], ["systemctl", "poweroff"]]
    assert lines.count("warning: idle 60 min, powering off in 5 min") == 1


def test_a_reboot_rearms_a_stale_status_file_is_not_read(tmp_path):
    status = tmp_path / "run" / "autostop.json"
    status.parent.mkdir()
    status.write_text(json.dumps({"phase": "warning", "line": "warning: idle 60 min", "time": 1.0}))
    lines, commands, _ = run_fake_agent(tmp_path, 3590, quiet)
    assert commands == []
    assert not any(line.startswith("warning") for line in lines)
    assert json.loads(status.read_text())["line"] == "idle 59/60 min: no signal"


def test_the_cap_alone_needs_no_probes(tmp_path):
    probes_called = []
    lines, commands, _ = run_fake_agent(
        tmp_path, 4000, lambda: probes_called.append(1) or [], idle_minutes=0.0, max_hours=1.0
    )
    assert probes_called == []
    assert [c[1] for c in commands] == [["wall"], ["systemctl", "poweroff"]]
    assert "poweroff: up 1 h 5 min (max_hours 1)" in lines


def test_the_program_runs_from_the_shell(tmp_path):
    """The real loop in a process of its own: idle 0.6 s, grace 0.6 s, then the power-off command."""
    hold = tmp_path / "hold"
    conf = tmp_path / "autostop.conf"
    conf.write_text(
        "# short limits for a test\n"
        "idle_minutes = 0.01\ngrace_minutes = 0.01\npoll_seconds = 1\n"
        f"hold_dir = {hold}\nstatus_file = {tmp_path / 'status.json'}\n"
        f"poweroff_command = touch {tmp_path / 'POWEROFF'}\n"
        f"wall_command = \"sh -c 'cat >> {tmp_path / 'wall'}'\"\n"
        "signals = jupyter,hold\njupyter_url = http://127.0.0.1:9\njupyter_token_file =\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(PROGRAM), "run", "--config", str(conf)], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "POWEROFF").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "POWEROFF").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert lines[0].startswith("start: idle_minutes 0.01, grace 0.6 s")
    assert lines[1].startswith("idle 0/0.01 min: no signal (jupyter not answering: ")
    assert any(line.startswith("warning: idle 0 min, powering off in 0.6 s") for line in lines)
    assert "poweroff: idle 0 min" in lines and lines[-1] == "stop: agent exits"
    assert "gpubox-hold 2h" in (tmp_path / "wall").read_text()
    assert stat.S_IMODE(hold.stat().st_mode) == 0o1777


# --- probes -----------------------------------------------------------------------------------------------


def make_proc(root: Path, processes: list[tuple[int, str, int, int]]) -> Path:
    """A fake /proc: one stat file per (pid, comm, ppid, tty_nr), as the kernel writes it."""
    for pid, comm, ppid, tty in processes:
        (root / str(pid)).mkdir(parents=True)
        fields = ["S", str(ppid), str(pid), str(pid), str(tty), "-1", "4194560"] + ["0"] * 40
        (root / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
    return root


def pts(n: int) -> int:
    major, minor = 136 + n // 256, n % 256
    return (major << 8) | (minor & 0xFF) | ((minor & ~0xFF) << 12)


def test_ssh_terminal_under_sshd_counts_and_a_tunnel_does_not(tmp_path):
    proc = make_proc(
        tmp_path / "proc",
        [
            (1, "systemd", 0, 0),
            (100, "sshd", 1, 0),  # the listener
            (200, "sshd", 100, 0),  # a session: privileged monitor
            (201, "sshd", 200, 0),  # its user process
            (202, "bash", 201, pts(0)),  # the login shell on pts/0
            (203, "python", 202, pts(0)),
            (300, "sshd", 100, 0),  # ssh -N: a session with no terminal and no children
            (301, "sshd", 300, 0),
        ],
    )
    assert ag.ssh_terminals(str(proc)) == ["pts/0"]
    assert ag.probe_ssh(str(proc)) == ag.Reading("ssh", True, "ssh terminal pts/0")


def test_a_tunnel_alone_is_not_an_ssh_session(tmp_path):
    proc = make_proc(tmp_path / "proc", [(1, "systemd", 0, 0), (100, "sshd", 1, 0), (300, "sshd", 100, 0)])
    assert ag.probe_ssh(str(proc)) == ag.Reading("ssh", False, "ssh: no terminal")


def test_openssh_98_sessions_and_other_terminals(tmp_path):
    proc = make_proc(
        tmp_path / "proc",
        [
            (1, "systemd", 0, 0),
            (100, "sshd", 1, 0),
            (400, "sshd-session", 100, 0),  # OpenSSH 9.8+ (Debian 13)
            (401, "sshd-session", 400, 0),
            (402, "tmux: client", 401, pts(300)),  # pts/300: the second pts major
            (500, "conmon", 1, 0),
            (501, "bash", 500, pts(5)),  # podman exec -t: a terminal, not SSH
            (600, "tmux: server", 1, pts(7)),  # a detached tmux: not under sshd
            (601, "bash", 600, pts(8)),
            (700, "getty", 1, (4 << 8) | 1),  # tty1: not a pts
            (800, "weird) (name", 401, pts(9)),  # a comm with parentheses and spaces
        ],
    )
    assert ag.ssh_terminals(str(proc)) == ["pts/9", "pts/300"]
    assert ag.probe_ssh(str(proc)).detail == "ssh terminals pts/9, pts/300"


def test_ssh_scan_survives_garbage_and_vanished_processes(tmp_path):
    proc = make_proc(tmp_path / "proc", [(1, "systemd", 0, 0), (100, "sshd", 1, 0), (101, "bash", 100, pts(2))])
    (proc / "102").mkdir()  # vanished: no stat
    (proc / "103").mkdir()
    (proc / "103" / "stat").write_text("garbage")
    (proc / "self").mkdir()
    (proc / "104").mkdir()
    (proc / "104" / "stat").write_text("104 (loop) S 105 0 0 34816\n")  # a parent loop: 104 <-> 105
    (proc / "105").mkdir()
    (proc / "105" / "stat").write_text("105 (loop) S 104 0 0 0\n")
    assert ag.ssh_terminals(str(proc)) == ["pts/2"]
    assert ag.ssh_terminals(str(tmp_path / "missing")) == []
    assert isinstance(ag.ssh_terminals("/proc"), list)  # the real one reads


def test_cpu_share_between_two_polls(tmp_path):
    path = tmp_path / "stat"

    def write(user, system, idle, iowait=0, steal=0):
        path.write_text(
            f"cpu  {user} 0 {system} {idle} {iowait} 0 0 {steal} 0 0\n"
            "cpu0 0 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\nintr 1 2 3\n"
        )

    probe = ag.CpuProbe(10.0, str(path))
    write(100, 100, 1000)
    assert probe() == ag.Reading("cpu", detail="cpu: first sample")
    write(200, 200, 1200)  # 200 busy of 400
    assert probe() == ag.Reading("cpu", True, "cpu 50% of 2 CPUs")
    write(205, 200, 1395)  # 5 busy of 200
    assert probe() == ag.Reading("cpu", False, "cpu 2% of 2 CPUs")
    write(205, 200, 1395, iowait=100)  # a job reading its data: iowait is busy
    assert probe().active
    path.unlink()
    assert probe().error.startswith("cpu: ")


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
        ("printf '87\\n0\\n'", ag.Reading("gpu", True, "gpu 87% (busiest of 2 GPUs)")),
        ("echo 3", ag.Reading("gpu", False, "gpu 3%")),
        ("echo '[N/A]'", ag.Reading("gpu", False, "gpu: utilisation not reported ([N/A])")),
        (
            "echo 'NVIDIA-SMI has failed'; exit 9",
            ag.Reading("gpu", error="nvidia-smi failed (exit 9): NVIDIA-SMI has failed"),
        ),
    ],
)
def test_gpu_utilisation_from_nvidia_smi(tmp_path, monkeypatch, script, expected):
    args = fake_nvidia_smi(tmp_path, monkeypatch, script)
    assert ag.probe_gpu(5.0) == expected
    assert args.read_text().split() == ["--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]


def test_no_nvidia_smi_is_no_gpu_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ag.probe_gpu(5.0) == ag.Reading("gpu", detail="gpu: no nvidia-smi")


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


NOW = 1_700_000_000.0


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
    assert ag.probe_jupyter(url, token, NOW) == ag.Reading("jupyter", True, "jupyter kernel busy (1 of 2)")
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
    reading = ag.probe_jupyter(url, token, NOW)
    assert not reading.active and reading.activity_ago == pytest.approx(120, abs=0.01)
    assert reading.detail == "jupyter: last activity 2 min ago"
    kernels_only = ag.probe_jupyter(url, token, NOW, server_activity=False)
    assert kernels_only.activity_ago == pytest.approx(300, abs=0.01)


def test_jupyter_refusing_the_token_or_not_answering_is_an_error(jupyter, tmp_path):
    url, token, _state = jupyter
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    assert ag.probe_jupyter(url, str(wrong), NOW) == ag.Reading("jupyter", error="jupyter token refused (HTTP 403)")
    reading = ag.probe_jupyter("http://127.0.0.1:9", token, NOW)
    assert reading.error.startswith("jupyter not answering: ") and not reading.active


def test_the_token_file_is_not_followed_through_a_link(jupyter, tmp_path):
    url, _token, state = jupyter
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    link = tmp_path / "link-token"
    link.symlink_to(secret)
    reading = ag.probe_jupyter(url, str(link), NOW)
    assert reading.error == f"jupyter token file {link}: is a symbolic link (not followed)"
    two_lines = tmp_path / "two-lines"
    two_lines.write_text("abc\ndef\n")
    assert "does not hold a token" in ag.probe_jupyter(url, str(two_lines), NOW).error
    assert state["requests"] == []  # nothing was sent


def test_probes_read_only_the_enabled_signals(tmp_path, monkeypatch):
    proc = make_proc(tmp_path / "proc", [(1, "systemd", 0, 0), (100, "sshd", 1, 0), (101, "bash", 100, pts(1))])
    (proc / "stat").write_text("cpu  1 0 1 100 0 0 0 0 0 0\ncpu0 1 0 1 100 0 0 0 0 0 0\n")
    monkeypatch.setattr(ag, "probe_jupyter", lambda *a: pytest.fail("jupyter is not enabled"))
    monkeypatch.setattr(ag, "probe_gpu", lambda *a: pytest.fail("gpu is not enabled"))
    s = settings(signals="ssh,cpu,hold", hold_dir=str(tmp_path / "hold"))
    readings = ag.Probes(s, proc_root=str(proc)).collect()
    assert readings == [
        ag.Reading("ssh", True, "ssh terminal pts/1"),
        ag.Reading("cpu", detail="cpu: first sample"),
        ag.Reading("hold", detail="hold: none"),
    ]


def test_a_running_job_is_a_directory_systemd_keeps_and_removes(tmp_path):
    jobs = tmp_path / "gpubox-jobs"
    assert ag.probe_job(str(jobs)) == ag.Reading("job", detail="job: none running")  # no job ever ran
    jobs.mkdir()
    (jobs / "train").mkdir()
    (jobs / "not a job name").mkdir()  # nothing systemd would make: not counted
    assert ag.probe_job(str(jobs)) == ag.Reading("job", True, "job train running")
    for name in ("eval", "sweep-1", "sweep-2"):
        (jobs / name).mkdir()
    assert ag.probe_job(str(jobs)).detail == "jobs eval, sweep-1, sweep-2 (+1 more) running"
    for name in ("eval", "sweep-1", "sweep-2", "train"):
        (jobs / name).rmdir()  # each job ended: systemd removed its directory
    assert ag.probe_job(str(jobs)) == ag.Reading("job", detail="job: none running")
    s = settings(signals="job", jobs_dir=str(jobs))
    assert ag.Probes(s).collect() == [ag.Reading("job", detail="job: none running")]


def test_a_probe_that_raises_is_a_failed_probe_not_a_crash(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("surprise")

    monkeypatch.setattr(ag, "probe_ssh", broken)
    readings = ag.Probes(settings(signals="ssh,hold", hold_dir=str(tmp_path))).collect()
    assert readings == [
        ag.Reading("ssh", error="ssh probe failed: RuntimeError: surprise"),
        ag.Reading("hold", detail="hold: none"),
    ]


def test_jupyter_and_gpu_are_asked_again_with_backoff(monkeypatch):
    fake = FakeTime(mono=0.0)
    attempts: list[float] = []

    def failing(*args):
        attempts.append(fake.mono)
        return ag.Reading("jupyter", error="jupyter not answering: Connection refused")

    monkeypatch.setattr(ag, "probe_jupyter", failing)
    probes = ag.Probes(settings(signals="jupyter"), clock=fake.clock, wall_clock=fake.wall)
    readings = []
    while fake.mono <= 3 * 3600:
        readings.append(probes.collect()[0])
        fake.mono += 60
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[:5] == [60, 120, 240, 480, 600] and set(gaps[5:]) == {600}
    assert all(r.error for r in readings)
    assert any("next try in" in r.error for r in readings)


def test_the_hold_files_are_validated(tmp_path):
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    uid = os.getuid()
    (hold_dir / ".1000.tmp").write_text("garbage")  # a hold being written: skipped silently
    (hold_dir / "notauid").write_text(str(int(NOW + 60)))
    (hold_dir / "4242").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text(str(int(NOW + 60)))
    (hold_dir / str(uid)).write_text("in two hours please")
    holds, problems = ag.read_holds(str(hold_dir), NOW, 24 * 3600)
    assert holds == []
    assert problems == [
        f"hold file '{uid}' ignored: not an expiry time",
        "hold file '4242' ignored: is a symbolic link (not followed)",
        "hold file 'notauid' ignored: not named by a uid",
    ]
    (hold_dir / str(uid)).write_text(str(int(NOW + 30 * 86400)))
    assert ag.read_holds(str(hold_dir), NOW, 24 * 3600)[1][0].endswith("expiry beyond max_hold_hours")
    (hold_dir / str(uid)).write_text(str(int(NOW - 1)))  # expired: no hold, no complaint
    assert ag.read_holds(str(hold_dir), NOW, 24 * 3600)[0] == []
    reading = ag.probe_hold(str(hold_dir), NOW, 24 * 3600)
    assert not reading.active and reading.error.startswith("hold file '4242' ignored")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_hold_file_must_belong_to_the_uid_it_names(tmp_path):
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    (hold_dir / "1000").write_text(str(int(NOW + 600)))
    os.chown(hold_dir / "1000", 1001, 1001)
    assert ag.read_holds(str(hold_dir), NOW, 3600)[1] == ["hold file '1000' ignored: owned by uid 1001"]
    os.chown(hold_dir / "1000", 1000, 1000)
    assert ag.read_holds(str(hold_dir), NOW, 3600)[0] == [ag.Hold(1000, int(NOW + 600))]


# --- gpubox-hold ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("30m", 1800), ("90m", 5400), ("1h30m", 5400), ("1h 30m", 5400), ("2H", 7200), ("45min", 2700)],
)
def test_hold_durations(text, seconds):
    assert ag.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2", "soon", "1.5h", "-1h", "h", "30s", "0m", "2h2h", ""])
def test_garbage_durations_are_refused_with_a_message(text):
    with pytest.raises(ValueError, match=r"is not a duration|at least 1 minute"):
        ag.parse_duration(text)


def hold_env(tmp_path: Path, **overrides):
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir(mode=0o1777, exist_ok=True)
    return settings(hold_dir=str(hold_dir), status_file=str(tmp_path / "status.json"), **overrides)


def run_hold(s, *args, uid=1000):
    out, err = _Buffer(), _Buffer()
    rc = ag.hold_command(list(args), s, now=NOW, uid=uid, out=out, err=err)
    return rc, out.text, err.text


class _Buffer:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text


def test_hold_sets_replaces_shows_and_removes_the_users_file(tmp_path):
    s = hold_env(tmp_path, max_hours=8.0)
    rc, out, err = run_hold(s, "2h", uid=os.getuid())
    assert (rc, err) == (0, "")
    assert out.startswith("hold set: the box stays up until ") and "(2 h), even when idle" in out
    assert "max_hours 8 still applies" in out
    mine = Path(s.hold_dir) / str(os.getuid())
    assert mine.read_text() == f"{int(NOW + 7200)}\n"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o644
    assert run_hold(s, "30m", uid=os.getuid())[0] == 0  # the last word wins, even if shorter
    assert mine.read_text() == f"{int(NOW + 1800)}\n"
    assert not [p for p in Path(s.hold_dir).iterdir() if p.name.startswith(".")]  # no temporary left
    Path(s.status_file).write_text(json.dumps({"time": NOW, "line": "active: hold by x", "poweroff_at": None}))
    rc, out, _ = run_hold(s, uid=os.getuid())
    assert rc == 0 and "(30 min left)" in out and "autostop at " in out and ": active: hold by x" in out
    assert run_hold(s, "off", uid=os.getuid())[:2] == (0, "hold removed: the box powers off when idle\n")
    assert not mine.exists()
    assert run_hold(s, "off", uid=os.getuid())[1] == "you had no hold\n"
    assert run_hold(s, "status")[1].startswith("no hold: the box powers off when idle")


def test_hold_refuses_garbage_and_too_long(tmp_path):
    s = hold_env(tmp_path)
    rc, out, err = run_hold(s, "tomorrow")
    assert (rc, out) == (2, "")
    assert (
        err == "gpubox-hold: 'tomorrow' is not a duration: give hours and/or minutes, e.g. 2h, 30m, 1h30m (or 'off')\n"
    )
    assert run_hold(s, "25h")[2] == "gpubox-hold: at most 24 h (max_hold_hours)\n"
    assert list(Path(s.hold_dir).iterdir()) == []


def test_hold_without_the_agent_installed_says_so(tmp_path):
    s = settings(hold_dir=str(tmp_path / "missing"), status_file=str(tmp_path / "none.json"))
    rc, _, err = run_hold(s, "2h")
    assert rc == 1 and "is gpubox autostop installed?" in err
    rc, out, _ = run_hold(s)
    assert rc == 0 and "no status (is the gpubox-autostop service running?)" in out


def test_gpubox_hold_is_the_program_under_another_name(tmp_path, capsys):
    s = hold_env(tmp_path)
    conf = tmp_path / "autostop.conf"
    conf.write_text(f"hold_dir = {s.hold_dir}\nstatus_file = {s.status_file}\n")
    assert ag.main(["--config", str(conf), "1h30m"], prog="/usr/local/bin/gpubox-hold") == 0
    assert "(1 h 30 min)" in capsys.readouterr().out
    assert (Path(s.hold_dir) / str(os.getuid())).exists()
    assert ag.main(["hold", "--config", str(conf), "off"]) == 0
    assert ag.main(["--config", str(conf), "forever"], prog="gpubox-hold") == 2
    assert "is not a duration" in capsys.readouterr().err


# --- settings -----------------------------------------------------------------------------------------------


def test_settings_from_key_value_lines_then_flags(tmp_path):
    conf = tmp_path / "autostop.conf"
    conf.write_text(
        "# gpubox autostop\nidle_minutes = 30\nmax_hours = none\n"
        'poweroff_command = "/sbin/shutdown -h now"\nspot = yes\njupyter_server_activity = off\n\n'
    )
    s = ag.load_settings(str(conf), {"grace_minutes": "2"})
    assert (s.idle_minutes, s.max_hours, s.grace_minutes, s.spot) == (30.0, 0.0, 2.0, True)
    assert s.poweroff_command == "/sbin/shutdown -h now" and s.jupyter_server_activity is False
    conf.write_text(json.dumps({"idle_minutes": 45, "spot": True, "max_hours": None, "signals": "gpu,ssh"}))
    s = ag.load_settings(str(conf))
    assert (s.idle_minutes, s.spot, s.max_hours, s.enabled) == (45.0, True, 0.0, frozenset({"gpu", "ssh"}))


def test_without_a_config_file_the_defaults_apply(tmp_path, monkeypatch):
    monkeypatch.setattr(ag, "CONFIG_FILE", str(tmp_path / "missing.conf"))
    assert ag.load_settings(None) == ag.Settings()
    assert ag.load_settings(None, {"idle_minutes": "15"}) == ag.Settings(idle_minutes=15.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("idle_minutes = 60\nidle_minuts = 30\n", "autostop.conf:2: unknown setting 'idle_minuts'"),
        ("idle_minutes\n", "autostop.conf:1: not KEY=VALUE"),
        ("idle_minutes = sixty\n", "idle_minutes: 'sixty' is not a number"),
        ("poll_seconds = 0\n", "poll_seconds: '0' is outside 1..3600"),
        ("cpu_threshold = 150\n", "cpu_threshold: '150' is outside 0..100"),
        ("spot = maybe\n", "spot: 'maybe' is not true or false"),
        ("signals = gpu,mouse\n", "signals: unknown mouse"),
        ("jupyter_url = localhost:8888\n", "jupyter_url: 'localhost:8888' is not an http:// or https:// URL"),
        ("hold_dir = var/lib/x\n", "hold_dir: 'var/lib/x' is not an absolute path"),
        ("poweroff_command = \n", "poweroff_command: empty"),
        ('{"idle_minutes": 60, "nope": 1}', "unknown setting 'nope'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_settings_are_refused_by_name(tmp_path, text, message):
    conf = tmp_path / "autostop.conf"
    conf.write_text(text)
    with pytest.raises(ag.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ag.load_settings(str(conf))


def test_check_config_prints_settings_that_read_back(tmp_path, capsys):
    conf = tmp_path / "autostop.conf"
    conf.write_text("idle_minutes = 45\n")
    assert ag.main(["check-config", "--config", str(conf), "--max-hours", "8"]) == 0
    printed = capsys.readouterr().out
    assert "idle_minutes = 45\n" in printed and "max_hours = 8\n" in printed and "spot = false\n" in printed
    conf.write_text(printed)
    assert ag.load_settings(str(conf)) == ag.Settings(idle_minutes=45.0, max_hours=8.0)
    assert ag.main(["check-config", "--config", str(tmp_path / "missing")]) == 2
    assert ag.main(["check-config", "--config", str(conf), "--poll-seconds", "0"]) == 2
    assert "flag: poll_seconds: '0' is outside 1..3600" in capsys.readouterr().err


def test_time_since_the_system_started(tmp_path):
    proc = make_proc(tmp_path / "proc", [(1, "systemd", 0, 0)])
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", "0", "1", "1", "0", "-1", "0"] + ["0"] * 12 + [str(100 * ticks)] + ["0"] * 20
    (proc / "1" / "stat").write_text(f"1 (systemd) {' '.join(fields)}\n")
    (proc / "uptime").write_text("1000.50 3000.00\n")
    assert ag.seconds_since_system_start(str(proc)) == pytest.approx(900.5)
    (proc / "1" / "stat").unlink()
    assert ag.seconds_since_system_start(str(proc)) == pytest.approx(1000.5)
    assert ag.seconds_since_system_start(str(tmp_path / "none")) == 0.0
    assert ag.seconds_since_system_start() >= 0


def test_times_as_jupyter_and_imds_write_them():
    assert ag.parse_utc("2023-11-14T22:13:20Z") == 1_700_000_000
    assert ag.parse_utc("2023-11-14T22:13:20.250000Z") == pytest.approx(1_700_000_000.25)
    assert ag.parse_utc("2023-11-15T00:13:20+02:00") == 1_700_000_000
    assert ag.parse_utc("2023-11-14T22:13:20.5") == pytest.approx(1_700_000_000.5)
    assert ag.parse_utc("yesterday") is None and ag.parse_utc("2023-13-45T99:00:00Z") is None


# --- spot notices -------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def imds_fake_clock():
    clock = Clock()
    server = ImdsStandin(clock=clock).start()
    yield server, clock
    server.stop()


def test_the_imds_token_is_renewed_before_it_expires(imds_fake_clock):
    server, clock = imds_fake_clock
    client = ag.ImdsClient(server.url, ttl=100, clock=clock)
    for t in range(0, 400, 5):
        clock.now = float(t)
        assert client.get(INSTANCE_ACTION)[0] == 404
    assert server.count("status 401") == 0
    assert server.count("PUT /latest/api/token") == 5  # at 0, 80, 160, 240, 320: 20 s before each expiry
    assert server.count(f"GET {INSTANCE_ACTION}") == 80


def test_a_refused_token_is_replaced_once(imds_fake_clock):
    server, clock = imds_fake_clock
    client = ag.ImdsClient(server.url, ttl=21600, clock=clock)
    assert client.get(REBALANCE)[0] == 404
    server.expire_tokens()
    assert client.get(REBALANCE)[0] == 404
    assert server.count("status 401") == 1 and server.count("PUT /latest/api/token") == 2


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_watcher_backs_off_while_imds_does_not_answer_and_never_spins(tmp_path):
    clock, lines = Clock(), []
    port = free_port()
    client = ag.ImdsClient(f"http://127.0.0.1:{port}", clock=clock, timeout=0.5)
    watcher = ag.SpotWatcher(
        client, interval=5.0, hooks_dir=str(tmp_path), hook_timeout=5, log=lines.append, wall=lines.append, clock=clock
    )
    delays = []
    for _ in range(8):
        delays.append(watcher.poll_once())
        clock.now += delays[-1]
    assert delays == [5, 10, 20, 40, 60, 60, 60, 60]
    assert len(lines) == 1 and lines[0].startswith("spot: metadata service not answering (")
    assert lines[0].endswith("next try in 5 s")
    clock.now += 600
    watcher.poll_once()
    assert len(lines) == 2  # reminded at most every 10 min
    server = ImdsStandin(port=port, clock=clock).start()
    try:
        assert watcher.poll_once() == 5.0
        assert lines[-1] == "spot: metadata service answers again"
    finally:
        server.stop()


def write_hook(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    hook = directory / name
    hook.write_text(f"#!/bin/sh\n{body}\n")
    hook.chmod(mode)
    return hook


def test_a_notice_runs_the_hooks_within_seconds_and_not_before(tmp_path):
    hooks = tmp_path / "on-interrupt.d"
    hooks.mkdir()
    record = tmp_path / "record"
    write_hook(
        hooks,
        "10-save",
        f'echo "$GPUBOX_NOTICE_KIND $GPUBOX_NOTICE_ACTION $GPUBOX_NOTICE_TIME $(date +%s.%N)" >> {record}\necho saved',
    )
    write_hook(hooks, "20-second", f'echo "second $GPUBOX_NOTICE_KIND" >> {record}')
    lines, walls = [], []
    server = ImdsStandin().start()
    stop = threading.Event()
    watcher = ag.SpotWatcher(
        ag.ImdsClient(server.url),
        interval=0.1,
        hooks_dir=str(hooks),
        hook_timeout=5,
        log=lines.append,
        wall=walls.append,
    )
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.6)
        assert not record.exists()  # polled, but nothing to act on
        assert server.count(f"GET {INSTANCE_ACTION}") >= 3
        noticed_at = time.time()
        server.set_notice("stop", "2030-01-01T00:02:00Z")
        wait_for(lambda: record.exists() and "second" in record.read_text(), 10)
        first_line, second_line = record.read_text().splitlines()
        kind, action, when, ran_at = first_line.split()
        assert (kind, action, when) == ("instance-action", "stop", "2030-01-01T00:02:00Z")
        assert noticed_at <= float(ran_at) <= noticed_at + 10
        assert second_line == "second instance-action"
        assert walls == [
            "gpubox: AWS will stop this spot box at 2030-01-01T00:02:00Z (about 2 minutes). Save your work now."
        ]
        assert "spot: interruption notice: AWS will stop this box at 2030-01-01T00:02:00Z" in lines
        wait_for(lambda: any(line.startswith("spot: hook 20-second: exit 0") for line in lines), 5)
        assert any(line.startswith("spot: hook 10-save: exit 0 in ") and line.endswith(": saved") for line in lines)
        # once: the notice stays up, the hooks do not run again; the rebalance recommendation is its own notice
        time.sleep(0.3)
        assert len(record.read_text().splitlines()) == 2
        server.set_rebalance("2030-01-01T00:00:00Z")
        wait_for(lambda: record.read_text().count("rebalance") == 2, 10)
        thread.join(5)
        assert not thread.is_alive()  # both seen: nothing more to watch
        assert server.count("status 401") == 0 and server.count("PUT /latest/api/token") == 1
    finally:
        stop.set()
        server.stop()


def wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_only_safe_executables_are_hooks_and_a_hung_hook_is_killed(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    write_hook(hooks, "30-slow", "sleep 30 & wait")
    write_hook(hooks, "10-fast", "echo fast; exit 3")
    write_hook(hooks, "20-not-executable", "echo no", mode=0o644)
    write_hook(hooks, "25-world-writable", "echo no", mode=0o777)
    write_hook(hooks, ".hidden", "echo no")
    write_hook(hooks, "40-old.dpkg-old", "echo no")
    write_hook(hooks, "50-backup~", "echo no")
    (hooks / "60-dir").mkdir()
    lines: list[str] = []
    assert [Path(h).name for h in ag.list_hooks(str(hooks), lines.append)] == ["10-fast", "30-slow"]
    assert lines == ["spot: hook 25-world-writable skipped: group- or world-writable"]
    lines.clear()
    started = time.monotonic()
    ag.run_hooks(str(hooks), {"GPUBOX_NOTICE_KIND": "instance-action"}, 0.5, lines.append)
    assert time.monotonic() - started < 5
    assert lines[1].startswith("spot: hook 10-fast: exit 3 in ") and lines[1].endswith(": fast")
    assert lines[2] == "spot: hook 30-slow: killed after 0.5 s"
    assert ag.list_hooks(str(tmp_path / "missing"), lines.append) == []
