"""stop_at, the daily stop at a clock time (a fake clock: across midnight, time zones and DST, the warning and the
grace, a hold defers it, max_hours does not wait for a hold), its refusals in check-config, and the on-stop hooks
that run before every power-off the agent makes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from autostop_fakes import MIN, FakeTime, quiet, settings
from gpubox_autostop.cli import main
from gpubox_autostop.decisions import Autostop, Reading
from gpubox_autostop.hooks import run_hooks
from gpubox_autostop.limits import next_stop_at, parse_stop_at
from gpubox_autostop.wiring import run_agent

HOLD = Reading("hold", True, "hold by ubuntu until 21:00 UTC (1 h left)")
BUSY = Reading("jupyter", True, "jupyter kernel busy (1 of 1)")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def shown(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("after", "stop_at", "expected"),
    [
        ("2026-06-01 10:00", "20:00", "2026-06-01 20:00"),
        ("2026-06-01 20:00", "20:00", "2026-06-02 20:00"),  # just at the time: the next day's
        ("2026-06-01 23:30", "00:15", "2026-06-02 00:15"),  # across midnight
        ("2026-06-01 10:00", "20:00 Europe/Berlin", "2026-06-01 18:00"),  # summer time, UTC+2
        ("2026-01-15 10:00", "20:00 Europe/Berlin", "2026-01-15 19:00"),  # winter time, UTC+1
        ("2026-03-28 20:00", "20:00 Europe/Berlin", "2026-03-29 18:00"),  # the clocks go forward that night
        ("2026-03-29 00:00", "02:30 Europe/Berlin", "2026-03-29 01:30"),  # 02:30 does not exist: after the gap
        ("2026-10-25 00:00", "02:30 Europe/Berlin", "2026-10-25 00:30"),  # 02:30 twice: the first
        ("2026-06-01 23:00", "09:00 Asia/Tokyo", "2026-06-02 00:00"),  # its tomorrow is UTC's today
        ("2026-06-01 03:00", "20:00 America/New_York", "2026-06-02 00:00"),  # its today is UTC's tomorrow
    ],
)
def test_the_next_stop_time(after, stop_at, expected):
    assert shown(next_stop_at(utc(after), *parse_stop_at(stop_at))) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8pm", "'8pm' is not HH:MM (24 h)"),
        ("20.00", "is not HH:MM"),
        ("8:00", "is not HH:MM"),
        ("24:00", "24:00 is not a time of day"),
        ("20:60", "20:60 is not a time of day"),
        ("20:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("20:00 ../../etc/passwd", "unknown time zone"),
        ("\uff12\uff10:\uff10\uff10", "is not HH:MM"),  # full-width digits,
    ],
)
def test_check_config_refuses_a_stop_at_it_cannot_read(tmp_path, capsys, value, message):
    conf = tmp_path / "autostop.conf"
    conf.write_text(f"stop_at = {value}\n")
    assert main(["check-config", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert f"stop_at: {value!r}" in err and message in err


def test_check_config_reads_back_a_stop_at_with_its_zone(tmp_path, capsys):
    conf = tmp_path / "autostop.conf"
    conf.write_text("stop_at = 20:00 Europe/Berlin\n")
    assert main(["check-config", "--config", str(conf)]) == 0
    assert "stop_at = 20:00 Europe/Berlin\n" in capsys.readouterr().out


def drive(decider, wall0: float, seconds: float, readings, step: float = MIN) -> list:
    out, t = [], 0.0
    while t <= seconds:
        out.append((t, decider.step(t, readings(t), wall=wall0 + t)))
        t += step
    return out


def test_stop_at_warns_then_stops_after_the_grace_even_while_busy():
    wall0 = utc("2026-06-01 19:30")  # 30 min before 20:00 UTC
    decider = Autostop(settings(idle_minutes=0.0, stop_at="20:00"), now=0.0, wall_start=wall0)
    decisions = drive(decider, wall0, 3600, lambda t: quiet(jupyter=BUSY))
    warned = [(t, d) for t, d in decisions if d.wall]
    assert [t for t, _ in warned] == [1800]
    assert warned[0][1].line == "warning: stop_at 20:00, powering off in 5 min even if busy"
    assert "gpubox-hold 2h" in warned[0][1].wall and "20:00" in warned[0][1].wall
    off = [(t, d) for t, d in decisions if d.poweroff]
    assert (off[0][0], off[0][1].line, off[0][1].reason) == (2100, "poweroff: stop_at 20:00", "stop_at")
    assert [t for t, _ in off[1:]] == [2400, 2700, 3000, 3300, 3600]  # the command is retried, as for idle


def test_a_box_started_after_the_time_runs_until_the_next_day():
    wall0 = utc("2026-06-01 20:10")
    decider = Autostop(settings(idle_minutes=0.0, stop_at="20:00"), now=0.0, wall_start=wall0)
    decisions = drive(decider, wall0, 24 * 3600, lambda t: quiet(), step=5 * MIN)
    first_wall = next(t for t, d in decisions if d.wall)
    assert shown(wall0 + first_wall) == "2026-06-02 20:00"


def test_a_hold_defers_stop_at_until_it_ends():
    wall0 = utc("2026-06-01 19:50")
    decider = Autostop(settings(idle_minutes=60.0, stop_at="20:00"), now=0.0, wall_start=wall0)
    # held from the start until 20:40, then nobody is there
    decisions = drive(decider, wall0, 3 * 3600, lambda t: quiet(hold=HOLD) if t < 3000 else quiet())
    assert not any(d.wall or d.poweroff for t, d in decisions if t < 3000)
    assert any(d.line.endswith("stop_at 20:00 waits for it") for t, d in decisions if 600 <= t < 3000)
    warn_t = next(t for t, d in decisions if d.wall)
    off_t = next(t for t, d in decisions if d.poweroff)
    assert (warn_t, off_t) == (3000, 3300)  # the hold's end, not 60 idle minutes later


def test_a_hold_set_during_the_warning_cancels_it():
    wall0 = utc("2026-06-01 19:59")
    decider = Autostop(settings(idle_minutes=0.0, stop_at="20:00"), now=0.0, wall_start=wall0)
    decisions = drive(decider, wall0, 3600, lambda t: quiet(hold=HOLD) if 120 <= t < 1800 else quiet())
    walls = [(t, d.wall) for t, d in decisions if d.wall]
    assert walls[0][0] == 60 and "powers off in 5 min" in walls[0][1]
    assert walls[1][0] == 120 and "cancelled" in walls[1][1]
    assert not any(d.poweroff for t, d in decisions if t < 1800)
    assert next(t for t, d in decisions if d.poweroff) == 1800 + 300


def test_max_hours_overrides_a_hold_where_stop_at_waits():
    wall0 = utc("2026-06-01 19:00")
    decider = Autostop(settings(idle_minutes=0.0, stop_at="19:30", max_hours=1.0), now=0.0, wall_start=wall0)
    decisions = drive(decider, wall0, 2 * 3600, lambda t: quiet(hold=HOLD))
    assert not any(d.wall for t, d in decisions if t < 3600)  # 19:30 came, the hold kept the box up
    off = next((t, d) for t, d in decisions if d.poweroff)
    assert off[0] == 3600 + 300 and off[1].reason == "cap"


def write_hook(folder: Path, name: str, body: str, mode: int = 0o755) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)


def test_the_on_stop_hooks_run_in_order_before_the_poweroff_command(tmp_path):
    hooks = tmp_path / "on-stop.d"
    hooks.mkdir()
    record = tmp_path / "record"
    write_hook(hooks, "20-second", f'echo "second $GPUBOX_STOP_REASON" >> {record}; echo done')
    write_hook(hooks, "10-first", f'echo "first $GPUBOX_STOP_REASON" >> {record}')
    write_hook(hooks, "30-hangs", f"echo hangs >> {record}; sleep 30 & wait")
    fake, stop, lines, commands = FakeTime(wall=utc("2026-06-01 19:58")), threading.Event(), [], []
    s = settings(
        idle_minutes=0.0,
        stop_at="20:00",
        status_file=str(tmp_path / "autostop.json"),
        hold_dir=str(tmp_path / "hold"),
        on_stop_dir=str(hooks),
        on_stop_timeout=0.5,
    )

    def wait(delay):
        fake.mono += delay
        if fake.mono - fake.mono0 > 1200:
            stop.set()

    def runner(argv, stdin_text=None, timeout=30.0):
        # what the hooks had written when the command ran
        commands.append((argv, record.read_text() if record.exists() else ""))
        return 0, ""

    started = time.monotonic()
    run_agent(s, stop=stop, clock=fake.clock, wall_clock=fake.wall, wait=wait, log=lines.append, runner=runner)
    assert time.monotonic() - started < 10
    assert [argv for argv, _ in commands] == [["wall"]] + [["systemctl", "poweroff"]] * 3  # 5-minute retries
    assert commands[0][1] == ""  # the warning: no hook yet
    assert commands[1][1] == "first stop_at\nsecond stop_at\nhangs\n"  # all of them, in name order, before it
    hook_lines = [line for line in lines if line.startswith("on-stop:")]
    assert hook_lines[0].startswith("on-stop: hook 10-first: exit 0 in ")
    assert hook_lines[1].startswith("on-stop: hook 20-second: exit 0 in ") and hook_lines[1].endswith(": done")
    assert hook_lines[2] == "on-stop: hook 30-hangs: killed after 0.5 s"
    assert lines.index("poweroff: stop_at 20:00") < lines.index(hook_lines[0])
    assert record.read_text().count("first") == 1  # a retry of the command does not run them again


def test_an_idle_poweroff_runs_the_hooks_too_and_none_is_said(tmp_path):
    lines: list[str] = []
    run_hooks(str(tmp_path / "none"), {"GPUBOX_STOP_REASON": "idle"}, 1, lines.append, label="on-stop")
    assert lines == [f"on-stop: no hooks in {tmp_path / 'none'}"]
    hooks = tmp_path / "on-stop.d"
    hooks.mkdir()
    write_hook(hooks, "10-mark", f"echo $GPUBOX_STOP_REASON > {tmp_path / 'mark'}")
    fake, stop, out = FakeTime(), threading.Event(), []

    def wait(delay):
        fake.mono += delay
        if fake.mono - fake.mono0 > 4000:
            stop.set()

    s = settings(status_file=str(tmp_path / "s.json"), hold_dir=str(tmp_path / "hold"), on_stop_dir=str(hooks))
    run_agent(
        s,
        stop=stop,
        clock=fake.clock,
        wall_clock=fake.wall,
        wait=wait,
        log=out.append,
        probes=type("P", (), {"collect": staticmethod(quiet)})(),
        runner=lambda argv, stdin_text=None, timeout=30.0: (0, ""),
        since_boot=5.0,
    )
    assert (tmp_path / "mark").read_text() == "idle\n"
    assert any(line.startswith("on-stop: hook 10-mark: exit 0") for line in out)
