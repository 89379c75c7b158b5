"""Small helpers every other module uses: how durations, numbers and clock times are written for a person, one clean
log line from untrusted text, ISO 8601 times, reading a small file without following a link, one HTTP request, one
short command, and the backoff for a source that does not answer."""

from __future__ import annotations

import calendar
import http.client
import math
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

Log = Callable[[str], None]


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
