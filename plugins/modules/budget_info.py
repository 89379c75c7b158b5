#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reads one AWS Budgets budget for list.yml and costs.yml: its limit, actual and forecast spend."""

from __future__ import annotations

DOCUMENTATION = r"""
module: budget_info
short_description: The limit, actual and forecast spend of one AWS Budgets budget
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Reads the budget I(name) (DescribeBudget) and nothing else.
  - Never fails on a Budgets API that does not answer or refuses. It returns C(exists=false) and an C(error) text,
    so the caller can say in one line that the budget was not read.
options:
  name:
    description: The budget's name (C(gpubox-PROJECT)).
    type: str
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: What is spent against project demo's budget
  gpubox.gpubox.budget_info:
    region: us-east-1
    name: gpubox-demo
  register: found
"""

RETURN = r"""
exists:
  description: Whether the budget exists (false too when it could not be read).
  returned: always
  type: bool
budget:
  description: The budget (limit, actual and forecast spend in USD, its cost filters); empty when none.
  returned: always
  type: dict
  sample: {"name": "gpubox-demo", "limit": "50.0", "actual": "12.31", "forecast": "40.2", "unit": "USD"}
error:
  description: "Why the budget could not be read, C(Code: message) (empty when it could, or when there is none)."
  returned: always
  type: str
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.budgets import Budgets, account_of, summary  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import error_brief  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore.exceptions


def main() -> None:
    module = AnsibleAWSModule(argument_spec={"name": {"type": "str", "required": True}}, supports_check_mode=True)
    # A listing must not wait long on a Budgets API that does not answer.
    config = {"retries": {"max_attempts": 2}, "connect_timeout": 5, "read_timeout": 10}
    try:
        budget = Budgets(module.client("budgets", config=config), account_of(module, config), module.params["name"])
        found = budget.describe()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ValueError) as e:
        brief = error_brief(e)
        module.exit_json(changed=False, exists=False, budget={}, error=f"{brief['code']}: {brief['message']}")
    module.exit_json(changed=False, exists=bool(found), budget=summary(found), error="")


if __name__ == "__main__":
    main()
