# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpubox_setting: a project-wide setting exactly as the playbooks will see it, for the dynamic inventory.

An inventory source cannot read group_vars or -e, yet it must list the boxes of the same project and region that
the playbooks act on. This lookup reads the one home of those settings the way Ansible does: the group_vars/all
files next to each inventory source (in source order, files sorted, later wins), then -e extra vars on top.
Values must be literal there (a template cannot be evaluated before the inventory exists) and safe: a project
is a literal name, a region one that AWS has.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: gpubox_setting
short_description: gpubox_project or gpubox_region as the playbooks see them (group_vars/all, then -e)
description:
  - Reads the named settings from group_vars/all of every inventory source, then from -e extra vars.
  - Refuses a value that is templated, not a literal name (project) or not an AWS region (region).
options:
  _terms:
    description: gpubox_project and/or gpubox_region.
    required: true
"""

import os  # noqa: E402

from ansible import constants, context  # noqa: E402
from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible.utils.vars import load_extra_vars  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.names import LITERAL_TEXT, literal_name  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.plugin_utils.regions import aws_region  # noqa: E402

CHECKS = {
    "gpubox_project": LITERAL_TEXT,
    "gpubox_region": "an AWS region such as us-west-2",
}


def inventory_dirs() -> list[str]:
    """The directories whose group_vars Ansible reads: each inventory source, or the folder of a file source."""
    sources = context.CLIARGS.get("inventory") or constants.DEFAULT_HOST_LIST or []
    dirs = []
    for source in [s for entry in sources for s in str(entry).split(",") if s.strip()]:
        path = os.path.abspath(os.path.expanduser(source.strip()))
        if os.path.isdir(path):
            dirs.append(path)
        elif os.path.isfile(path):
            dirs.append(os.path.dirname(path))
    return dirs


def group_vars_files(directory: str) -> list[str]:
    """group_vars/all.{yml,yaml,json} and every file under group_vars/all/, in the order Ansible loads them."""
    base = os.path.join(directory, "group_vars")
    files = [os.path.join(base, f"all{ext}") for ext in ("", ".yml", ".yaml", ".json")]
    found = [f for f in files if os.path.isfile(f)]
    folder = os.path.join(base, "all")
    for root, subdirs, names in os.walk(folder):
        subdirs.sort()
        found += [
            os.path.join(root, n)
            for n in sorted(names)
            if not n.startswith(".") and os.path.splitext(n)[1] in ("", ".yml", ".yaml", ".json")
        ]
    return found


def valid(name: str, value) -> bool:
    return literal_name(value) if name == "gpubox_project" else aws_region(value)


# The inventory asks for each setting several times per load (every templated option, each time it is read): the
# files are read once per process, and again only when one of them changed.
_READ: dict[tuple, tuple[dict, dict]] = {}


class LookupModule(LookupBase):
    def _settings(self) -> tuple[dict, dict]:
        files = [path for directory in inventory_dirs() for path in group_vars_files(directory)]
        key = (
            tuple((path, os.stat(path).st_mtime_ns, os.stat(path).st_size) for path in files),
            repr(context.CLIARGS.get("extra_vars")),
        )
        if key not in _READ:
            settings: dict = {}
            origin: dict = {}
            for path in files:
                # No cache: Ansible's group_vars loading must not get this untrusted copy back (no template in it
                # would render then).
                data = self._loader.load_from_file(path, cache="none") or {}
                for name in CHECKS:
                    if isinstance(data, dict) and name in data:
                        settings[name], origin[name] = data[name], path
            extra = load_extra_vars(self._loader)
            for name in CHECKS:
                if name in extra:
                    settings[name], origin[name] = extra[name], "-e"
            _READ.clear()
            _READ[key] = (settings, origin)
        return _READ[key]

    def run(self, terms, variables=None, **kwargs):
        settings, origin = self._settings()
        values = []
        for term in terms:
            if term not in CHECKS:
                raise AnsibleError(f"gpubox_setting knows {', '.join(CHECKS)}, not {term!r}")
            if term not in settings:
                raise AnsibleError(f"{term} is set nowhere: set it in inventory/group_vars/all/gpubox.yml")
            value = settings[term]
            if isinstance(value, str) and ("{{" in value or "{%" in value):
                raise AnsibleError(
                    f"{term} is {value!r} in {origin[term]}: the dynamic inventory reads it before anything is "
                    f"templated, so it must be a literal value. Write the value itself there."
                )
            if not valid(term, value):
                raise AnsibleError(f"{term} is {value!r} (from {origin[term]}); it must be {CHECKS[term]}.")
            values.append(value)
        return values
