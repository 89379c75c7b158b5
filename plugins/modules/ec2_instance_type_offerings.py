#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which availability zones of a region offer some instance types (no amazon.aws module tells this)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_instance_type_offerings
short_description: Availability zones of a region that offer given EC2 instance types
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Calls DescribeInstanceTypeOfferings with location type C(availability-zone) for the given types.
  - A type missing from the result does not exist or is not offered anywhere in the region.
options:
  instance_types:
    description: Instance types to look up.
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Where g4dn.xlarge is offered
  ec2_instance_type_offerings:
    instance_types: [g4dn.xlarge]
    region: us-west-2
"""

RETURN = r"""
zones:
  description: For each requested type, the sorted availability zones that offer it (empty when none do).
  returned: always
  type: dict
  sample: {"g4dn.xlarge": ["us-west-2a", "us-west-2b"]}
missing:
  description: Requested types that no availability zone of the region offers.
  returned: always
  type: list
  elements: str
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore


def type_zones(client, instance_types: list[str]) -> dict[str, list[str]]:
    """Map every requested type to the sorted zones that offer it."""
    zones: dict[str, set[str]] = {t: set() for t in instance_types}
    paginator = client.get_paginator("describe_instance_type_offerings")
    pages = paginator.paginate(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": list(instance_types)}],
    )
    for page in pages:
        for offer in page.get("InstanceTypeOfferings", []):
            zones.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    return {t: sorted(z) for t, z in zones.items()}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={"instance_types": {"type": "list", "elements": "str", "required": True}},
        supports_check_mode=True,
    )
    types = sorted(set(module.params["instance_types"]))
    client = module.client("ec2")
    try:
        zones = type_zones(client, types) if types else {}
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Could not list instance type offerings")
    module.exit_json(changed=False, zones=zones, missing=[t for t in types if not zones.get(t)])


if __name__ == "__main__":
    main()
