#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EBS volumes attached to given instances: size and type, what their storage costs depends on.

amazon.aws.ec2_vol_info would do, but it fails on a volume without a SnapshotId, which AWS always sends (empty) and
the local EC2 API of the tests leaves out for a volume made from nothing."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_box_disks
short_description: The EBS volumes attached to given instances
description:
  - One DescribeVolumes call (paginated) with the filter C(attachment.instance-id).
options:
  instance_ids:
    description: Instance ids.
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Disks of two boxes
  ec2_box_disks:
    region: us-west-2
    instance_ids: [i-0123456789abcdef0, i-0fedcba9876543210]
"""

RETURN = r"""
volumes:
  description: The volumes, sorted by id, each with the instances it is attached to.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "vol-0abc", "size": 64, "type": "gp3", "state": "in-use", "instance_ids": ["i-0123456789abcdef0"]}]
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore


def box_disks(client, instance_ids: list[str]) -> list[dict]:
    if not instance_ids:
        return []
    pages = client.get_paginator("describe_volumes").paginate(
        Filters=[{"Name": "attachment.instance-id", "Values": sorted(set(instance_ids))}]
    )
    found = []
    for volume in (v for page in pages for v in page.get("Volumes", [])):
        found.append(
            {
                "id": volume["VolumeId"],
                "size": volume.get("Size"),
                "type": volume.get("VolumeType"),
                "state": volume.get("State"),
                "instance_ids": [a["InstanceId"] for a in volume.get("Attachments") or [] if a.get("InstanceId")],
            }
        )
    return sorted(found, key=lambda v: v["id"])


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={"instance_ids": {"type": "list", "elements": "str", "required": True}},
        supports_check_mode=True,
    )
    client = module.client("ec2")
    try:
        volumes = box_disks(client, module.params["instance_ids"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Could not read the boxes' disks")
    module.exit_json(changed=False, volumes=volumes)


if __name__ == "__main__":
    main()
