"""ec2_sweep and ec2_spot_price (roles/ec2_list/library) against botocore's Stubber, with the answers AWS gives where
the local EC2 API cannot: an opt-in region that is not enabled, spot prices of several zones and products."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from tests.conftest import ROOT, load_module

sweep = load_module(ROOT / "plugins/modules/ec2_sweep.py", "gpubox_ec2_sweep")
spot = load_module(ROOT / "plugins/modules/ec2_spot_price.py", "gpubox_ec2_spot_price")

WANTED = {"tag:ManagedBy": "gpubox", "tag:Project": "d2l"}
TAGS = [{"Key": "ManagedBy", "Value": "gpubox"}, {"Key": "Project", "Value": "d2l"}]


def client(region: str):
    return boto3.client("ec2", region_name=region, aws_access_key_id="x", aws_secret_access_key="x")


def answer_everything(stub: Stubber, instance: dict | None = None) -> None:
    """One answer per describe call of sweep_region, in its order."""
    reservations = [{"Instances": [instance]}] if instance else []
    stub.add_response("describe_instances", {"Reservations": reservations}, {"Filters": ANY})
    stub.add_response("describe_volumes", {"Volumes": []}, {"Filters": ANY})
    stub.add_response("describe_snapshots", {"Snapshots": []}, {"OwnerIds": ["self"], "Filters": ANY})
    stub.add_response("describe_images", {"Images": []}, {"Owners": ["self"], "Filters": ANY})
    stub.add_response("describe_key_pairs", {"KeyPairs": []}, {"Filters": ANY})
    stub.add_response("describe_security_groups", {"SecurityGroups": []}, {"Filters": ANY})
    stub.add_response("describe_spot_instance_requests", {"SpotInstanceRequests": []}, {"Filters": ANY})


def test_a_region_that_refuses_is_reported_and_skipped():
    west, south = client("us-west-2"), client("me-south-1")
    instance = {
        "InstanceId": "i-0123456789abcdef0",
        "InstanceType": "g4dn.xlarge",
        "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": "us-west-2a"},
        "InstanceLifecycle": "spot",
        "LaunchTime": datetime(2026, 1, 2, 10, tzinfo=UTC),
        "Tags": [*TAGS, {"Key": "Name", "Value": "d2l"}],
    }
    with Stubber(west) as west_stub, Stubber(south) as south_stub:
        answer_everything(west_stub, instance)
        south_stub.add_client_error(
            "describe_instances", "OptInRequired", "You are not subscribed to this service.\nPlease go to AWS", 401
        )
        answered, skipped, found = sweep.sweep({"us-west-2": west, "me-south-1": south}, WANTED, workers=1)
        west_stub.assert_no_pending_responses()

    assert answered == ["us-west-2"]
    assert skipped == [
        {"region": "me-south-1", "code": "OptInRequired", "message": "You are not subscribed to this service."}
    ]
    assert found == [
        {
            "region": "us-west-2",
            "kind": "instance",
            "id": "i-0123456789abcdef0",
            "name": "d2l",
            "tags": {"ManagedBy": "gpubox", "Project": "d2l", "Name": "d2l"},
            "state": "running",
            "instance_type": "g4dn.xlarge",
            "zone": "us-west-2a",
            "market": "spot",
            "launch_time": "2026-01-02T10:00:00+00:00",
        }
    ]


def test_filters_are_the_wanted_tags_and_the_live_states():
    assert sweep._filters(WANTED, **{"instance-state-name": ["running", "stopped"]}) == [
        {"Name": "tag:ManagedBy", "Values": ["gpubox"]},
        {"Name": "tag:Project", "Values": ["d2l"]},
        {"Name": "instance-state-name", "Values": ["running", "stopped"]},
    ]


def test_error_text_keeps_the_first_line_without_markup():
    error = sweep.error_brief(ValueError("bad <Response>...</Response>\nmore"))
    assert error == {"code": "ValueError", "message": "bad"}


def price(zone: str, value: str, when: datetime, product: str = "Linux/UNIX", itype: str = "g4dn.xlarge") -> dict:
    return {
        "AvailabilityZone": zone,
        "InstanceType": itype,
        "ProductDescription": product,
        "SpotPrice": value,
        "Timestamp": when,
    }


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        # the newest of the zone asked, whatever the order and the other zones
        (
            [
                price("us-west-2a", "0.2000", datetime(2026, 1, 1, tzinfo=UTC)),
                price("us-west-2b", "0.1000", datetime(2026, 1, 2, tzinfo=UTC)),
                price("us-west-2a", "0.2261", datetime(2026, 1, 2, tzinfo=UTC)),
            ],
            0.2261,
        ),
        ([price("us-west-2a", "0.3", datetime(2026, 1, 2, tzinfo=UTC), "Linux/UNIX (Amazon VPC)")], 0.3),
        ([price("us-west-2a", "0.9", datetime(2026, 1, 2, tzinfo=UTC), "Windows")], None),
        ([price("us-west-2a", "0.9", datetime(2026, 1, 2, tzinfo=UTC), itype="g5.xlarge")], None),
        ([], None),
    ],
)
def test_spot_price_is_the_newest_of_exactly_that_type_and_zone(history, expected):
    ec2 = client("us-west-2")
    with Stubber(ec2) as stub:
        asked = {
            "InstanceTypes": ["g4dn.xlarge"],
            "AvailabilityZone": "us-west-2a",
            "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            "StartTime": ANY,
            "MaxResults": 20,
        }
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history}, asked)
        assert spot.spot_price(ec2, "g4dn.xlarge", "us-west-2a") == expected


def test_spot_prices_survive_a_refusal():
    ec2 = client("us-west-2")
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_spot_price_history", "UnauthorizedOperation", "not allowed", 403)
        stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [price("us-west-2b", "0.25", datetime(2026, 1, 2, tzinfo=UTC))]},
        )
        prices, error = spot.spot_prices(
            ec2,
            [
                {"instance_type": "g4dn.xlarge", "zone": "us-west-2a"},
                {"instance_type": "g4dn.xlarge", "zone": "us-west-2b"},
            ],
        )
    assert prices == {"us-west-2b": {"g4dn.xlarge": 0.25}}
    assert "UnauthorizedOperation" in error
