"""The wiring (gpubox_autostop.wiring.run_agent) with a fake clock, fake probes and a fake runner; the program itself
(the zipapp the role installs) in a process of its own; the time since the system started."""

from __future__ import annotations

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
from autostop_fakes import FakeTime, make_proc, quiet, settings
from gpubox_autostop.decisions import Reading
from gpubox_autostop.wiring import run_agent, seconds_since_system_start


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

    run_agent(
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


def test_the_status_file_says_what_each_signal_read(tmp_path):
    readings = quiet(ssh=Reading("ssh", detail="ssh: terminal pts/0 untouched 1 h"), gpu=Reading("gpu", error="boom"))
    _lines, _commands, s = run_fake_agent(tmp_path, 120, lambda: readings)
    signals = json.loads(Path(s.status_file).read_text())["signals"]
    assert signals["ssh"] == "ssh: terminal pts/0 untouched 1 h" and signals["gpu"] == "boom"
    assert set(signals) == {"jupyter", "gpu", "ssh", "cpu", "hold", "job"}


def test_the_cap_alone_needs_no_probes(tmp_path):
    probes_called = []
    lines, commands, _ = run_fake_agent(
        tmp_path, 4000, lambda: probes_called.append(1) or [], idle_minutes=0.0, max_hours=1.0
    )
    assert probes_called == []
    assert [c[1] for c in commands] == [["wall"], ["systemctl", "poweroff"]]
    assert "poweroff: up 1 h 5 min (max_hours 1)" in lines


def test_the_program_runs_from_the_shell(tmp_path, autostop_program):
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
        [sys.executable, str(autostop_program), "run", "--config", str(conf)], stdout=subprocess.PIPE, text=True
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


def test_time_since_the_system_started(tmp_path):
    proc = make_proc(tmp_path / "proc", [(1, "systemd", 0, 0)])
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", "0", "1", "1", "0", "-1", "0"] + ["0"] * 12 + [str(100 * ticks)] + ["0"] * 20
    (proc / "1" / "stat").write_text(f"1 (systemd) {' '.join(fields)}\n")
    (proc / "uptime").write_text("1000.50 3000.00\n")
    assert seconds_since_system_start(str(proc)) == pytest.approx(900.5)
    (proc / "1" / "stat").unlink()
    assert seconds_since_system_start(str(proc)) == pytest.approx(1000.5)
    assert seconds_since_system_start(str(tmp_path / "none")) == 0.0
    assert seconds_since_system_start() >= 0
