"""Jinja tests for the names gpubox writes into tags, filters, file names, ssh configs and inventories; the one home
of what those names may look like (plugins/filter/ssh_entries.py imports the same patterns).

`literal_name`: a project, key or image name: letters, digits, '.', '_', '-', no wildcard, '/' or '..'.
`box_name`: a box name, which is also an ssh alias and an inventory host name: like a literal name, without '.'
(it would look like a real host name).
`login_name`: a login user on a box (lowercase, as useradd accepts by default).
Every pattern matches the whole value: a trailing newline does not slip through.
"""

from __future__ import annotations

import re

LITERAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BOX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
LOGIN = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def _fits(pattern: re.Pattern, value) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def literal_name(value) -> bool:
    return _fits(LITERAL, value) and ".." not in value


def box_name(value) -> bool:
    return _fits(BOX, value)


def login_name(value) -> bool:
    return _fits(LOGIN, value)


class TestModule:
    def tests(self):
        return {"literal_name": literal_name, "box_name": box_name, "login_name": login_name}
