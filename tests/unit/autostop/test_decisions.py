"""The decision (gpubox_autostop.decisions.Autostop) with a fake clock and fake readings: what keeps the box up,
the warning, the grace, the power-off and its retry, the cap, and when a line is logged."""

from __future__ import annotations

import os

import pytest
from autostop_fakes import MIN, SOURCES, quiet, settings
from gpubox_autostop.decisions import Autostop, Decision, Reading
from gpubox_autostop.hold import write_hold
from gpubox_autostop.probes import probe_hold


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


ACTIVE = {
    "jupyter": Reading("jupyter", True, "jupyter kernel busy (1 of 2)"),
    "gpu": Reading("gpu", True, "gpu 87%"),
    "ssh": Reading("ssh", True, "ssh terminal pts/0"),
    "cpu": Reading("cpu", True, "cpu 34% of 4 CPUs"),
    "hold": Reading("hold", True, "hold by ubuntu until 16:42 UTC (1 h 58 min left)"),
    "job": Reading("job", True, "job train running"),
}


@pytest.mark.parametrize("source", SOURCES)
def test_each_signal_alone_keeps_the_box_up(source):
    decider = Autostop(settings(), now=0.0)
    decisions = drive(decider, 0, 6 * 3600, lambda t: quiet(**{source: ACTIVE[source]}))
    assert not any(d.wall or d.poweroff for _, d in decisions)
    assert {d.phase for _, d in decisions} == {"active"}
    assert logged(decisions)[0] == (0, f"active: {ACTIVE[source].detail}")


def test_quiet_for_the_window_warns_then_powers_off_after_the_grace():
    decider = Autostop(settings(), now=0.0)
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
    decider = Autostop(settings(), now=0.0)
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
    decider = Autostop(settings(), now=0.0)

    def readings(t):
        ago = 5.0 if t == 3720 else t  # Jupyter last active at its start, then someone runs a cell
        return quiet(jupyter=Reading("jupyter", detail=f"jupyter: last activity {ago} s ago", activity_ago=ago))

    decisions = drive(decider, 0, 3900, readings)
    t, cancel = first(decisions, lambda d: d.line.startswith("cancelled"))
    assert t == 3720 and "jupyter: last activity 5.0 s ago" in cancel.line
    assert not any(d.poweroff for _, d in decisions)


def test_jupyter_last_activity_counts_from_when_it_happened():
    decider = Autostop(settings(), now=0.0)
    # at t=1800 Jupyter reports activity 10 min ago: the idle clock restarts at t=1200
    reading = {1800: 600.0}
    decisions = drive(
        decider,
        0,
        6000,
        lambda t: quiet(jupyter=Reading("jupyter", activity_ago=reading.get(t, t - 1200 if t > 1800 else t))),
    )
    assert first(decisions, lambda d: d.wall)[0] == 1200 + 3600


def test_a_hold_keeps_the_box_up_and_expires(tmp_path):
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir(mode=0o1777)
    wall0 = 1_700_000_000.0
    write_hold(str(hold_dir), os.getuid(), int(wall0 + 7200))
    decider = Autostop(settings(), now=0.0)
    decisions = drive(decider, 0, 5 * 3600, lambda t: quiet(hold=probe_hold(str(hold_dir), wall0 + t, 24 * 3600)))
    assert logged(decisions)[0][1].startswith("active: hold by ")
    assert "(2 h left)" in logged(decisions)[0][1]
    # active until 7140 (the last poll before the expiry), then a whole idle window
    assert first(decisions, lambda d: d.wall)[0] == 7140 + 3600
    assert (hold_dir / str(os.getuid())).read_text() == f"{int(wall0 + 7200)}\n"


def test_the_hard_cap_stops_the_box_even_while_busy_and_held():
    # started 10 min after boot; max_hours 2 -> the warning 2 h after boot, power-off 5 min later
    decider = Autostop(settings(max_hours=2.0), now=0.0, since_boot=600.0)
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
    decider = Autostop(settings(max_hours=1.05), now=0.0)
    decisions = drive(decider, 0, 4500, lambda t: quiet(ssh=ACTIVE["ssh"]) if t >= 3840 else quiet())
    walls = [(t, d.line) for t, d in decisions if d.wall]
    assert walls == [
        (3600, "warning: idle 60 min, powering off in 5 min"),
        (3840, "warning: up 1 h 4 min (max_hours 1.05), powering off in 5 min even if busy"),
    ]
    assert first(decisions, lambda d: d.poweroff) == (
        4140,
        Decision("poweroff", "poweroff: up 1 h 9 min (max_hours 1.05)", True, poweroff=True),
    )


def test_a_new_start_measures_idle_from_itself():
    # what an agent before a reboot saw does not exist for the new one: idle starts at its own start
    decider = Autostop(settings(), now=50_000.0, since_boot=30.0)
    stale_jupyter = Reading("jupyter", activity_ago=86_400.0)  # Jupyter's last activity: yesterday
    decisions = drive(decider, 50_000, 50_000 + 3600, lambda t: quiet(jupyter=stale_jupyter))
    assert [t for t, d in decisions if d.wall] == [50_000 + 3600]


def test_idle_minutes_zero_never_stops_but_the_cap_still_does():
    decider = Autostop(settings(idle_minutes=0.0), now=0.0)
    decisions = drive(decider, 0, 7 * 86400, lambda t: quiet(), step=600)
    assert not any(d.wall or d.poweroff for _, d in decisions)
    assert logged(decisions) == [(0, "autostop off: idle_minutes is 0")]  # once
    assert not decider.wants_readings
    capped = Autostop(settings(idle_minutes=0.0, max_hours=1.0), now=0.0)
    assert first(drive(capped, 0, 7200, lambda t: []), lambda d: d.poweroff)[0] == 3900


def test_a_failing_probe_is_no_signal_and_is_named_on_the_line():
    decider = Autostop(settings(), now=0.0)
    down = Reading("jupyter", error="jupyter not answering: Connection refused")
    decisions = drive(decider, 0, 3900, lambda t: quiet(jupyter=down))
    assert logged(decisions)[0] == (0, "idle 0/60 min: no signal (jupyter not answering: Connection refused)")
    assert first(decisions, lambda d: d.poweroff)[0] == 3900
    # the same box with Jupyter busy behind the failure of another probe stays up, and says both
    busy = drive(Autostop(settings(), now=0.0), 0, 600, lambda t: quiet(jupyter=ACTIVE["jupyter"], gpu=down_gpu()))
    assert logged(busy)[0][1] == "active: jupyter kernel busy (1 of 2) (nvidia-smi failed (exit 9): no driver)"


def down_gpu() -> Reading:
    return Reading("gpu", error="nvidia-smi failed (exit 9): no driver")


def test_lines_are_written_on_change_and_at_most_every_log_every_minutes():
    decider = Autostop(settings(log_every_minutes=10.0), now=0.0)

    def readings(t):
        if t < 1800:
            detail = f"jupyter kernel busy ({int(t // 60) % 3 + 1} of 3)"  # the detail changes each poll
            return quiet(jupyter=Reading("jupyter", True, detail))
        if t < 2400:
            return quiet(jupyter=ACTIVE["jupyter"], gpu=ACTIVE["gpu"])  # a second source: a change
        return quiet()

    lines = logged(drive(decider, 0, 3000, readings))
    assert [t for t, _ in lines] == [0, 600, 1200, 1800, 2400, 3000]
    assert lines[3][1] == "active: jupyter kernel busy (1 of 2); gpu 87%"
    assert lines[4][1] == "idle 1/60 min: no signal"  # since the last active poll, at 2340
    assert lines[5][1] == "idle 11/60 min: no signal"
