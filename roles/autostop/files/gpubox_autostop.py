#!/usr/bin/python3 -I
"""gpubox autostop: power the box off when nobody uses it, and act on spot interruption notices.

Runs on the box as a root systemd service, started at every boot; standard library only, Python 3.10+.
The box is launched with shutdown behaviour "stop", so powering off stops it (the disk is kept) without any
AWS credentials on the box.

Commands (installed as /usr/local/sbin/gpubox-autostop, with /usr/local/bin/gpubox-hold a symlink to it;
called as gpubox-hold it is the hold command):
  gpubox-autostop run [--config FILE] [--idle-minutes N ...]   the agent
  gpubox-autostop check-config [--config FILE]                 validate, print the effective settings
  gpubox-autostop hold [2h | 30m | 1h30m | off]                = gpubox-hold
  gpubox-hold                                                  the holds and what the agent last decided

The box is ACTIVE while any signal holds (``signals`` picks which are read):
  jupyter  a kernel is busy, or Jupyter saw activity within the idle window: the last_activity of
           /api/status (any API request, including a JupyterLab tab that is visible: it polls every 10 s;
           set jupyter_server_activity=false to count kernels and terminals only), of each kernel and of each
           terminal. The agent's own requests carry no_track_activity=1, so they do not count.
  gpu      the busiest GPU's utilization.gpu (nvidia-smi) is above gpu_threshold percent.
  ssh      an interactive SSH session: a process whose controlling terminal is a pts and that descends from
           sshd (or sshd-session, OpenSSH 9.8+). Read from /proc rather than utmp (`who`) or logind: there is
           no logind in a container, and utmp is being retired (Y2038) and is not written everywhere. An
           `ssh -N` tunnel has no terminal, so it does not count; neither does a detached tmux (its server
           is not under sshd). An open terminal counts even if untouched: max_hours guards a forgotten one.
  cpu      the CPUs were busy (user, nice, system, irq, softirq, iowait from /proc/stat, between two polls)
           above cpu_threshold percent of all CPUs together (in a container, /proc/stat is the host's).
  hold     a user ran `gpubox-hold 2h`. Holds live in hold_dir (/var/lib/gpubox/hold, mode 1777: world
           writable and sticky, so users need no root and cannot remove each other's files). One file per
           user, named by uid, holding the expiry as Unix seconds. The agent reads only files whose owner is
           the uid in their name, opens them without following links, reads at most 64 bytes and ignores
           (and logs) anything else, including an expiry further than max_hold_hours away.
  job      a job of playbooks/run.yml runs: systemd keeps a directory named after each running job in jobs_dir
           (its unit's RuntimeDirectory, removed when the job ends, whatever the way), so the agent reads a
           directory listing and starts nothing.

Idle for idle_minutes (counted from this agent's start at the earliest, so a reboot re-arms it; nothing is
read from a previous run) -> a `wall` warning that says how to keep the box (`gpubox-hold 2h`), then
grace_minutes during which any activity cancels (the idle clock restarts at that activity), then
poweroff_command. max_hours (0 = off) is a hard cap on the time since the system started (PID 1's start, so
a container counts from its own start): the same warning and grace, and then the box stops even while busy.
A hold does not override the cap: the cap is a budget guard, and a hold is at most max_hold_hours anyway.
idle_minutes 0 turns the idle stop off (the cap still applies). A restart of the agent re-arms the idle
clock too, so a probe never crashes it: anything unexpected becomes a failed probe.

Each decision is one line on stdout (the journal): `active: jupyter kernel busy (1 of 2)`,
`idle 23/60 min: no signal`, `warning: idle 60 min, powering off in 5 min`, `cancelled: active: ssh
terminal pts/0; the idle clock restarts`, `poweroff: idle 65 min`. A line is written when the state or the
set of active signals (or failing probes) changes, otherwise at most every log_every_minutes. A probe that
fails (Jupyter down) counts as no signal from that source and is named on the line; Jupyter and nvidia-smi
are then asked again with exponential backoff (up to 10 min). The last decision, with the agent's RSS and
CPU time, is also kept in status_file (JSON, on /run) for `gpubox-hold`.

Spot (spot=true): a thread asks the instance metadata service every spot_poll_seconds with IMDSv2 (a PUT
for a token, refreshed before it expires, then GETs of spot/instance-action and
events/recommendations/rebalance; 404 = no notice). Failures back off exponentially up to 60 s. On each
kind of notice, once: a log line, a `wall` warning, then every executable in interrupt_dir (sorted; not
group- or world-writable; owned by root or this agent's user; dotfiles and package-manager leftovers
skipped), one after the other, each killed after interrupt_timeout seconds, each result logged. Hooks get
GPUBOX_NOTICE_KIND (instance-action or rebalance), GPUBOX_NOTICE_ACTION (stop, terminate, hibernate),
GPUBOX_NOTICE_TIME and GPUBOX_NOTICE_JSON. The interruption notice gives about two minutes: keep hooks short.

Settings come from /etc/gpubox/autostop.conf (KEY=VALUE lines with # comments, or one JSON object), then
from flags (--idle-minutes 30). `check-config` lists every key with its value, in a form it reads back.
The file holds no secret and should be readable by all: gpubox-hold reads hold_dir and max_hold_hours.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import http.client
import json
import math
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from urllib.parse import urlsplit

CONFIG_FILE = "/etc/gpubox/autostop.conf"
SIGNALS = ("jupyter", "gpu", "ssh", "cpu", "hold", "job")
SSHD_NAMES = frozenset({"sshd", "sshd-session"})
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR .. +7 (Documentation/admin-guide/devices.txt)
HOLD_HINT = "gpubox-hold 2h"
POWEROFF_RETRY_S = 300.0
GRACE_POLL_S = 15.0
PROBE_BACKOFF_CAP_S = 600.0
IMDS_BACKOFF_CAP_S = 60.0
IMDS_TOKEN_TTL_S = 21600
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
SPOT_PATHS = {
    "instance-action": "/latest/meta-data/spot/instance-action",
    "rebalance": "/latest/meta-data/events/recommendations/rebalance",
}
HOOK_SKIP_SUFFIXES = ("~", ".dpkg-old", ".dpkg-dist", ".dpkg-new", ".dpkg-tmp", ".ucf-old", ".disabled")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Log = Callable[[str], None]


# --- settings ---------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Settings:
    idle_minutes: float = 60.0
    grace_minutes: float = 5.0
    max_hours: float = 0.0
    poll_seconds: float = 60.0
    log_every_minutes: float = 10.0
    signals: str = ",".join(SIGNALS)
    cpu_threshold: float = 10.0
    gpu_threshold: float = 5.0
    jupyter_url: str = "http://127.0.0.1:8888"
    jupyter_token_file: str = "/home/ubuntu/.jupyter/gpubox-token"
    jupyter_server_activity: bool = True
    hold_dir: str = "/var/lib/gpubox/hold"
    max_hold_hours: float = 24.0
    jobs_dir: str = "/run/gpubox-jobs"
    status_file: str = "/run/gpubox/autostop.json"
    poweroff_command: str = "systemctl poweroff"
    wall_command: str = "wall"
    spot: bool = False
    metadata_url: str = "http://169.254.169.254"
    spot_poll_seconds: float = 5.0
    interrupt_dir: str = "/etc/gpubox/on-interrupt.d"
    interrupt_timeout: float = 30.0

    @property
    def enabled(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.signals.split(",") if s.strip())


# (lowest, highest) allowed for each number; why: a typo must not become a zero-interval loop or a 0 % threshold
RANGES: dict[str, tuple[float, float]] = {
    "idle_minutes": (0, 7 * 24 * 60),
    "grace_minutes": (0, 24 * 60),
    "max_hours": (0, 24 * 365),
    "poll_seconds": (1, 3600),
    "log_every_minutes": (0, 24 * 60),
    "cpu_threshold": (0, 100),
    "gpu_threshold": (0, 100),
    "max_hold_hours": (1 / 60, 31 * 24),
    "spot_poll_seconds": (1, 300),
    "interrupt_timeout": (1, 3600),
}


BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _coerce(key: str, value: object, default: object) -> object:
    """One setting's value (a string from KEY=VALUE or a flag, or a JSON value) as the type of its default."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word not in BOOL_WORDS:
            raise ConfigError(f"{key}: {value!r} is not true or false")
        return BOOL_WORDS[word]
    if isinstance(default, float):
        word = "" if value is None else str(value).strip().lower()
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not a number")
        try:
            number = 0.0 if word in ("off", "none", "") else float(word)
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not a number") from None
        low, high = RANGES[key]
        if not math.isfinite(number) or not low <= number <= high:
            raise ConfigError(f"{key}: {value!r} is outside {low:g}..{high:g}")
        return number
    return "" if value is None else str(value).strip()


def _check_url(key: str, url: str, allow_empty: bool) -> None:
    if not url and allow_empty:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: {url!r} is not an http:// or https:// URL")


def _check_command(key: str, command: str, allow_empty: bool) -> None:
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"{key}: {command!r}: {exc}") from None
    if not words and not allow_empty:
        raise ConfigError(f"{key}: empty")


def validate(settings: Settings) -> Settings:
    unknown = settings.enabled - set(SIGNALS)
    if unknown:
        raise ConfigError(f"signals: unknown {', '.join(sorted(unknown))} (known: {', '.join(SIGNALS)})")
    _check_url("jupyter_url", settings.jupyter_url, allow_empty=True)
    _check_url("metadata_url", settings.metadata_url, allow_empty=False)
    _check_command("poweroff_command", settings.poweroff_command, allow_empty=False)
    _check_command("wall_command", settings.wall_command, allow_empty=True)
    for key in ("hold_dir", "interrupt_dir", "status_file", "jupyter_token_file", "jobs_dir"):
        path = getattr(settings, key)
        if path and not path.startswith("/"):
            raise ConfigError(f"{key}: {path!r} is not an absolute path")
    if not settings.hold_dir or not settings.interrupt_dir:
        raise ConfigError("hold_dir and interrupt_dir must be set")
    return settings


def parse_config(text: str, source: str) -> dict[str, object]:
    """KEY=VALUE lines (# comments, optional quotes) or one JSON object -> raw values by key."""
    known = {f.name for f in fields(Settings)}
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{source}: not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: the JSON is not an object")
        for key in raw:
            if key not in known:
                raise ConfigError(f"{source}: unknown setting {key!r}")
        return dict(raw)
    values: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in known:
            raise ConfigError(f"{source}:{number}: {'unknown setting ' + repr(key) if sep else 'not KEY=VALUE'}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def make_settings(file_values: dict[str, object], flags: dict[str, object], source: str = "") -> Settings:
    """Defaults, then the file's values, then the flags', each checked and named in an error."""
    defaults = Settings()
    chosen: dict[str, object] = {}
    for label, layer in ((source, file_values), ("flag", flags)):
        for key, value in layer.items():
            try:
                chosen[key] = _coerce(key, value, getattr(defaults, key))
            except ConfigError as exc:
                raise ConfigError(f"{label}: {exc}" if label else str(exc)) from None
    return validate(replace(defaults, **chosen))


def load_settings(path: str | None, flags: dict[str, object] | None = None) -> Settings:
    """The config file (the default one may be missing; a named one must exist), then the flags."""
    target = path or CONFIG_FILE
    try:
        with open(target, encoding="utf-8") as handle:
            file_values = parse_config(handle.read(), target)
    except FileNotFoundError:
        if path:
            raise ConfigError(f"{path}: no such file") from None
        file_values = {}
    except OSError as exc:
        raise ConfigError(f"{target}: {describe_error(exc)}") from None
    return make_settings(file_values, flags or {}, target)


# --- small helpers ----------------------------------------------------------------------------------------


def fmt_duration(seconds: float) -> str:
    """1.5 s, 45 s, 5 min, 2 h, 1 h 30 min: what a person reads in a log line or a wall message."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{round(seconds, 1):g} s"
    if seconds < 60:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"


def fmt_number(value: float) -> str:
    return f"{value:g}"


def fmt_clock(epoch: float) -> str:
    return time.strftime("%H:%M %Z", time.localtime(epoch))


def clean(text: str, limit: int = 200) -> str:
    """One printable line: what came from outside (a notice, a hook's output) never breaks the log format."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else "..." + flat[-limit:]


def parse_utc(stamp: object) -> float | None:
    """Unix seconds of an ISO 8601 time as Jupyter and IMDS write it ('2025-01-01T10:00:00.123Z'), or None.

    Parsed by hand: Python 3.10's fromisoformat does not take 'Z' or other than 3 or 6 fraction digits.
    """
    match = re.fullmatch(
        r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?", str(stamp).strip()
    )
    if not match:
        return None
    year, month, day, hour, minute, sec, frac, zone = match.groups()
    try:
        epoch = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(sec), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if frac:
        epoch += float("0." + frac)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch


def read_small_file(path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """Read a small regular file without following a symbolic link at its end.

    Why: the token file and the hold files are in places users control, and this runs as root: a link to
    /etc/shadow must not be read (and sent to Jupyter as a token).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise ValueError("is a symbolic link (not followed)") from None
        raise ValueError(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("is not a regular file")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"is larger than {limit} bytes")
    return data, info


def http_request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 5.0, limit: int = 1 << 20
) -> tuple[int, bytes]:
    """(status, body) of one request; OSError or http.client.HTTPException when there is no answer.

    http.client rather than urllib: no proxy from the environment (IMDS and Jupyter are local), no
    exception for 404, and fewer imports (memory).
    """
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(limit)
    finally:
        conn.close()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return clean(str(exc) or type(exc).__name__, 120)


def run_command(argv: Sequence[str], stdin_text: str | None = None, timeout: float = 30.0) -> tuple[int, str]:
    """(exit status, output) of a short command; exit status 127 when it cannot be started, 124 on timeout."""
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin_text,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {fmt_duration(timeout)}"
    except OSError as exc:
        return 127, describe_error(exc)
    return proc.returncode, proc.stdout or ""


Runner = Callable[..., tuple[int, str]]


class Backoff:
    """When to ask a source that does not answer again: base, 2 x base, 4 x base ... up to cap."""

    def __init__(self, base: float, cap: float):
        self.base, self.cap = base, max(base, cap)
        self.failures = 0
        self.next_at = -math.inf

    def ready(self, now: float) -> bool:
        return now >= self.next_at

    def success(self) -> None:
        self.failures, self.next_at = 0, -math.inf

    def failure(self, now: float) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        self.next_at = now + delay
        return delay


# --- what the probes report, and the decision (pure: no I/O, time comes in) ------------------------------


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


class Autostop:
    """The idle, warning and power-off decision. Time is a monotonic clock in seconds, given to step()."""

    def __init__(self, settings: Settings, now: float, since_boot: float = 0.0):
        self.settings = settings
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
        """Probes matter only while the idle stop can still happen."""
        return self.settings.idle_minutes > 0 and self.phase != "poweroff"

    def idle_seconds(self, now: float) -> float:
        return max(0.0, now - self.last_active)

    def next_wait(self, now: float) -> float:
        """Seconds until the next poll: shorter during a warning, so a hold or a key press cancels soon."""
        poll = self.settings.poll_seconds
        if self.phase == "warning":
            return min(poll, GRACE_POLL_S, max(1.0, self.deadline - now))
        return poll

    def step(self, now: float, readings: Sequence[Reading]) -> Decision:
        if self.phase == "poweroff":
            return self._after_poweroff(now)
        active = [r for r in readings if r.active]
        self._note_activity(now, readings, active)
        errors = tuple(sorted(r.source for r in readings if r.error))
        cap_due = self.settings.max_hours > 0 and now - self.boot_at >= self.settings.max_hours * 3600
        if self.phase == "warning":
            return self._during_warning(now, readings, active, errors, cap_due)
        if cap_due:
            return self._warn(now, "cap", errors)
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
        if self.reason == "cap":
            line = f"warning: up {fmt_duration(now - self.boot_at)} (max_hours {fmt_number(self.settings.max_hours)})"
        else:
            line = f"warning: idle {int(self.idle_seconds(now) // 60)} min"
        return self._emit(now, ("warning", self.reason, errors), f"{line}, powering off in {left}")

    def _warn(self, now: float, reason: str, errors: tuple) -> Decision:
        self.phase, self.reason = "warning", reason
        self.warned_at, self.deadline = now, now + self.settings.grace_minutes * 60
        grace = fmt_duration(self.settings.grace_minutes * 60)
        if reason == "cap":
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
        if self.reason == "cap":
            line = f"poweroff: up {fmt_duration(now - self.boot_at)} (max_hours {fmt_number(self.settings.max_hours)})"
        else:
            line = f"poweroff: idle {int(self.idle_seconds(now) // 60)} min"
        return Decision("poweroff", line, log=True, poweroff=True)

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


# --- probes: each small, each returns a Reading ----------------------------------------------------------


def read_token(path: str) -> str:
    data, _unused = read_small_file(path, 4096)
    token = data.decode("ascii", "replace").strip()
    if not re.fullmatch(r"[A-Za-z0-9._~+/=-]{1,4096}", token):
        raise ValueError("does not hold a token (one line of letters, digits and ._~+/=-)")
    return token


def _get_json(base: str, path: str, token: str, timeout: float) -> object:
    # no_track_activity: without it, these requests would be Jupyter activity themselves
    status, body = http_request(
        f"{base}{path}?no_track_activity=1", headers={"Authorization": f"token {token}"}, timeout=timeout
    )
    if status in (401, 403):
        raise PermissionError(f"token refused (HTTP {status})")
    if status != 200:
        raise http.client.HTTPException(f"{path} answered HTTP {status}")
    return json.loads(body)


def probe_jupyter(
    url: str, token_file: str, now_wall: float, server_activity: bool = True, timeout: float = 5.0
) -> Reading:
    """A busy kernel is activity now; otherwise the newest last_activity says when Jupyter last saw some."""
    base = url.rstrip("/")
    try:
        token = read_token(token_file) if token_file else ""
    except ValueError as exc:
        return Reading("jupyter", error=f"jupyter token file {token_file}: {exc}")
    try:
        status = _get_json(base, "/api/status", token, timeout)
        kernels = _get_json(base, "/api/kernels", token, timeout)
        try:
            terminals = _get_json(base, "/api/terminals", token, timeout)
        except http.client.HTTPException:
            terminals = []  # terminals disabled: 404
    except PermissionError as exc:
        return Reading("jupyter", error=f"jupyter {exc}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Reading("jupyter", error=f"jupyter not answering: {describe_error(exc)}")
    kernels = [k for k in kernels if isinstance(k, dict)] if isinstance(kernels, list) else []
    terminals = [t for t in terminals if isinstance(t, dict)] if isinstance(terminals, list) else []
    busy = sum(1 for k in kernels if k.get("execution_state") == "busy")
    if busy:
        return Reading("jupyter", True, f"jupyter kernel busy ({busy} of {len(kernels)})")
    stamps = [k.get("last_activity") for k in kernels] + [t.get("last_activity") for t in terminals]
    if server_activity and isinstance(status, dict):
        stamps.append(status.get("last_activity"))
    times = [t for t in (parse_utc(s) for s in stamps if s) if t is not None]
    if not times:
        return Reading("jupyter", detail=f"jupyter: {len(kernels)} kernels, no activity")
    ago = max(0.0, now_wall - max(times))
    return Reading("jupyter", detail=f"jupyter: last activity {fmt_duration(ago)} ago", activity_ago=ago)


def probe_gpu(threshold: float, timeout: float = 20.0, runner: Runner = run_command) -> Reading:
    """The busiest GPU's utilisation from nvidia-smi; no nvidia-smi = no GPU = no signal (not an error)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return Reading("gpu", detail="gpu: no nvidia-smi")
    rc, out = runner([exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"], timeout=timeout)
    values = [int(v) for v in (line.strip() for line in out.splitlines()) if v.isdigit()]
    if rc != 0 or not values:
        if rc == 0 and out.strip():  # e.g. "[N/A]" on every GPU: it cannot tell, so no signal
            return Reading("gpu", detail=f"gpu: utilisation not reported ({clean(out, 60)})")
        return Reading("gpu", error=f"nvidia-smi failed (exit {rc}): {clean(out, 120)}")
    top = max(values)
    of = f" (busiest of {len(values)} GPUs)" if len(values) > 1 else ""
    return Reading("gpu", top > threshold, f"gpu {top}%{of}")


@dataclass(frozen=True)
class CpuTimes:
    busy: int
    total: int
    cpus: int


def read_cpu_times(path: str = "/proc/stat") -> CpuTimes:
    with open(path, encoding="ascii") as handle:
        lines = handle.read().splitlines()
    # user nice system idle iowait irq softirq steal: iowait counts as busy (a job reading its data set)
    ticks = [int(v) for v in lines[0].split()[1:9]]
    ticks += [0] * (8 - len(ticks))
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    cpus = sum(1 for line in lines if re.match(r"cpu\d+ ", line))
    busy = user + nice + system + iowait + irq + softirq
    return CpuTimes(busy, busy + idle + steal, max(1, cpus))


class CpuProbe:
    """CPU busy share of all CPUs between two calls (the first call has nothing to compare with)."""

    def __init__(self, threshold: float, path: str = "/proc/stat"):
        self.threshold, self.path = threshold, path
        self.previous: CpuTimes | None = None

    def __call__(self) -> Reading:
        try:
            now = read_cpu_times(self.path)
        except (OSError, ValueError, IndexError) as exc:
            return Reading("cpu", error=f"cpu: {self.path} unreadable: {describe_error(exc)}")
        before, self.previous = self.previous, now
        if before is None or now.total <= before.total:
            return Reading("cpu", detail="cpu: first sample")
        share = 100.0 * (now.busy - before.busy) / (now.total - before.total)
        return Reading("cpu", share > self.threshold, f"cpu {share:.0f}% of {now.cpus} CPUs")


def _proc_table(proc_root: str) -> dict[int, tuple[str, int, int]]:
    """pid -> (comm, ppid, tty_nr) from /proc/*/stat; processes that vanish meanwhile are skipped."""
    table: dict[int, tuple[str, int, int]] = {}
    try:
        names = os.listdir(proc_root)
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, name, "stat"), encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: it ends at the last ')'
        head, _unused, tail = text.rpartition(")")
        comm = head.partition("(")[2]
        rest = tail.split()
        if len(rest) < 5:
            continue
        try:
            table[int(name)] = (comm, int(rest[1]), int(rest[4]))
        except ValueError:
            continue
    return table


def pts_name(tty_nr: int) -> str | None:
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if major not in PTS_MAJORS:
        return None
    return f"pts/{(major - PTS_MAJORS.start) * 256 + minor}"


def ssh_terminals(proc_root: str = "/proc") -> list[str]:
    """Terminals (pts/N) of processes that descend from sshd: interactive SSH sessions, not -N tunnels."""
    table = _proc_table(proc_root)
    found: set[str] = set()
    for _pid, (_comm, ppid, tty) in table.items():
        name = pts_name(tty)
        if name is None or name in found:
            continue
        parent, hops = ppid, 0
        while parent > 1 and parent in table and hops < 64:  # hops: a loop in a changing table cannot hang us
            if table[parent][0] in SSHD_NAMES:
                found.add(name)
                break
            parent, hops = table[parent][1], hops + 1
    return sorted(found, key=lambda n: int(n.partition("/")[2]))


def probe_ssh(proc_root: str = "/proc") -> Reading:
    terminals = ssh_terminals(proc_root)
    if not terminals:
        return Reading("ssh", detail="ssh: no terminal")
    word = "terminal" if len(terminals) == 1 else "terminals"
    return Reading("ssh", True, f"ssh {word} {', '.join(terminals)}")


@dataclass(frozen=True)
class Hold:
    uid: int
    until: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid {self.uid}"


def read_holds(hold_dir: str, now_wall: float, max_hold_s: float) -> tuple[list[Hold], list[str]]:
    """The holds in force, and what was ignored and why (garbage, a link, someone else's file, too far)."""
    holds: list[Hold] = []
    problems: list[str] = []
    try:
        names = sorted(os.listdir(hold_dir))
    except FileNotFoundError:
        return holds, problems
    except OSError as exc:
        return holds, [f"hold dir {hold_dir}: {describe_error(exc)}"]
    for name in names:
        if name.startswith("."):  # a file gpubox-hold is still writing
            continue
        why = _hold_problem(hold_dir, name, now_wall, max_hold_s, holds)
        if why:
            problems.append(f"hold file {clean(name, 40)!r} ignored: {why}")
    return holds, problems


def _hold_problem(hold_dir: str, name: str, now_wall: float, max_hold_s: float, holds: list[Hold]) -> str | None:
    if not re.fullmatch(r"[0-9]{1,10}", name):
        return "not named by a uid"
    try:
        data, info = read_small_file(os.path.join(hold_dir, name), 64)
    except ValueError as exc:
        return str(exc)
    if info.st_uid != int(name):
        return f"owned by uid {info.st_uid}"
    text = data.decode("ascii", "replace").strip()
    if not re.fullmatch(r"[0-9]{1,12}", text):
        return "not an expiry time"
    until = int(text)
    if until > now_wall + max_hold_s + 60:
        return "expiry beyond max_hold_hours"
    if until > now_wall:
        holds.append(Hold(int(name), until))
    return None


def probe_job(jobs_dir: str) -> Reading:
    try:
        names = sorted(n for n in os.listdir(jobs_dir) if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", n))
    except FileNotFoundError:
        names = []
    except OSError as exc:
        return Reading("job", detail="job: none", error=f"jobs dir {jobs_dir}: {describe_error(exc)}")
    if not names:
        return Reading("job", detail="job: none running")
    shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
    return Reading("job", True, f"job {shown} running" if len(names) == 1 else f"jobs {shown} running")


def probe_hold(hold_dir: str, now_wall: float, max_hold_s: float) -> Reading:
    holds, problems = read_holds(hold_dir, now_wall, max_hold_s)
    error = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
    if not holds:
        return Reading("hold", detail="hold: none", error=error or None)
    last = max(holds, key=lambda h: h.until)
    users = ", ".join(sorted({h.user for h in holds}))
    detail = f"hold by {users} until {fmt_clock(last.until)} ({fmt_duration(last.until - now_wall)} left)"
    return Reading("hold", True, detail, error=error or None)


class Probes:
    """Every enabled probe, with backoff for the ones that ask another program (Jupyter, nvidia-smi)."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        proc_root: str = "/proc",
    ):
        self.settings, self.clock, self.wall_clock, self.proc_root = settings, clock, wall_clock, proc_root
        self.cpu = CpuProbe(settings.cpu_threshold, os.path.join(proc_root, "stat"))
        self.backoff = {name: Backoff(settings.poll_seconds, PROBE_BACKOFF_CAP_S) for name in ("jupyter", "gpu")}
        self.last_error: dict[str, str] = {}

    def collect(self) -> list[Reading]:
        s, enabled = self.settings, self.settings.enabled
        probes: list[tuple[str, Callable[[], Reading]]] = []
        if "jupyter" in enabled and s.jupyter_url:
            args = (s.jupyter_url, s.jupyter_token_file, self.wall_clock(), s.jupyter_server_activity)
            probes.append(("jupyter", partial(self._with_backoff, "jupyter", partial(probe_jupyter, *args))))
        if "gpu" in enabled:
            probes.append(("gpu", partial(self._with_backoff, "gpu", partial(probe_gpu, s.gpu_threshold))))
        if "ssh" in enabled:
            probes.append(("ssh", partial(probe_ssh, self.proc_root)))
        if "cpu" in enabled:
            probes.append(("cpu", self.cpu))
        if "hold" in enabled:
            probes.append(("hold", partial(probe_hold, s.hold_dir, self.wall_clock(), s.max_hold_hours * 3600)))
        if "job" in enabled:
            probes.append(("job", partial(probe_job, s.jobs_dir)))
        return [self._safely(name, probe) for name, probe in probes]

    @staticmethod
    def _safely(name: str, probe: Callable[[], Reading]) -> Reading:
        # Why: an agent that crashes is restarted by systemd, and a restart re-arms the idle clock: a probe
        # that always crashed would keep the box up for ever. A surprise is a failed probe, named in the log.
        try:
            return probe()
        except Exception as exc:
            return Reading(name, error=f"{name} probe failed: {type(exc).__name__}: {clean(str(exc), 120)}")

    def _with_backoff(self, name: str, probe: Callable[[], Reading]) -> Reading:
        now, backoff = self.clock(), self.backoff[name]
        if not backoff.ready(now):
            wait = fmt_duration(backoff.next_at - now)
            return Reading(name, error=f"{self.last_error.get(name, name + ' failing')}; next try in {wait}")
        reading = probe()
        if reading.error:
            backoff.failure(now)
            self.last_error[name] = reading.error
        else:
            backoff.success()
        return reading


# --- spot interruption notices ----------------------------------------------------------------------------


class ImdsError(Exception):
    """The metadata service answered, but not as IMDSv2 should."""


class ImdsClient:
    """IMDSv2: a session token from PUT /latest/api/token, renewed before it expires, on every GET."""

    def __init__(
        self,
        base_url: str,
        ttl: int = IMDS_TOKEN_TTL_S,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        request: Callable[..., tuple[int, bytes]] = http_request,
    ):
        self.base, self.ttl, self.timeout, self.clock, self.request = base_url.rstrip("/"), ttl, timeout, clock, request
        self.token: str | None = None
        self.token_at = -math.inf

    def _token(self) -> str:
        now = self.clock()
        margin = min(60.0, self.ttl * 0.2)  # renew early: a token must not expire between check and use
        if self.token is None or now - self.token_at >= self.ttl - margin:
            status, body = self.request(
                f"{self.base}/latest/api/token", "PUT", {TTL_HEADER: str(self.ttl)}, self.timeout, 4096
            )
            token = body.decode("ascii", "replace").strip()
            if status != 200 or not token:
                raise ImdsError(f"token request answered HTTP {status}")
            self.token, self.token_at = token, now
        return self.token

    def get(self, path: str) -> tuple[int, bytes]:
        status, body = self._get(path)
        if status == 401:  # the token was refused (IMDS restarted, clock jump): a new one, once
            self.token = None
            status, body = self._get(path)
        return status, body

    def _get(self, path: str) -> tuple[int, bytes]:
        return self.request(f"{self.base}{path}", "GET", {TOKEN_HEADER: self._token()}, self.timeout)


def list_hooks(directory: str, log: Log) -> list[str]:
    """Executables in directory, sorted; unsafe or leftover files are skipped, and said so."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log(f"spot: hooks in {directory} unreadable: {describe_error(exc)}")
        return []
    hooks = []
    for name in names:
        if name.startswith(".") or name.endswith(HOOK_SKIP_SUFFIXES):
            continue
        path = os.path.join(directory, name)
        try:
            info = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
            continue
        why = None
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            why = "group- or world-writable"
        elif info.st_uid not in (0, os.geteuid()):
            why = f"owned by uid {info.st_uid}"
        if why:
            log(f"spot: hook {clean(name, 60)} skipped: {why}")
            continue
        hooks.append(path)
    return hooks


def run_hook(path: str, env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """(exit status or None on timeout, output). A hook that hangs is killed with everything it started."""
    try:
        proc = subprocess.Popen(
            [path],
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return 127, describe_error(exc)
    try:
        out, _unused = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _unused = proc.communicate()
        return None, out.decode("utf-8", "replace")


def run_hooks(directory: str, env_extra: dict[str, str], timeout: float, log: Log) -> None:
    hooks = list_hooks(directory, log)
    if not hooks:
        log(f"spot: no hooks in {directory}")
    env = dict(os.environ)
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(env_extra)
    for path in hooks:
        started = time.monotonic()
        rc, out = run_hook(path, env, timeout)
        took = f"{time.monotonic() - started:.1f} s"
        result = f"killed after {fmt_duration(timeout)}" if rc is None else f"exit {rc} in {took}"
        tail = clean(out, 200)
        log(f"spot: hook {os.path.basename(path)}: {result}" + (f": {tail}" if tail else ""))


class SpotWatcher:
    """Polls IMDS for the spot interruption notice and the rebalance recommendation; acts once on each."""

    def __init__(
        self,
        client: ImdsClient,
        *,
        interval: float,
        hooks_dir: str,
        hook_timeout: float,
        log: Log,
        wall: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        max_interval: float = IMDS_BACKOFF_CAP_S,
        log_every: float = 600.0,
    ):
        self.client, self.interval, self.hooks_dir, self.hook_timeout = client, interval, hooks_dir, hook_timeout
        self.log, self.wall, self.clock, self.log_every = log, wall, clock, log_every
        self.backoff = Backoff(interval, max_interval)
        self.seen: set[str] = set()
        self.hook_threads: list[threading.Thread] = []
        self._failing_logged_at: float | None = None

    @property
    def done(self) -> bool:
        return self.seen >= set(SPOT_PATHS)

    def poll_once(self) -> float:
        """Ask once; the seconds to wait before the next time (longer while IMDS does not answer)."""
        now = self.clock()
        try:
            for kind, path in SPOT_PATHS.items():
                if kind in self.seen:
                    continue
                status, body = self.client.get(path)
                if status == 200:
                    self._notice(kind, body)
                elif status != 404:
                    raise ImdsError(f"{path} answered HTTP {status}")
        except (OSError, http.client.HTTPException, ImdsError) as exc:
            delay = self.backoff.failure(now)
            if self._failing_logged_at is None or now - self._failing_logged_at >= self.log_every:
                self._failing_logged_at = now
                why, wait = describe_error(exc), fmt_duration(delay)
                self.log(f"spot: metadata service not answering ({why}); next try in {wait}")
            return delay
        if self._failing_logged_at is not None:
            self.log("spot: metadata service answers again")
            self._failing_logged_at = None
        self.backoff.success()
        return self.interval

    def run(self, stop: threading.Event) -> None:
        self.log(f"spot: watching {self.client.base} every {fmt_duration(self.interval)}")
        while not stop.is_set() and not self.done:
            try:
                delay = self.poll_once()
            except Exception as exc:  # a surprise must not end the watching for good
                delay = self.backoff.failure(self.clock())
                self.log(
                    f"spot: unexpected {type(exc).__name__}: {clean(str(exc), 120)}; next try in {fmt_duration(delay)}"
                )
            stop.wait(delay)
        if self.done:
            self.log("spot: both notices seen; the watcher stops")

    def _notice(self, kind: str, body: bytes) -> None:
        self.seen.add(kind)
        try:
            info = json.loads(body)
        except ValueError:
            info = {}
        info = info if isinstance(info, dict) else {}
        if kind == "instance-action":
            action, when = clean(str(info.get("action", "?")), 20), clean(str(info.get("time", "?")), 40)
            self.log(f"spot: interruption notice: AWS will {action} this box at {when}")
            self.wall(f"gpubox: AWS will {action} this spot box at {when} (about 2 minutes). Save your work now.")
        else:
            action, when = "", clean(str(info.get("noticeTime", "?")), 40)
            self.log(f"spot: rebalance recommendation at {when}: AWS may interrupt this box soon")
            self.wall("gpubox: AWS says this spot box is at elevated risk of interruption. Save your work.")
        env = {
            "GPUBOX_NOTICE_KIND": kind,
            "GPUBOX_NOTICE_ACTION": action,
            "GPUBOX_NOTICE_TIME": when,
            "GPUBOX_NOTICE_JSON": clean(body.decode("utf-8", "replace"), 2000),
        }
        # a thread: the watcher goes on polling (a rebalance's hooks must not delay the interruption notice)
        thread = threading.Thread(
            target=run_hooks, args=(self.hooks_dir, env, self.hook_timeout, self.log), name=f"hooks-{kind}", daemon=True
        )
        self.hook_threads.append(thread)
        thread.start()


# --- the agent: wiring ------------------------------------------------------------------------------------


def seconds_since_system_start(proc_root: str = "/proc") -> float:
    """Seconds since PID 1 started (the boot on a VM, the container's start in a container); 0 if unknown."""
    try:
        with open(os.path.join(proc_root, "uptime"), encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    try:
        with open(os.path.join(proc_root, "1", "stat"), encoding="utf-8", errors="replace") as handle:
            start_ticks = int(handle.read().rpartition(")")[2].split()[19])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return uptime


def self_usage() -> dict[str, float]:
    """This process's resident memory (KiB, from /proc/self/status) and CPU time (s)."""
    usage: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    usage[line.split(":")[0].lower() + "_kib"] = float(line.split()[1])
    except OSError:
        pass
    times = os.times()
    usage["cpu_s"] = round(times.user + times.system, 3)
    return usage


def write_status(path: str, payload: dict) -> None:
    """Atomically, so gpubox-hold never reads half a file."""
    if not path:
        return
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".autostop.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        pass  # the status file is a convenience; the journal has every decision


def prepare_hold_dir(path: str, log: Log) -> None:
    """Make the hold directory world-writable and sticky when it is missing (as root, at start)."""
    if os.path.isdir(path):
        mode = os.stat(path).st_mode
        if mode & 0o1777 != 0o1777:
            log(f"note: {path} is mode {stat.S_IMODE(mode):o}, not 1777: users may be unable to set holds")
        return
    try:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o1777)
    except OSError as exc:
        log(f"note: cannot create {path}: {describe_error(exc)}; holds are off")


def describe_settings(s: Settings) -> str:
    """The start line: what this agent watches, and its limits."""
    names = {
        "jupyter": f"jupyter ({s.jupyter_url})" if s.jupyter_url else "",
        "gpu": f"gpu>{fmt_number(s.gpu_threshold)}%",
        "ssh": "ssh",
        "cpu": f"cpu>{fmt_number(s.cpu_threshold)}%",
        "hold": f"hold ({s.hold_dir})",
        "job": f"job ({s.jobs_dir})",
    }
    watched = [names[n] for n in SIGNALS if n in s.enabled and names[n]]
    idle = f"idle_minutes {fmt_number(s.idle_minutes)}" if s.idle_minutes > 0 else "idle stop off"
    cap = f"max_hours {fmt_number(s.max_hours)}" if s.max_hours > 0 else "max_hours off"
    spot = f", spot notices every {fmt_duration(s.spot_poll_seconds)}" if s.spot else ""
    return (
        f"start: {idle}, grace {fmt_duration(s.grace_minutes * 60)}, {cap}, poll {fmt_duration(s.poll_seconds)},"
        f" signals: {', '.join(watched) or 'none'}{spot}"
    )


def make_logger(stream=None) -> Log:
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            print(line, file=stream or sys.stdout, flush=True)

    return log


def make_wall(settings: Settings, log: Log, runner: Runner = run_command) -> Callable[[str], None]:
    def wall(message: str) -> None:
        if not settings.wall_command.strip():
            return
        rc, out = runner(shlex.split(settings.wall_command), stdin_text=message + "\n", timeout=15)
        if rc != 0:
            log(f"note: wall failed (exit {rc}): {clean(out, 120)}")

    return wall


def run_agent(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    wait: Callable[[float], object] | None = None,
    log: Log | None = None,
    probes: Probes | None = None,
    runner: Runner = run_command,
    since_boot: float | None = None,
) -> int:
    """The agent's loop until stop is set: probe, decide, log, warn, power off, keep the status file."""
    stop = stop or threading.Event()
    wait = wait or stop.wait
    log = log or make_logger()
    wall = make_wall(settings, log, runner)
    started = clock()
    boot = seconds_since_system_start() if since_boot is None else since_boot
    decider = Autostop(settings, started, boot)
    log(describe_settings(settings))
    if "hold" in settings.enabled:
        prepare_hold_dir(settings.hold_dir, log)
    if settings.spot:
        watcher = SpotWatcher(
            ImdsClient(settings.metadata_url),
            interval=settings.spot_poll_seconds,
            hooks_dir=settings.interrupt_dir,
            hook_timeout=settings.interrupt_timeout,
            log=log,
            wall=wall,
        )
        threading.Thread(target=watcher.run, args=(stop,), name="spot", daemon=True).start()
    probes = probes or Probes(settings, clock, wall_clock)
    last_line = ""
    while not stop.is_set():
        now = clock()
        readings = probes.collect() if decider.wants_readings else []
        decision = decider.step(now, readings)
        last_line = decision.line or last_line
        if decision.log:
            log(decision.line)
        if decision.wall:
            wall(decision.wall)
        if decision.poweroff:
            rc, out = runner(shlex.split(settings.poweroff_command), timeout=60)
            if rc != 0:
                log(f"poweroff command failed (exit {rc}): {clean(out, 160)}; trying again in 5 min")
        deadline = wall_clock() + (decider.deadline - now) if decider.phase == "warning" else None
        write_status(
            settings.status_file,
            {"time": wall_clock(), "phase": decider.phase, "line": last_line, "poweroff_at": deadline}
            | {"idle_minutes": settings.idle_minutes, "max_hours": settings.max_hours}
            | self_usage(),
        )
        wait(decider.next_wait(clock()))
    log("stop: agent exits")
    return 0


# --- gpubox-hold --------------------------------------------------------------------------------------------


def parse_duration(text: str) -> int:
    """Seconds of '2h', '30m', '90m', '1h30m' (or '1h 30m'); ValueError with a message for anything else."""
    compact = text.strip().lower().replace(" ", "")
    match = re.fullmatch(r"(?:(\d{1,4})h)?(?:(\d{1,5})m(?:in)?)?", compact)
    if not compact or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: give hours and/or minutes, e.g. 2h, 30m, 1h30m (or 'off')")
    seconds = int(match.group(1) or 0) * 3600 + int(match.group(2) or 0) * 60
    if seconds <= 0:
        raise ValueError("a hold lasts at least 1 minute (to end one: gpubox-hold off)")
    return seconds


def write_hold(hold_dir: str, uid: int, until: int) -> str:
    """The user's hold file, replaced atomically: a temporary dotfile (which the agent skips), then rename."""
    target = os.path.join(hold_dir, str(uid))
    fd, tmp = tempfile.mkstemp(prefix=f".{uid}.", dir=hold_dir)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(f"{until}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def _hold_status(settings: Settings, now: float, out) -> int:
    holds, problems = read_holds(settings.hold_dir, now, settings.max_hold_hours * 3600)
    for hold in sorted(holds, key=lambda h: h.until):
        print(f"hold by {hold.user} until {fmt_clock(hold.until)} ({fmt_duration(hold.until - now)} left)", file=out)
    if not holds:
        print("no hold: the box powers off when idle (gpubox-hold 2h keeps it up for 2 hours)", file=out)
    for problem in problems:
        print(problem, file=out)
    try:
        with open(settings.status_file, encoding="utf-8") as handle:
            status = json.load(handle)
        when = fmt_clock(float(status["time"]))
        print(f"autostop at {when}: {clean(str(status.get('line', '')), 300)}", file=out)
        if status.get("poweroff_at"):
            print(f"power-off due at {fmt_clock(float(status['poweroff_at']))}", file=out)
    except (OSError, ValueError, KeyError, TypeError):
        print("autostop: no status (is the gpubox-autostop service running?)", file=out)
    if settings.max_hours > 0:
        print(f"max_hours {fmt_number(settings.max_hours)}: the box stops after that long, hold or not", file=out)
    return 0


def hold_command(
    args: Sequence[str],
    settings: Settings,
    *,
    now: float | None = None,
    uid: int | None = None,
    out=None,
    err=None,
) -> int:
    """gpubox-hold [DURATION | off | status]: exit 0, 1 (could not) or 2 (not understood)."""
    out, err = out or sys.stdout, err or sys.stderr
    now = time.time() if now is None else now
    uid = os.getuid() if uid is None else uid
    word = "".join(args).strip().lower()
    if word in ("", "status"):
        return _hold_status(settings, now, out)
    if not os.path.isdir(settings.hold_dir):
        print(f"gpubox-hold: {settings.hold_dir} is missing: is gpubox autostop installed?", file=err)
        return 1
    mine = os.path.join(settings.hold_dir, str(uid))
    if word in ("off", "clear", "none", "cancel"):
        try:
            os.unlink(mine)
            print("hold removed: the box powers off when idle", file=out)
        except FileNotFoundError:
            print("you had no hold", file=out)
        except OSError as exc:
            print(f"gpubox-hold: cannot remove {mine}: {describe_error(exc)}", file=err)
            return 1
        others = [h for h in read_holds(settings.hold_dir, now, settings.max_hold_hours * 3600)[0] if h.uid != uid]
        for hold in others:
            print(f"still held by {hold.user} until {fmt_clock(hold.until)}", file=out)
        return 0
    try:
        seconds = parse_duration(word)
    except ValueError as exc:
        print(f"gpubox-hold: {exc}", file=err)
        return 2
    if seconds > settings.max_hold_hours * 3600:
        print(f"gpubox-hold: at most {fmt_duration(settings.max_hold_hours * 3600)} (max_hold_hours)", file=err)
        return 2
    until = int(now + seconds)
    try:
        write_hold(settings.hold_dir, uid, until)
    except OSError as exc:
        print(f"gpubox-hold: cannot write {mine}: {describe_error(exc)}", file=err)
        return 1
    print(f"hold set: the box stays up until {fmt_clock(until)} ({fmt_duration(seconds)}), even when idle", file=out)
    print("end it early with: gpubox-hold off", file=out)
    if settings.max_hours > 0:
        print(f"max_hours {fmt_number(settings.max_hours)} still applies: a hold does not extend it", file=out)
    return 0


# --- command line -------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpubox-autostop", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the agent"), ("check-config", "check the settings and print them")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", help=f"settings file (default {CONFIG_FILE})")
        for f in fields(Settings):
            cmd.add_argument("--" + f.name.replace("_", "-"), dest=f.name, metavar="VALUE", default=None)
    hold = sub.add_parser("hold", help="keep the box up for a while: 2h, 30m, 1h30m; off; nothing for status")
    hold.add_argument("--config", help=f"settings file (default {CONFIG_FILE})")
    hold.add_argument("duration", nargs="*")
    status = sub.add_parser("status", help="the holds and the agent's last decision")
    status.add_argument("--config", help=f"settings file (default {CONFIG_FILE})")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.path.basename(prog or sys.argv[0]) == "gpubox-hold":
        argv = ["hold", *argv]
    args = _parser().parse_args(argv)
    flags = {f.name: getattr(args, f.name) for f in fields(Settings) if getattr(args, f.name, None) is not None}
    try:
        settings = load_settings(args.config, flags)
    except ConfigError as exc:
        print(f"gpubox-autostop: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        for key, value in asdict(settings).items():
            shown = str(value).lower() if isinstance(value, bool) else value
            print(f"{key} = {fmt_number(shown) if isinstance(shown, float) else shown}")
        return 0
    if args.command in ("hold", "status"):
        return hold_command(getattr(args, "duration", []), settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return run_agent(settings, stop=stop)


if __name__ == "__main__":
    sys.exit(main())
