# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests `literal_name`, `box_name` and `login_name`: the names gpubox writes into tags, filters, file names,
ssh configs and inventories (plugins/module_utils/names.py says what each may look like)."""

from __future__ import annotations

from ansible_collections.gpubox.gpubox.plugins.module_utils.names import box_name, literal_name, login_name


class TestModule:
    def tests(self):
        return {"literal_name": literal_name, "box_name": box_name, "login_name": login_name}
