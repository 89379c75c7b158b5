# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
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

# The upstream plugin's options, word for word but the name (tests/unit/test_safety_plugins.py compares them with the
# installed amazon.aws): Ansible reads a plugin's options from this text, and ansible-doc parses it from the file.
DOCUMENTATION = r"""
name: gpubox_ec2
short_description: EC2 inventory source
extends_documentation_fragment:
  - inventory_cache
  - constructed
  - amazon.aws.boto3
  - amazon.aws.common.plugins
  - amazon.aws.region.plugins
  - amazon.aws.assume_role.plugins
description:
  - Get inventory hosts from Amazon Web Services EC2.
  - The inventory file is a YAML configuration file and must end with C(aws_ec2.{yml|yaml}). For example - C(my_inventory.aws_ec2.yml).
notes:
  - If no credentials are provided and the control node has an associated IAM instance profile then the
    role will be used for authentication.
  - The C(tags) host variable is deprecated and will be removed in a release after 2026-12-01.
    Use C(ec2_tags) instead to avoid conflicts with Ansible reserved variable names.
  - The C(ec2_tags) host variable was added in version 11.2.0.
  - The C(use_contrib_script_compatible_ec2_tag_keys) option is deprecated and will be removed in a release after 2026-12-01.
    Use the C(ec2_tags) structure instead (e.g. use C(ec2_tags.TAGNAME) rather than C(ec2_tag_TAGNAME)).
  - The C(use_contrib_script_compatible_sanitization) option is deprecated and will be removed in a release after 2026-12-01.
    Use Ansible's default group name sanitization instead.
author:
  - Sloane Hertel (@s-hertel)
options:
  regions:
    description:
      - A list of regions in which to describe EC2 instances.
      - If empty (the default) default this will include all regions, except possibly restricted ones like V(us-gov-west-1) and V(cn-north-1).
    type: list
    elements: str
    default: []
  hostnames:
    description:
      - A list in order of precedence for hostname variables.
      - The elements of the list can be a dict with the keys mentioned below or a string.
      - Can be one of the options specified in U(http://docs.aws.amazon.com/cli/latest/reference/ec2/describe-instances.html#options).
      - If value provided does not exist in the above options, it will be used as a literal string.
      - To use tags as hostnames use the syntax tag:Name=Value to use the hostname Name_Value, or tag:Name to use the value of the Name tag.
      - Jinja2 filters can be added to the hostnames string. Added in version 9.2.0.
    type: list
    elements: raw
    default: []
    suboptions:
      name:
        description:
          - Name of the host.
        type: str
        required: true
      prefix:
        description:
          - Prefix to prepend to O(hostnames.name). Same options as O(hostnames.name).
          - If O(hostnames.prefix) is specified, final hostname will be O(hostnames.prefix) + O(hostnames.separator) + O(hostnames.name).
        type: str
        default: ''
        required: false
      separator:
        description:
          - Value to separate O(hostnames.prefix) and O(hostnames.name) when O(hostnames.prefix) is specified.
        type: str
        default: '_'
        required: false
  allow_duplicated_hosts:
    description:
      - By default, the first name that matches an entry of the O(hostnames) list is returned.
      - Turn this flag on if you don't mind having duplicated entries in the inventory
        and you want to get all the hostnames that match.
    type: bool
    default: false
    version_added: 5.0.0
  filters:
    description:
      - A dictionary of filter value pairs.
      - Available filters are listed here U(http://docs.aws.amazon.com/cli/latest/reference/ec2/describe-instances.html#options).
    type: dict
    default: {}
  include_filters:
    description:
      - A list of filters. Any instances matching at least one of the filters are included in the result.
      - Available filters are listed here U(http://docs.aws.amazon.com/cli/latest/reference/ec2/describe-instances.html#options).
      - Every entry in this list triggers a search query. As such, from a performance point of view, it's better to
        keep the list as short as possible.
    type: list
    elements: dict
    default: []
    version_added: 1.5.0
  exclude_filters:
    description:
      - A list of filters. Any instances matching one of the filters are excluded from the result.
      - The filters from O(exclude_filters) take priority over the O(include_filters) and O(filters) keys.
      - Available filters are listed here U(http://docs.aws.amazon.com/cli/latest/reference/ec2/describe-instances.html#options).
      - Every entry in this list triggers a search query. As such, from a performance point of view, it's better to
        keep the list as short as possible.
    type: list
    elements: dict
    default: []
    version_added: 1.5.0
  strict_permissions:
    description:
      - By default if a 403 (Forbidden) error code is encountered this plugin will fail.
      - You can set this option to False in the inventory config file which will allow 403 errors to be gracefully skipped.
    type: bool
    default: true
  use_contrib_script_compatible_sanitization:
    description:
      - By default this plugin is using a general group name sanitization to create safe and usable group names for use in Ansible.
        This option allows you to override that, in efforts to allow migration from the old C(ec2.py) inventory script and
        matches the sanitization of groups when the script's ``replace_dash_in_groups`` option is set to ``False``.
        To replicate behavior of ``replace_dash_in_groups = True`` with constructed groups,
        you will need to replace hyphens with underscores via the regex_replace filter for those entries.
      - For this to work you should also turn off the TRANSFORM_INVALID_GROUP_CHARS setting,
        otherwise the core engine will just use the standard sanitization on top.
      - This is not the default as such names break certain functionality as not all characters are valid Python identifiers
        which group names end up being used as.
      - The use of this feature is deprecated and will be removed in a release after 2026-12-01.
        Use Ansible's default group name sanitization instead.
    type: bool
    default: false
  use_contrib_script_compatible_ec2_tag_keys:
    description:
      - Expose the host tags with C(ec2_tag_TAGNAME) keys like the old C(ec2.py) inventory script.
      - The use of this feature is deprecated and will be removed in a release after 2026-12-01.
        Use the C(ec2_tags) structure instead (e.g. use C(ec2_tags.TAGNAME) rather than C(ec2_tag_TAGNAME)).
    type: bool
    default: false
    version_added: 1.5.0
  hostvars_prefix:
    description:
      - The prefix for host variables names coming from AWS.
    type: str
    version_added: 3.1.0
  hostvars_suffix:
    description:
      - The suffix for host variables names coming from AWS.
    type: str
    version_added: 3.1.0
  use_ssm_inventory:
    description:
      - Enables fetching additional EC2 instance information from the AWS Systems Manager (SSM) inventory service into hostvars.
      - By leveraging the SSM inventory data, the O(use_ssm_inventory) option provides additional details and attributes
        about the EC2 instances in your inventory. These details can include operating system information, installed software,
        network configurations, and custom inventory attributes defined in SSM.
    type: bool
    default: false
    version_added: 6.0.0
  route53_enabled:
    description:
      - Whether or not to use the Route53 DNS as host name.
      - When set to V(true), Route53 hostnames will be included.
    type: bool
    default: false
    version_added: 10.1.0
  route53_hostnames:
    description:
      - Specifies the Route53 DNS name suffix to consider.
      - Consider only Route53 zone with name ending with the value specified here.
    type: list
    elements: str
    default: []
    version_added: 10.1.0
  route53_excluded_zones:
    description:
      - A list of Route53 zones to exclude.
    type: list
    elements: str
    default: []
    version_added: 10.1.0
"""

from ansible_collections.amazon.aws.plugins.inventory import aws_ec2  # noqa: E402 - after the documentation

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
