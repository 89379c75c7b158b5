# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""path_write: make one path what a role's table of files says (plugins/modules/path_write.py documents it).

A role declares each path it writes once, in its `<role>_files` table; the filter drifted_paths reads the same table
to find what differs, and this writes an entry of it with Ansible's own modules: the copy action for a file (its
content, or the bytes of a controller file), the file module for a directory, a link or an absent path. So the
table's fields are the one description of the path, for the check and for the write.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

STATES = ("file", "directory", "link", "absent")
ARGUMENT_SPEC = {
    "path": {"type": "str", "required": True},
    "state": {"type": "str", "default": "file", "choices": list(STATES)},
    "mode": {"type": "str"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "content": {"type": "str", "no_log": False},
    "content_file": {"type": "str"},
    "src": {"type": "str"},
    "validate": {"type": "str"},
    "secret": {"type": "bool", "default": False},
    # the handlers of the entry: the task notifies those of the entries it writes, not this action
    "notify": {"type": "list", "elements": "str", "default": []},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _unused, want = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        state, path = want["state"], want["path"]
        if not path.startswith("/"):
            raise AnsibleActionFail(f"path_write: {path!r} is not an absolute path")
        attributes = {k: want[k] for k in ("mode", "owner", "group") if want[k] is not None}
        if state == "file":
            if (want["content"] is None) == (want["content_file"] is None):
                raise AnsibleActionFail(f"path_write: {path}: give content or content_file (one of them)")
            written = self._copy(path, want, attributes, task_vars)
        else:
            args = {"path": path, "state": state}
            if state == "link":
                if not want["src"]:
                    raise AnsibleActionFail(f"path_write: {path}: a link needs src (its target)")
                args.update(src=want["src"], force=True)
            if state in ("directory", "link"):
                args.update(attributes)
            written = self._execute_module("ansible.legacy.file", module_args=args, task_vars=task_vars)
        result.update(written)
        if want["secret"]:
            # the content is a credential: neither the result nor a diff may show it
            result.pop("diff", None)
            result["_ansible_no_log"] = True
        return result

    def _copy(self, path: str, want: dict, attributes: dict, task_vars) -> dict:
        """The copy action (Ansible's own, as the template action calls it), with the content or the controller file."""
        task = self._task.copy()
        task.args = {"dest": path, **attributes}
        if want["content"] is not None:
            task.args["content"] = want["content"]
        else:
            task.args["src"] = want["content_file"]
        if want["validate"]:
            task.args["validate"] = want["validate"]
        if want["secret"]:
            task.diff = False
        copy = self._shared_loader_obj.action_loader.get(
            "ansible.legacy.copy",
            task=task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        return copy.run(task_vars=task_vars)
