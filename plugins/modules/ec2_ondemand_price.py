#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On-demand Linux price per hour of EC2 instance types and per GB-month of EBS volume types, from the AWS Price List
API (no amazon.aws module has it)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_ondemand_price
short_description: On-demand Linux $/h of EC2 instance types and $/GB-month of EBS volumes from the Price List API
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Asks the Price List API (served from us-east-1) for the on-demand, shared-tenancy Linux price of each type in
    O(price_region), and for the storage price per GB-month of each EBS volume type there (provisioned IOPS and
    throughput are priced apart and not included).
  - Never fails on an unreachable or refusing API. It returns the prices it got and a C(error) text, so the caller
    can fall back to a price table.
options:
  instance_types:
    description: Instance types.
    type: list
    elements: str
    required: true
  price_region:
    description: Region whose prices to read.
    type: str
    required: true
  volume_types:
    description: EBS volume types (gp3, gp2, io1, ...) whose storage price to read.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Price of a g4dn.xlarge in us-west-2
  ec2_ondemand_price:
    instance_types: [g4dn.xlarge]
    price_region: us-west-2
    region: us-east-1
"""

RETURN = r"""
prices:
  description: USD per hour by instance type; types without an answer are missing.
  returned: always
  type: dict
  sample: {"g4dn.xlarge": 0.526}
volume_prices:
  description: USD per GB-month of storage by EBS volume type; types without an answer are missing.
  returned: always
  type: dict
  sample: {"gp3": 0.08}
error:
  description: Why some or all prices could not be read (empty when all were).
  returned: always
  type: str
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
import json  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore


def price_of(client, instance_type: str, region: str) -> float | None:
    filters = {
        "instanceType": instance_type,
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "marketoption": "OnDemand",
    }
    answer = client.get_products(
        ServiceCode="AmazonEC2",
        Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
        MaxResults=10,
    )
    return first_usd(answer, "Hrs")


def first_usd(answer: dict, unit: str) -> float | None:
    """The first positive on-demand USD price in that unit of a get_products answer."""
    for item in answer.get("PriceList", []):
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if usd and float(usd) > 0 and dimension.get("unit", unit) == unit:
                    return float(usd)
    return None


def volume_price_of(client, volume_type: str, region: str) -> float | None:
    filters = {"productFamily": "Storage", "volumeApiName": volume_type, "regionCode": region}
    answer = client.get_products(
        ServiceCode="AmazonEC2",
        Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
        MaxResults=10,
    )
    return first_usd(answer, "GB-Mo")


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "instance_types": {"type": "list", "elements": "str", "required": True},
            "price_region": {"type": "str", "required": True},
            "volume_types": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    prices: dict[str, float] = {}
    volume_prices: dict[str, float] = {}
    error = ""
    try:
        client = module.client(
            "pricing", config={"retries": {"max_attempts": 1}, "connect_timeout": 5, "read_timeout": 10}
        )
        for itype in sorted(set(module.params["instance_types"])):
            price = price_of(client, itype, module.params["price_region"])
            if price is not None:
                prices[itype] = price
        for vtype in sorted(set(module.params["volume_types"])):
            price = volume_price_of(client, vtype, module.params["price_region"])
            if price is not None:
                volume_prices[vtype] = price
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ValueError) as e:
        error = (str(e).split("<", 1)[0].strip().splitlines() or [type(e).__name__])[0]
    module.exit_json(changed=False, prices=prices, volume_prices=volume_prices, error=error)


if __name__ == "__main__":
    main()
