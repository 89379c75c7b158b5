"""Holds: the files users keep in hold_dir (one per user, named by uid, holding the expiry as Unix seconds), read
here for the agent's hold probe with every check (owner, no link, size, max_hold_hours), and the command
gpubox-hold that writes, removes and shows them with what the agent last decided (its status file)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .settings import Settings
from .util import clean, describe_error, fmt_clock, fmt_duration, fmt_number, read_small_file


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
