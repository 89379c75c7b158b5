# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests about AWS values.

`aws_region`: the value is a region AWS has (as known to the installed botocore; plugins/plugin_utils/regions.py).

`tagged`: the resource tags (a dict, or AWS's list of Key/Value pairs in either case) carry every wanted tag with
exactly its value (plugins/module_utils/tags.py): `item.tags is gpubox.gpubox.tagged(gpubox_tags)`, or
`selectattr('tags', 'gpubox.gpubox.tagged', gpubox_tags)`.
"""

from __future__ import annotations

from ansible_collections.gpubox.gpubox.plugins.module_utils.tags import tagged
from ansible_collections.gpubox.gpubox.plugins.plugin_utils.regions import aws_region


class TestModule:
    def tests(self):
        return {"aws_region": aws_region, "tagged": tagged}
