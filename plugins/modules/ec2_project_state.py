#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The documentation of ec2_project_state, which runs on the controller as an action plugin
(plugins/action/ec2_project_state.py): this file has no code of its own."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_project_state
short_description: What AWS holds for one gpubox project, read in one go
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Reads the parts named in I(read) with one boto3 session in Ansible's own process, in the shapes the amazon.aws
    info modules return (snake_case keys, tags as a dict).
  - Credentials that do not work are not a failure; the result has C(caller_error) (AWS's message) instead.
  - Reads only; runs in check mode too.
options:
  region:
    description: The AWS region.
    type: str
    required: true
  project:
    description: The project (gpubox_project), named in messages.
    type: str
    required: true
  read:
    description: The parts to read.
    type: list
    elements: str
    choices: [caller, network, instances, spot_requests, key_pair, instance_types, volumes, data_volumes]
    default: [caller, network, instances, spot_requests, key_pair]
  instance_states:
    description: The instance states of C(instances).
    type: list
    elements: str
    default: [pending, running, stopping, stopped]
  owner_filters:
    description: EC2 filters on the owner tags (C(tag:ManagedBy), C(tag:Project)); needed by C(spot_requests) and
      C(data_volumes).
    type: dict
    default: {}
  security_group_name:
    description: The project's security group; needed by C(network).
    type: str
    default: ""
  key_name:
    description: The project's key pair; needed by C(key_pair).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Read the project's state
  gpubox.gpubox.ec2_project_state:
    region: us-west-2
    project: gpubox
    read: [caller, instances]
  register: state
"""

RETURN = r"""
caller_error:
  description: AWS's answer when the credentials do not work (nothing else is read then).
  returned: when the credentials do not work
  type: str
account:
  description: The account of the credentials.
  returned: when I(read) has caller
  type: str
arn:
  description: The caller's ARN.
  returned: when I(read) has caller
  type: str
vpc_id:
  description: The region's default VPC, or empty.
  returned: when I(read) has network
  type: str
subnets:
  description: The default subnets of that VPC.
  returned: when I(read) has network
  type: list
  elements: dict
security_groups:
  description: The groups named I(security_group_name) in that VPC.
  returned: when I(read) has network
  type: list
  elements: dict
instances:
  description: The project's instances in I(instance_states).
  returned: when I(read) has instances
  type: list
  elements: dict
instance_types:
  description: The instance types of those instances.
  returned: when I(read) has instance_types
  type: list
  elements: dict
volumes:
  description: The volumes attached to those instances.
  returned: when I(read) has volumes
  type: list
  elements: dict
data_volumes:
  description: The project's data volumes (tag C(DataOf)), as amazon.aws.ec2_vol_info returns them.
  returned: when I(read) has data_volumes
  type: list
  elements: dict
spot_requests:
  description: The project's open or active spot requests.
  returned: when I(read) has spot_requests
  type: list
  elements: dict
key_pairs:
  description: The key pair named I(key_name), if AWS has it.
  returned: when I(read) has key_pair
  type: list
  elements: dict
"""
