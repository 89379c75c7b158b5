"""ec2_gpu_quota: the GPU vCPU quota check, against botocore's Stubber (recorded API answers)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from tests.conftest import ROOT, load_module

REGION = "us-west-2"


quota = load_module(ROOT / "plugins/modules/ec2_gpu_quota.py")


def _client(service):
    return boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def clients():
    sq, ec2 = _client("service-quotas"), _client("ec2")
    with Stubber(sq) as sq_stub, Stubber(ec2) as ec2_stub:
        yield sq, ec2, sq_stub, ec2_stub
        sq_stub.assert_no_pending_responses()
        ec2_stub.assert_no_pending_responses()


def _running(*instances):
    """describe_instances answer with (type, lifecycle, cores, threads) instances."""
    found = []
    for n, (itype, lifecycle, cores, threads) in enumerate(instances):
        inst = {"InstanceId": f"i-{n:017x}", "InstanceType": itype, "CpuOptions": {"CoreCount": cores}}
        inst["CpuOptions"]["ThreadsPerCore"] = threads
        if lifecycle:
            inst["InstanceLifecycle"] = lifecycle
        found.append(inst)
    return {"Reservations": [{"Instances": found}]} if found else {"Reservations": []}


def _quota(code, value):
    return {"Quota": {"ServiceCode": "ec2", "QuotaCode": code, "Value": float(value)}}


def _expect_quota(sq_stub, code, value):
    """The next GetServiceQuota asks for EC2's quota `code` and is answered `value`."""
    sq_stub.add_response("get_service_quota", _quota(code, value), {"ServiceCode": "ec2", "QuotaCode": code})


def test_quota_classes():
    assert quota.quota_class("g4dn.xlarge") == "G"
    assert quota.quota_class("g5g.2xlarge") == "G"
    assert quota.quota_class("vt1.3xlarge") == "G"
    assert quota.quota_class("p5.48xlarge") == "P"
    assert quota.quota_class("t3.micro") is None


def test_quota_too_low_is_refused_with_console_link(clients):
    sq, ec2, sq_stub, ec2_stub = clients
    # 4 vCPUs of G already running on-demand; a spot G box does not count against the on-demand quota.
    ec2_stub.add_response(
        "describe_instances",
        _running(("g4dn.xlarge", None, 2, 2), ("g5.xlarge", "spot", 2, 2), ("t3.micro", None, 1, 2)),
    )
    _expect_quota(sq_stub, "L-DB2E81BA", 8)
    boxes = [{"name": "big", "instance_type": "g4dn.2xlarge", "vcpus": 8, "market": "on-demand"}]

    report, refusals, warnings = quota.check_quotas(sq, ec2, REGION, boxes)

    assert warnings == []
    assert report == [
        {
            "code": "L-DB2E81BA",
            "name": "Running On-Demand G and VT instances",
            "boxes": ["big"],
            "requested": 8,
            "in_use": 4,
            "limit": 8,
            "ok": False,
        }
    ]
    (text,) = refusals
    assert "'big' (g4dn.2xlarge, 8 vCPUs)" in text
    assert "L-DB2E81BA" in text and "is 8" in text and "at least 12" in text
    assert "https://us-west-2.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-DB2E81BA" in text


def test_zero_quota_for_p_spot_is_refused(clients):
    sq, ec2, sq_stub, ec2_stub = clients
    ec2_stub.add_response("describe_instances", _running())
    _expect_quota(sq_stub, "L-7212CCBC", 0)
    boxes = [{"name": "h100", "instance_type": "p5.48xlarge", "vcpus": 192, "market": "spot"}]

    _, refusals, _ = quota.check_quotas(sq, ec2, REGION, boxes)

    assert len(refusals) == 1
    assert "L-7212CCBC (All P Spot Instance Requests)" in refusals[0]
    assert "is 0" in refusals[0] and "'h100'" in refusals[0]


def test_enough_quota_passes_and_sums_boxes_per_quota(clients):
    sq, ec2, sq_stub, ec2_stub = clients
    ec2_stub.add_response("describe_instances", _running())
    # sorted by (market, class): on-demand G, then spot G
    _expect_quota(sq_stub, "L-DB2E81BA", 8)
    _expect_quota(sq_stub, "L-3819A6DF", 4)
    boxes = [
        {"name": "a", "instance_type": "g4dn.xlarge", "vcpus": 4, "market": "on-demand"},
        {"name": "b", "instance_type": "g4dn.xlarge", "vcpus": 4, "market": "on-demand"},
        {"name": "c", "instance_type": "g4dn.xlarge", "vcpus": 4, "market": "spot"},
        {"name": "cpu", "instance_type": "t3.micro", "vcpus": 2, "market": "on-demand"},
    ]

    report, refusals, warnings = quota.check_quotas(sq, ec2, REGION, boxes)

    assert refusals == [] and warnings == []
    assert [(q["code"], q["requested"], q["ok"]) for q in report] == [("L-DB2E81BA", 8, True), ("L-3819A6DF", 4, True)]


@pytest.mark.parametrize(
    "code, message",
    [
        ("NoSuchResourceException", "This service is not available in the current Region."),
        ("AccessDeniedException", "User is not authorized to perform servicequotas:GetServiceQuota"),
    ],
)
def test_quota_api_unavailable_warns_and_goes_on(clients, code, message):
    sq, ec2, sq_stub, ec2_stub = clients
    ec2_stub.add_response("describe_instances", _running())
    sq_stub.add_client_error("get_service_quota", service_error_code=code, service_message=message)
    boxes = [{"name": "d2l", "instance_type": "g4dn.xlarge", "vcpus": 4, "market": "on-demand"}]

    report, refusals, warnings = quota.check_quotas(sq, ec2, REGION, boxes)

    assert refusals == []
    assert report[0]["limit"] is None and report[0]["ok"] is None
    (text,) = warnings
    assert code in text and "L-DB2E81BA" in text and "Going on" in text
    assert "servicequotas/home/services/ec2/quotas/L-DB2E81BA" in text


def test_no_gpu_family_needs_no_api_call(clients):
    sq, ec2, _, _ = clients
    boxes = [{"name": "cpu", "instance_type": "t3.micro", "vcpus": 2, "market": "on-demand"}]
    assert quota.check_quotas(sq, ec2, REGION, boxes) == ([], [], [])


def test_a_box_fits_when_one_of_its_candidates_does(clients):
    """Spot G has no room, on-demand G has: the box is not refused, its spot candidates are named and left out."""
    sq, ec2, sq_stub, ec2_stub = clients
    ec2_stub.add_response("describe_instances", _running())
    _expect_quota(sq_stub, "L-DB2E81BA", 8)
    _expect_quota(sq_stub, "L-3819A6DF", 0)
    zones = ("us-west-2a", "us-west-2b")
    box = {
        "name": "big",
        "candidates": [
            {"instance_type": "g5.2xlarge", "market": m, "zone": z} for m in ("spot", "on-demand") for z in zones
        ],
    }

    report, refusals, warnings, impossible = quota.plan_quotas(sq, ec2, REGION, [box], {"g5.2xlarge": 8})

    assert refusals == [] and warnings == []
    (out,) = impossible["big"]
    assert (out["instance_type"], out["market"]) == ("g5.2xlarge", "spot")
    assert "L-3819A6DF" in out["why"] and "is 0" in out["why"] and "quotas/L-3819A6DF" in out["why"]
    # counted where it fits; the quota without room shows in the report only through the boxes it refuses
    assert [(q["code"], q["boxes"], q["requested"], q["ok"]) for q in report] == [("L-DB2E81BA", ["big"], 8, True)]


def test_a_box_none_of_whose_candidates_fits_is_refused_with_each_quota(clients):
    sq, ec2, sq_stub, ec2_stub = clients
    ec2_stub.add_response("describe_instances", _running(("g4dn.xlarge", None, 2, 2)))
    # sorted by (market, class): on-demand G, then on-demand P
    _expect_quota(sq_stub, "L-DB2E81BA", 4)
    _expect_quota(sq_stub, "L-417A185B", 0)
    box = {"name": "h", "candidates": [{"instance_type": "p4d.24xlarge"}, {"instance_type": "g5.xlarge"}]}

    _, refusals, _, impossible = quota.plan_quotas(sq, ec2, REGION, [box], {"p4d.24xlarge": 96, "g5.xlarge": 4})

    (text,) = refusals
    assert text.startswith("Box 'h' fits none of its candidates' vCPU quotas in us-west-2")
    assert (
        "p4d.24xlarge on-demand: vCPU quota L-417A185B" in text and "g5.xlarge on-demand: vCPU quota L-DB2E81BA" in text
    )
    assert "4 in use" in text and "would be 8" in text
    assert [o["instance_type"] for o in impossible["h"]] == ["p4d.24xlarge", "g5.xlarge"]
