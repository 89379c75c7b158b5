# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ranges of the autostop agent's numeric settings: their one home, for the box and the controller alike.

The agent carries this file as its own module gpubox_autostop.limits (roles/autostop/files/gpubox_autostop/limits.py
is a link to it, and the zipapp the role installs holds its content): it refuses a setting outside these ranges. On
the controller, the lookup autostop_limits and the test autostop_within read them, for the autostop role's checks
and for ec2_preflight's, which refuse a value before it reaches a box. Standard library only, and no Ansible: it
runs on the box too.
"""

from __future__ import annotations

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
