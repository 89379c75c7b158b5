# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ranges of the autostop agent's numeric settings: their one home, for the box and the controller alike.

The agent carries this file as its own module gpubox_autostop.limits (roles/autostop/files/gpubox_autostop/limits.py
is a link to it, and the zipapp the role installs holds its content): it refuses a setting outside these ranges. On
the controller, the lookup autostop_limits and the test autostop_within read them, for the autostop role's checks
and for ec2_preflight's, which refuse a value before it reaches a box. Standard library only, and no Ansible: it
runs on the box too.
"""

from __future__ import annotations

import datetime
import zoneinfo

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
    "on_stop_timeout": (1, 3600),
}

# stop_at: the daily stop's clock time, "20:00" (UTC) or "20:00 Europe/Berlin" (an IANA zone the box's tzdata knows).
STOP_AT_EXAMPLE = "20:00 Europe/Berlin"


def parse_stop_at(text):
    """(hour, minute, zone name) of a stop_at value, None for "" (off), or ValueError naming what is wrong.

    Strict on purpose: "8pm", "20.00" or "25:00" must not become some other time. The zone is looked up with
    zoneinfo (so the box's or the controller's tzdata must know it); none means UTC.
    """
    text = str(text).strip()
    if not text:
        return None
    clock, _sep, zone = text.partition(" ")
    zone = zone.strip() or "UTC"
    hours, sep, minutes = clock.partition(":")
    if not (
        sep and len(hours) == 2 and len(minutes) == 2 and (hours + minutes).isascii() and (hours + minutes).isdigit()
    ):
        raise ValueError(f"{text!r} is not HH:MM (24 h) with an optional time zone, e.g. {STOP_AT_EXAMPLE!r}")
    if int(hours) > 23 or int(minutes) > 59:
        raise ValueError(f"{text!r}: {clock} is not a time of day (00:00 to 23:59)")
    try:
        zoneinfo.ZoneInfo(zone)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):
        raise ValueError(
            f"{text!r}: unknown time zone {zone!r} (an IANA name such as Europe/Berlin, or none for UTC)"
        ) from None
    return int(hours), int(minutes), zone


def next_stop_at(after, hour, minute, zone):
    """Unix seconds of the first hour:minute in zone strictly after `after` (Unix seconds).

    A time the zone skips (a spring-forward gap) falls after the gap; one it repeats (fall back) is its first.
    """
    tz = zoneinfo.ZoneInfo(zone)
    day = datetime.datetime.fromtimestamp(after, tz).date()
    for offset in range(3):
        local = datetime.datetime.combine(day + datetime.timedelta(days=offset), datetime.time(hour, minute), tz)
        when = local.timestamp()
        if when > after:
            return when
    raise AssertionError("unreachable: a day has every clock time")  # pragma: no cover
