# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""job_log: print a box's job log as it is read, over the box's ssh alias: `ssh ALIAS gpubox-job log [--follow] [JOB]`.

A module's output comes back only when it ends; a followed log must reach the terminal line by line while the job
runs. This action runs ssh on the controller and hands each line to Ansible's display as it arrives (from a worker,
display goes through the main process's queue, in order). The box's helper (roles/job/files/gpubox_job.py) ends a
follow when the job ends.
"""

from __future__ import annotations

import shlex
import subprocess

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

ARGUMENT_SPEC = {
    "box": {"type": "str", "required": True},
    "job": {"type": "str", "default": ""},
    "follow": {"type": "bool", "default": False},
    "ssh_config": {"type": "str", "required": True},
    "program": {"type": "str", "required": True},
    "connect_timeout": {"type": "int", "default": 20},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _unused, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        remote = [args["program"], "log", *(["--follow"] if args["follow"] else []), *filter(None, [args["job"]])]
        cmd = ["ssh", "-F", args["ssh_config"], "-o", "BatchMode=yes"]
        cmd += ["-o", f"ConnectTimeout={args['connect_timeout']}", "-T", "--", args["box"], shlex.join(remote)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise AnsibleActionFail(f"cannot run ssh: {exc}") from exc
        lines = 0
        for raw in proc.stdout:
            display.display(raw.decode("utf-8", "replace").rstrip("\n"))
            lines += 1
        error = proc.stderr.read().decode("utf-8", "replace").strip()
        rc = proc.wait()
        result.update(changed=False, rc=rc, lines=lines)
        if rc != 0:
            result["failed"] = True
            result["msg"] = (
                f"`ssh {args['box']} {shlex.join(remote)}` failed (exit {rc}): {error[-600:] or 'no message'}."
                f" Is the box up and its ssh alias in {args['ssh_config']}? (playbooks/list.yml; start.yml)"
            )
        return result
