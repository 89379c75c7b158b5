#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The documentation of job_log, which runs on the controller as an action plugin (plugins/action/job_log.py): this
file has no code of its own."""

from __future__ import annotations

DOCUMENTATION = r"""
module: job_log
short_description: Print a box's job log line by line as it is read
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Runs C(ssh BOX PROGRAM log [--follow] [JOB]) on the controller and prints each line through Ansible's display as
    it arrives, so a followed log reaches the terminal while the job runs.
  - Fails with ssh's message when ssh does; reads only, so it runs in check mode too.
options:
  box:
    description: The box's ssh alias.
    type: str
    required: true
  job:
    description: The job; empty for the jobs' states and the newest one's last run.
    type: str
    default: ""
  follow:
    description: Follow the log until the job ends.
    type: bool
    default: false
  ssh_config:
    description: The ssh config file that has the box's alias.
    type: str
    required: true
  program:
    description: The job helper on the box (C(/usr/local/bin/gpubox-job)).
    type: str
    required: true
  connect_timeout:
    description: ssh's ConnectTimeout in seconds.
    type: int
    default: 20
"""

EXAMPLES = r"""
- name: Follow the job train
  gpubox.gpubox.job_log:
    box: d2l
    job: train
    follow: true
    ssh_config: ~/.ssh/gpubox/gpubox.conf
    program: /usr/local/bin/gpubox-job
"""

RETURN = r"""
rc:
  description: ssh's exit status.
  returned: always
  type: int
lines:
  description: How many lines were printed.
  returned: always
  type: int
"""
