"""gpubox_ec2: amazon.aws.aws_ec2, less the deprecated `tags` host variable and the warnings it brings.

amazon.aws 11.x puts every instance's tags in two host variables, `ec2_tags` and the deprecated `tags`, and says
so on every inventory load, whether or not anything reads `tags`, with no option to turn it off
(ansible-collections/amazon.aws#3028; the fix, #3030, is not released). `tags` is also a name Ansible reserves,
so each command that reads host variables adds "Found variable using reserved name 'tags'". gpubox reads
`ec2_tags` only. This plugin is the upstream one with `tags` left out and that one notice dropped; every option,
filter, compose and group works as documented for amazon.aws.aws_ec2. Any other warning or deprecation still shows.
Once amazon.aws no longer sets `tags`, inventory/aws_ec2.yml can go back to `plugin: amazon.aws.aws_ec2`.
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.inventory import aws_ec2

# Same options as the upstream plugin: Ansible reads them from this attribute when it loads the plugin.
# (ansible-doc parses the file instead and cannot: read `ansible-doc -t inventory amazon.aws.aws_ec2`.)
DOCUMENTATION = aws_ec2.DOCUMENTATION.replace("name: aws_ec2\n", "name: gpubox_ec2\n", 1)

DEPRECATED_TAGS = "The 'tags' host variable is deprecated."


class _WithoutTagsNotice:
    """The plugin's display, less the deprecation notice about the `tags` host variable this plugin never sets."""

    def __init__(self, display):
        self._display = display

    def deprecated(self, msg, *args, **kwargs):
        if not str(msg).startswith(DEPRECATED_TAGS):
            self._display.deprecated(msg, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._display, name)


class InventoryModule(aws_ec2.InventoryModule):
    NAME = "gpubox_ec2"

    def __init__(self):
        super().__init__()
        self.display = _WithoutTagsNotice(self.display)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        # compose, groups and keyed_groups have been evaluated by now; only the host variable itself goes
        group = inventory.groups.get("aws_ec2")
        for host in group.get_hosts() if group else []:
            if "ec2_tags" in host.vars and host.vars.get("tags") == host.vars["ec2_tags"]:
                del host.vars["tags"]
