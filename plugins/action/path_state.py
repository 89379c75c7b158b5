# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""path_state, run cheaply: the module's own file (plugins/modules/path_state.py) as a plain Python script over the
connection, `python3 -c SOURCE PATHS_JSON FOLDERS_JSON`, instead of as a module.

A module run ships a zipped payload and imports Ansible's module_utils on the box: ~0.25 s of the box's CPU per run,
and each role reads its paths on every converge. The reading code needs only Python's standard library, so this runs
it as one command (~0.05 s), as root where the task becomes root, and returns the module's result unchanged. It only
reads, so it runs in check mode too.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = {
    "paths": {"type": "list", "elements": "str", "required": True},
    "list": {"type": "list", "elements": "str", "default": []},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _unused, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(
            "gpubox.gpubox.path_state", collection_list=self._task.collections
        )
        if not found.resolved:
            raise AnsibleActionFail("path_state: the collection gpubox.gpubox has no module path_state")
        source = Path(found.plugin_resolved_path).read_text()
        command = shlex.join(
            [self._python(task_vars or {}), "-c", source, json.dumps(args["paths"]), json.dumps(args["list"])]
        )
        run = self._low_level_execute_command(command, sudoable=True)
        # The answer is the last line (a terminal, if one was asked for, mixes in what went to stderr).
        lines = run.get("stdout", "").strip().splitlines()
        try:
            answer = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise AnsibleActionFail(
                f"path_state: no answer from the box (rc {run.get('rc')}): {run.get('stderr', '').strip()}"
            ) from None
        result.update(answer)
        return result

    def _python(self, task_vars: dict) -> str:
        """The box's Python: ansible_python_interpreter where set to a path, else the one found on an earlier module
        run (a cached fact), else python3."""
        python = self._templar.template(task_vars.get("ansible_python_interpreter", ""))
        if python and not str(python).startswith("auto"):
            return str(python)
        return str(task_vars.get("ansible_facts", {}).get("discovered_interpreter_python") or "python3")
