# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File filters.

`file_mode`: the permission bits of a file or directory on this machine, as Ansible writes them ("0400"), or "" when
there is none (or it is something else, a link included: links are not followed). For roles that run on the
controller (connection local): one os.stat instead of a module run.

`path_drifts`: whether a file or directory on a box differs from what a file/copy/template task would leave there,
judged from what the module path_state (plugins/modules/path_state.py) read: one run for all of a role's paths. A
no-op converge then runs one module for a role's files instead of two per template and one per directory; the task
that writes a path runs only when it drifted (missing, another type, content, mode, owner, group, a link's target).
Anything it cannot judge counts as drift, so the task runs and decides.

`drifted_paths`: of a role's table of what it writes (path, state, mode, owner, group, content, content_file or src:
the arguments of path_drifts), the paths that drift. A role writes only those entries (one gpubox.gpubox.path_write
loop over them): a no-op skips one task, not one per file.

`unit_drop_in_dirs`: the folders where a drop-in of a systemd unit changes it and that the machine's administrator
(not its packages) owns: /etc and /run, `systemctl edit`'s and `systemctl set-property`'s (system.control) places.

`foreign_paths`: what a role did not write in the folders path_state listed for it (`list`): each entry matching a
pattern (drop-ins are `*.conf`) that is neither in the role's table nor allowed by name, as an entry of that table
to remove (state absent, with the handlers that apply the change). A role appends them to what it writes: a rerun
removes them, a check reports them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat

KINDS = {"file": "isreg", "directory": "isdir", "link": "islnk"}  # and "absent": drifts when it is there


def file_mode(path) -> str:
    try:
        st = os.lstat(os.path.expanduser(str(path)))
    except OSError:
        return ""
    return f"{stat.S_IMODE(st.st_mode):04o}" if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else ""


def _mode(value) -> int | None:
    try:
        return int(str(value), 8)
    except ValueError:
        return None


def path_drifts(
    found, path, state="file", mode=None, owner=None, group=None, content=None, src=None, content_file=None
) -> bool:
    """True unless `found` (a registered path_state or find result) lists `path` as the `state` it should be, with
    that `mode`, `owner`, `group`, and, for a file, the SHA-1 of `content` or of the bytes of `content_file` (a file on
    this machine whose bytes are the wanted content: a binary file such as a zipapp; an unreadable one drifts), for
    a link the target `src` (each when given; a link's own mode, owner and group are not compared). With state
    "absent": true when it is there."""
    files = found.get("files") if isinstance(found, dict) else None
    have = next((f for f in files or [] if isinstance(f, dict) and f.get("path") == str(path)), None)
    if state == "absent":
        return have is not None
    if have is None or state not in KINDS or not have.get(KINDS[state]):
        return True
    if state == "link":
        return src is not None and have.get("lnk_target") != str(src)
    if mode is not None and (_mode(mode) is None or _mode(mode) != _mode(have.get("mode", ""))):
        return True
    if owner is not None and have.get("pw_name") != str(owner):
        return True
    if group is not None and have.get("gr_name") != str(group):
        return True
    if content is not None:
        return have.get("checksum") != hashlib.sha1(str(content).encode()).hexdigest()
    if content_file is not None:
        return have.get("checksum") != _file_sha1(content_file)
    return False


def _file_sha1(path) -> str | None:
    digest = hashlib.sha1()
    try:
        with open(os.path.expanduser(str(path)), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


FIELDS = ("state", "mode", "owner", "group", "content", "content_file", "src")


def drifted_paths(found, wanted) -> list[str]:
    """The paths of `wanted` (a list of {path, state, mode, owner, group, content, content_file, src}, state "file"
    when not given) that path_drifts finds drifting in `found`."""
    return [
        str(w["path"]) for w in wanted or [] if path_drifts(found, w["path"], **{k: w[k] for k in FIELDS if k in w})
    ]


def unit_drop_in_dirs(unit) -> list[str]:
    """The administrator's drop-in folders of `unit` ("jupyter" or "jupyter.service")."""
    name = str(unit) if "." in str(unit) else f"{unit}.service"
    return [
        f"{root}/{name}.d"
        for root in (
            "/etc/systemd/system",
            "/etc/systemd/system.control",
            "/run/systemd/system",
            "/run/systemd/system.control",
        )
    ]


def foreign_paths(found, folders, wanted=None, allowed=None, notify=None, pattern="*.conf") -> list[dict]:
    """The entries of `found` (a path_state result with `list`) directly in one of `folders`, whose name matches
    `pattern` and is not in `allowed`, and whose path is not one of `wanted` (the role's table): each as
    {path, state: absent, notify}."""
    files = found.get("files") if isinstance(found, dict) else None
    homes = {posixpath.normpath(str(f)) for f in folders or []}
    own = {posixpath.normpath(str(w["path"])) for w in wanted or [] if isinstance(w, dict) and "path" in w}
    kept = {str(name) for name in allowed or []}
    return [
        {"path": path, "state": "absent", "notify": list(notify or [])}
        for path in (str(f.get("path", "")) for f in files or [] if isinstance(f, dict))
        if posixpath.dirname(path) in homes
        and fnmatch.fnmatchcase(posixpath.basename(path), pattern)
        and posixpath.basename(path) not in kept
        and path not in own
    ]


class FilterModule:
    def filters(self):
        return {
            "file_mode": file_mode,
            "path_drifts": path_drifts,
            "drifted_paths": drifted_paths,
            "unit_drop_in_dirs": unit_drop_in_dirs,
            "foreign_paths": foreign_paths,
        }
