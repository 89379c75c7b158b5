# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests `autostop_within`: whether a value is a number the autostop agent accepts for a setting (its range in
plugins/module_utils/autostop_limits.py, the agent's own; nan and inf never are); and `autostop_stop_at`: whether a
value is a stop_at the agent accepts ("" for none, "20:00", "20:00 Europe/Berlin": the same parse_stop_at)."""

from __future__ import annotations

import math

from ansible.errors import AnsibleFilterError
from ansible_collections.gpubox.gpubox.plugins.module_utils.autostop_limits import RANGES, parse_stop_at


def autostop_within(value, name) -> bool:
    """`value is gpubox.gpubox.autostop_within('idle_minutes')`: a number (or a string of one) in the range."""
    if name not in RANGES:
        raise AnsibleFilterError(f"autostop_within knows {', '.join(RANGES)}, not {name!r}")
    try:  # false is 0, as the float filter reads it (idle_minutes: false is off)
        number = float(value)
    except (TypeError, ValueError):
        return False
    low, high = RANGES[name]
    return math.isfinite(number) and low <= number <= high


def autostop_stop_at(value) -> bool:
    """`value is gpubox.gpubox.autostop_stop_at`: a string the agent reads as a daily stop time, or "" (none)."""
    if not isinstance(value, str):
        return False
    try:
        parse_stop_at(value)
    except ValueError:
        return False
    return True


class TestModule:
    def tests(self):
        return {"autostop_within": autostop_within, "autostop_stop_at": autostop_stop_at}
