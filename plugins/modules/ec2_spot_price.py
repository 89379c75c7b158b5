#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The current spot price of EC2 instance types in given zones (no amazon.aws module reads the spot price history)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_spot_price
short_description: Current Linux spot $/h of instance types in availability zones
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Asks DescribeSpotPriceHistory, once per instance type and zone, for the Linux/UNIX spot price in effect now
    (the newest entry for exactly that type and zone).
  - Never fails on an API that does not answer or refuses. It returns the prices it got and a C(error) text, so
    the caller can say the price is unknown.
options:
  instances:
    description: Instance type and availability zone pairs.
    type: list
    elements: dict
    required: true
    suboptions:
      instance_type: {description: Instance type., type: str, required: true}
      zone: {description: Availability zone., type: str, required: true}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Spot price of a g4dn.xlarge in us-west-2a
  ec2_spot_price:
    region: us-west-2
    instances: [{instance_type: g4dn.xlarge, zone: us-west-2a}]
"""

RETURN = r"""
prices:
  description: USD per hour by zone, then instance type; pairs without an answer are missing.
  returned: always
  type: dict
  sample: {"us-west-2a": {"g4dn.xlarge": 0.2261}}
error:
  description: Why some or all prices could not be read (empty when all were).
  returned: always
  type: str
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
from datetime import UTC, datetime  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

# Linux boxes; EC2 names the product either way depending on the account's age (EC2-Classic or VPC only).
PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")


def spot_price(client, instance_type: str, zone: str, now: datetime | None = None) -> float | None:
    """The newest Linux spot price of exactly this type in exactly this zone, or None."""
    answer = client.describe_spot_price_history(
        InstanceTypes=[instance_type],
        AvailabilityZone=zone,
        ProductDescriptions=list(PRODUCTS),
        StartTime=now or datetime.now(UTC),
        MaxResults=20,
    )
    entries = [
        e
        for e in answer.get("SpotPriceHistory", [])
        if e.get("InstanceType") == instance_type
        and e.get("AvailabilityZone") == zone
        and e.get("ProductDescription") in PRODUCTS
    ]
    if not entries:
        return None
    newest = max(entries, key=lambda e: e.get("Timestamp") or datetime.min.replace(tzinfo=UTC))
    try:
        price = float(newest["SpotPrice"])
    except (KeyError, TypeError, ValueError):
        return None
    return price if price >= 0 else None


def spot_prices(client, instances: list[dict]) -> tuple[dict[str, dict[str, float]], str]:
    prices: dict[str, dict[str, float]] = {}
    error = ""
    for pair in sorted({(i["zone"], i["instance_type"]) for i in instances}):
        zone, itype = pair
        try:
            price = spot_price(client, itype, zone)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ValueError) as e:
            error = error or (str(e).split("<", 1)[0].strip().splitlines() or [type(e).__name__])[0]
            continue
        if price is not None:
            prices.setdefault(zone, {})[itype] = price
    return prices, error


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "instances": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "instance_type": {"type": "str", "required": True},
                    "zone": {"type": "str", "required": True},
                },
            },
        },
        supports_check_mode=True,
    )
    try:
        client = module.client("ec2", config={"retries": {"max_attempts": 2}, "connect_timeout": 5, "read_timeout": 10})
    except (botocore.exceptions.BotoCoreError, ValueError) as e:
        module.exit_json(changed=False, prices={}, error=str(e).splitlines()[0])
    prices, error = spot_prices(client, module.params["instances"])
    module.exit_json(changed=False, prices=prices, error=error)


if __name__ == "__main__":
    main()
