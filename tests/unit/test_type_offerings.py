"""ec2_instance_type_offerings: zones per instance type, against botocore's Stubber."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from tests.conftest import ROOT, load_module

offerings = load_module(ROOT / "plugins/modules/ec2_instance_type_offerings.py")


def test_zones_per_type_and_unknown_types_get_none():
    ec2 = boto3.client("ec2", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    answer = {
        "InstanceTypeOfferings": [
            {"InstanceType": "g4dn.xlarge", "LocationType": "availability-zone", "Location": zone}
            for zone in ("us-west-2c", "us-west-2a", "us-west-2b")
        ]
    }
    expected = {
        "LocationType": "availability-zone",
        "Filters": [{"Name": "instance-type", "Values": ["g4dn.xlarge", "g4dn.huge"]}],
    }
    with Stubber(ec2) as stub:
        stub.add_response("describe_instance_type_offerings", answer, expected)
        zones = offerings.type_zones(ec2, ["g4dn.xlarge", "g4dn.huge"])
        stub.assert_no_pending_responses()
    assert zones == {"g4dn.xlarge": ["us-west-2a", "us-west-2b", "us-west-2c"], "g4dn.huge": []}
