#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The documentation of path_write, which runs on the controller as an action plugin (plugins/action/path_write.py):
this file has no code of its own."""

from __future__ import annotations

DOCUMENTATION = r"""
module: path_write
short_description: Make one path on the box what an entry of a role's table of files says
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - A role declares each path it writes once, as an entry of its C(<role>_files) table. The filter
    C(gpubox.gpubox.drifted_paths) compares the same entries with what M(gpubox.gpubox.path_state) read, and this
    writes an entry that drifted, so the table is the one description of the path for the check and for the write.
  - A file is written by Ansible's copy action (from I(content), or from the bytes of the controller file
    I(content_file)), a directory, a link or an absent path by the file module; their check and diff modes apply.
  - The entries' C(notify) lists are for the task, which notifies those of the entries it loops over (see
    EXAMPLES); the field is accepted and ignored here, so an entry can be passed whole.
options:
  path:
    description: The absolute path on the box.
    type: str
    required: true
  state:
    description: What the path is.
    type: str
    choices: [file, directory, link, absent]
    default: file
  mode:
    description: Its permission bits (C("0644")); for a file or a directory.
    type: str
  owner:
    description: Its owner.
    type: str
  group:
    description: Its group.
    type: str
  content:
    description: A file's content; one of I(content) and I(content_file) for a file.
    type: str
  content_file:
    description: A controller file whose bytes are the file's content (a binary, a built archive).
    type: str
  src:
    description: A link's target.
    type: str
  validate:
    description: A command that checks the new file before it replaces the old one (C(%s) is its path), as copy's.
    type: str
  secret:
    description: The content is a credential; the result and the diff do not show it.
    type: bool
    default: false
  notify:
    description: The handlers the task notifies when the path changed; not used by the action itself.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Write the role's files that drifted
  gpubox.gpubox.path_write: "{{ item }}"
  loop: "{{ jupyter_writes }}"  # jupyter_files | selectattr('path', 'in', jupyter_drifted)
  loop_control:
    label: "{{ item.path }}"
  # every entry looped differs, so each is written: the handlers are the ones its entries name
  notify: "{{ jupyter_writes | map(attribute='notify', default=[]) | flatten | unique }}"
"""

RETURN = r"""
changed:
  description: Whether the path was written.
  returned: always
  type: bool
"""
