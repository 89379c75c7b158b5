# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the names gpubox writes into tags, filters, file names, ssh configs and inventories may look like: the one
home of these patterns, for modules and plugins alike.

`literal_name`: a project, key or image name: letters, digits, '.', '_', '-', no wildcard, '/' or '..'.
`box_name`: a box name, which is also an ssh alias and an inventory host name: like a literal name, without '.'
(it would look like a real host name).
`login_name`: a login user on a box (lowercase, as useradd accepts by default).
Every pattern matches the whole value: a trailing newline does not slip through."""

from __future__ import annotations

import re

LITERAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BOX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
LOGIN = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
LITERAL_TEXT = "a literal name of 1 to 64 letters, digits, '.', '_' or '-' (no wildcard, '/' or '..')"


def fits(pattern: re.Pattern, value) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def literal_name(value) -> bool:
    return fits(LITERAL, value) and ".." not in value


def box_name(value) -> bool:
    return fits(BOX, value)


def login_name(value) -> bool:
    return fits(LOGIN, value)
