"""What the probes report (Reading) and the decision made of it (Autostop.step -> Decision): active, idle, the
warning and its grace, the power-off and its retry, the max_hours cap, and when a line is logged. Pure: no I/O,
the time comes in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .limits import next_stop_at, parse_stop_at
from .settings import Settings
from .util import fmt_duration, fmt_number

HOLD_HINT = "gpubox-hold 2h"
POWEROFF_RETRY_S = 300.0
GRACE_POLL_S = 15.0


@dataclass(frozen=True)
class Reading:
    """What one source says at one poll."""

    source: str
    active: bool = False
    detail: str = ""  # a phrase for the log: "jupyter kernel busy (1 of 2)"
    activity_ago: float | None = None  # seconds since the source last saw activity (Jupyter's last_activity)
    error: str | None = None  # the probe failed: no signal from this source, and the log says why


@dataclass(frozen=True)
class Decision:
    phase: str  # starting | active | idle | warning | poweroff | off
    line: str
    log: bool
    wall: str | None = None
    poweroff: bool = False
    # why a poweroff (idle | cap | stop_at), for the on-stop hooks; the line says it already, so not compared
    reason: str = field(default="", compare=False)


class Autostop:
    """The idle, warning and power-off decision. Time is a monotonic clock in seconds, given to step()."""

    def __init__(self, settings: Settings, now: float, since_boot: float = 0.0, wall_start: float | None = None):
        self.settings = settings
        # stop_at: the first such time after this start (a box started after it runs until the next one)
        self.stop_at = parse_stop_at(settings.stop_at)
        self.wall_start = wall_start
        self.stop_epoch: float | None = None
        self.started_at = now
        self.boot_at = now - max(0.0, since_boot)
        self.last_active = now  # idle is never counted from before this start: a reboot re-arms
        self.phase = "starting"
        self.reason = ""  # why a warning: idle | cap
        self.warned_at = self.deadline = self.poweroff_at = math.nan
        self._log_key: tuple | None = None
        self._logged_at = -math.inf

    @property
    def idle_limit(self) -> float:
        return self.settings.idle_minutes * 60

    @property
    def wants_readings(self) -> bool:
        """Probes matter only while the idle stop (or a hold against stop_at) can still happen."""
        return (self.settings.idle_minutes > 0 or self.stop_at is not None) and self.phase != "poweroff"

    def idle_seconds(self, now: float) -> float:
        return max(0.0, now - self.last_active)

    def next_wait(self, now: float) -> float:
        """Seconds until the next poll: shorter during a warning, so a hold or a key press cancels soon."""
        poll = self.settings.poll_seconds
        if self.phase == "warning":
            return min(poll, GRACE_POLL_S, max(1.0, self.deadline - now))
        return poll

    def stop_at_due(self, now: float, wall: float | None) -> bool:
        """Whether the daily stop_at time has come (since this start); wall is Unix seconds, None: from wall_start."""
        if self.stop_at is None:
            return False
        if wall is None:
            if self.wall_start is None:
                return False
            wall = self.wall_start + (now - self.started_at)
        if self.stop_epoch is None:
            self.stop_epoch = next_stop_at(wall - (now - self.started_at), *self.stop_at)
        return wall >= self.stop_epoch

    def step(self, now: float, readings: Sequence[Reading], wall: float | None = None) -> Decision:
        if self.phase == "poweroff":
            return self._after_poweroff(now)
        active = [r for r in readings if r.active]
        self._note_activity(now, readings, active)
        errors = tuple(sorted(r.source for r in readings if r.error))
        cap_due = self.settings.max_hours > 0 and now - self.boot_at >= self.settings.max_hours * 3600
        held = [r for r in active if r.source == "hold"]
        if self.phase == "warning":
            if self.reason == "stop_at" and held and not cap_due:
                return self._stop_at_held(now, held, readings, cancelled=True)
            return self._during_warning(now, readings, active, errors, cap_due)
        if cap_due:
            return self._warn(now, "cap", errors)
        if self.stop_at_due(now, wall):
            if held:
                return self._stop_at_held(now, held, readings)
            return self._warn(now, "stop_at", errors)
        if self.settings.idle_minutes <= 0:
            self.phase = "off"
            return self._emit(now, ("off",), "autostop off: idle_minutes is 0", repeat=False)
        if active:
            self.phase = "active"
            sources = tuple(sorted({r.source for r in active}))
            return self._emit(now, ("active", sources, errors), self._active_line(active, readings))
        idle = self.idle_seconds(now)
        if idle >= self.idle_limit:
            return self._warn(now, "idle", errors)
        self.phase = "idle"
        line = f"idle {int(idle // 60)}/{fmt_number(self.settings.idle_minutes)} min: no signal"
        return self._emit(now, ("idle", errors), line + self._problems(readings))

    # --- the parts of step() ---

    def _note_activity(self, now: float, readings: Sequence[Reading], active: Sequence[Reading]) -> None:
        if active:
            self.last_active = now
            return
        for reading in readings:
            if reading.activity_ago is not None:
                seen = now - max(0.0, reading.activity_ago)
                self.last_active = max(self.last_active, min(now, seen))

    def _during_warning(
        self, now: float, readings: Sequence[Reading], active: Sequence[Reading], errors: tuple, cap_due: bool
    ) -> Decision:
        if self.reason == "idle" and self.last_active > self.warned_at:
            if cap_due:  # the cap takes over, with its own warning: a hold cannot help now
                return self._warn(now, "cap", errors)
            self.phase = "active" if active else "idle"
            recent = [r for r in readings if r.activity_ago is not None and now - r.activity_ago > self.warned_at]
            why = self._active_line(active or recent, readings)
            self._log_key = None  # the next state is logged too
            return Decision(
                self.phase,
                f"cancelled: {why}; the idle clock restarts",
                log=True,
                wall="gpubox autostop: power-off cancelled, the box is in use again.",
            )
        if now >= self.deadline:
            return self._poweroff(now)
        left = fmt_duration(self.deadline - now)
        return self._emit(now, ("warning", self.reason, errors), f"warning: {self._why(now)}, powering off in {left}")

    def _stop_at_held(
        self, now: float, held: Sequence[Reading], readings: Sequence[Reading], cancelled: bool = False
    ) -> Decision:
        """stop_at has come, but a hold keeps the box up: the stop waits for the hold's end (max_hours does not)."""
        self.phase = "active"
        line = f"active: {'; '.join(r.detail or r.source for r in held)}; stop_at {self.settings.stop_at} waits for it"
        if not cancelled:
            return self._emit(now, ("held", "stop_at"), line + self._problems(readings))
        self._log_key = None
        return Decision(
            self.phase,
            f"cancelled: {line}",
            log=True,
            wall="gpubox autostop: power-off cancelled, a hold keeps the box up (stop_at waits for its end).",
        )

    def _warn(self, now: float, reason: str, errors: tuple) -> Decision:
        self.phase, self.reason = "warning", reason
        self.warned_at, self.deadline = now, now + self.settings.grace_minutes * 60
        grace = fmt_duration(self.settings.grace_minutes * 60)
        if reason == "stop_at":
            line = f"warning: stop_at {self.settings.stop_at}, powering off in {grace} even if busy"
            wall = (
                f"gpubox autostop: this box stops daily at {self.settings.stop_at} (stop_at) and powers off in"
                f" {grace}, even while busy (the disk is kept). Save your work now; to keep it running, type:"
                f" {HOLD_HINT}"
            )
        elif reason == "cap":
            up = fmt_duration(now - self.boot_at)
            cap = fmt_number(self.settings.max_hours)
            line = f"warning: up {up} (max_hours {cap}), powering off in {grace} even if busy"
            wall = (
                f"gpubox autostop: this box has run for {up} (max_hours {cap}) and powers off in {grace}, even"
                " while busy; a hold does not prevent this. Save your work now. The disk is kept."
            )
        else:
            idle = int(self.idle_seconds(now) // 60)
            line = f"warning: idle {idle} min, powering off in {grace}"
            wall = (
                f"gpubox autostop: this box has been idle for {idle} min and powers off in {grace} (the disk is"
                f" kept). To keep it running, type: {HOLD_HINT}"
            )
        self._log_key, self._logged_at = ("warning", reason, errors), now
        return Decision("warning", line, log=True, wall=wall)

    def _poweroff(self, now: float) -> Decision:
        self.phase, self.poweroff_at = "poweroff", now
        return Decision("poweroff", f"poweroff: {self._why(now)}", log=True, poweroff=True, reason=self.reason)

    def _why(self, now: float) -> str:
        """Why the box goes off, as the warning and the power-off say it."""
        if self.reason == "cap":
            return f"up {fmt_duration(now - self.boot_at)} (max_hours {fmt_number(self.settings.max_hours)})"
        if self.reason == "stop_at":
            return f"stop_at {self.settings.stop_at}"
        return f"idle {int(self.idle_seconds(now) // 60)} min"

    def _after_poweroff(self, now: float) -> Decision:
        # Why retry: the command may have failed, or systemd refused it; never give up on a box that is unused.
        if now - self.poweroff_at < POWEROFF_RETRY_S:
            return Decision("poweroff", "", log=False)
        waited = fmt_duration(now - self.poweroff_at)
        self.poweroff_at = now
        return Decision("poweroff", f"poweroff: still running {waited} after the command; again", True, poweroff=True)

    def _emit(self, now: float, key: tuple, line: str, repeat: bool = True) -> Decision:
        every = self.settings.log_every_minutes * 60
        log = key != self._log_key or (repeat and now - self._logged_at >= every)
        if log:
            self._log_key, self._logged_at = key, now
        return Decision(self.phase, line, log)

    @staticmethod
    def _active_line(active: Sequence[Reading], readings: Sequence[Reading]) -> str:
        return "active: " + "; ".join(r.detail or r.source for r in active) + Autostop._problems(readings)

    @staticmethod
    def _problems(readings: Sequence[Reading]) -> str:
        errors = [r.error for r in readings if r.error]
        return f" ({'; '.join(errors)})" if errors else ""
