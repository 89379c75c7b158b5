#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""path_state: the files and directories a role owns on a box, read in one run.

Two ways to run it: as an Ansible module (AnsiballZ, ~0.25 s on a box), or, as the project's action plugin of the
same name does (plugins/action/path_state.py), as a plain Python script: `python3 -c SOURCE PATHS_JSON` prints the
result as JSON, without importing Ansible on the box (one SSH exchange, ~0.05 s)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: path_state
short_description: Read the state of a list of paths on the box in one run
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - For each path that exists, its type, mode, owner, group, size and, for a regular file, the SHA-1 of its content,
    for a link its target (C(lnk_target)), in the shape ansible.builtin.find returns (C(files)). A path that does
    not exist is not listed (on a first converge most are missing, which is the answer, not a warning). Links are
    not followed.
  - The filter path_drifts (plugins/filter/files.py) compares an entry with what a file, copy or template task would
    leave, so a role runs one module for all its paths instead of a stat, or a checksum and a file run, per path.
  - With I(list), the entries of those folders too (each in the same shape, not following links; a folder that does
    not exist lists nothing), so a role finds there what it did not write (a drop-in of its unit) in the same run.
  - Reads only; runs in check mode too.
  - The project's action plugin of the same name runs this file as a plain Python script over the connection (no
    module payload, no Ansible imports on the box); without it, the module runs as any other.
options:
  paths:
    description: Absolute paths.
    type: list
    elements: str
    required: true
  list:
    description: Absolute paths of folders whose entries are described as well (after I(paths), sorted by name).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Read the agent's files as they are
  path_state:
    paths: [/etc/gpubox, /etc/gpubox/autostop.conf]
  register: autostop_found

- name: Read the unit's file and what its drop-in folder holds
  path_state:
    paths: [/etc/systemd/system/jupyter.service]
    list: [/etc/systemd/system/jupyter.service.d]
  register: jupyter_found
"""

RETURN = r"""
files:
  description: One entry per path that exists (path, isreg, isdir, islnk, mode as "0644", uid, gid, pw_name, gr_name,
    size; checksum for a regular file, lnk_target for a link), then one per entry of the folders in I(list).
  type: list
  elements: dict
  returned: always
"""

import grp  # noqa: E402 - Ansible modules document themselves before their imports
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import stat  # noqa: E402
import sys  # noqa: E402


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return ""


def describe(path: str) -> dict | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    entry = {
        "path": path,
        "isreg": stat.S_ISREG(st.st_mode),
        "isdir": stat.S_ISDIR(st.st_mode),
        "islnk": stat.S_ISLNK(st.st_mode),
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "uid": st.st_uid,
        "gid": st.st_gid,
        "pw_name": _name(pwd.getpwuid, st.st_uid),
        "gr_name": _name(grp.getgrgid, st.st_gid),
        "size": st.st_size,
    }
    if entry["islnk"]:
        entry["lnk_target"] = os.readlink(path)
    if entry["isreg"]:
        digest = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        entry["checksum"] = digest.hexdigest()
    return entry


def entries(folder: str) -> list[str]:
    """The paths in `folder`, sorted; none when it is missing or not a folder (a link to one is not followed)."""
    if not os.path.isdir(folder) or os.path.islink(folder):
        return []
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))]


def read(paths: list[str], folders: list[str] | None = None) -> dict:
    """The task's result: {"changed": false, "files": [...]}, or {"failed": true, "msg": ...}."""
    paths = [os.path.normpath(p) for p in paths]
    folders = [os.path.normpath(p) for p in folders or []]
    bad = [p for p in paths + folders if not p.startswith("/")]
    if bad:
        return {"failed": True, "msg": f"path_state: paths must be absolute, got {bad}"}
    try:
        listed = [path for folder in dict.fromkeys(folders) for path in entries(folder)]
        files = [entry for entry in map(describe, dict.fromkeys(paths + listed)) if entry]
    except OSError as err:
        return {"failed": True, "msg": f"path_state: cannot read {err.filename}: {err.strerror}"}
    return {"changed": False, "files": files}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "str", "required": True},
            "list": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    result = read(module.params["paths"], module.params["list"])
    if result.get("failed"):
        module.fail_json(msg=result["msg"])
    module.exit_json(**result)


if __name__ == "__main__":
    if sys.argv[0] == "-c":  # `python3 -c SOURCE PATHS_JSON [FOLDERS_JSON]`, as the action plugin runs it
        # a plain script there, not a module run: its answer is its output
        print(  # pylint: disable=ansible-bad-function
            json.dumps(read(json.loads(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else []))
        )
    else:
        main()
