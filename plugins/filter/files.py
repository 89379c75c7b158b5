"""Filter `file_mode`: the permission bits of a file or directory on this machine, as Ansible writes them ("0400"),
or "" when there is none (or it is something else, a link included: links are not followed). For roles that run on
the controller (connection local): one os.stat instead of a module run."""

from __future__ import annotations

import os
import stat


def file_mode(path) -> str:
    try:
        st = os.lstat(os.path.expanduser(str(path)))
    except OSError:
        return ""
    return f"{stat.S_IMODE(st.st_mode):04o}" if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else ""


class FilterModule:
    def filters(self):
        return {"file_mode": file_mode}
