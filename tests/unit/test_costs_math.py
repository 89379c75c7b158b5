"""The cost arithmetic of list.yml and costs.yml (plugins/filter/costs.py): hours since launch,
accrued, $/month, totals and rounding, on made-up boxes and resources with known answers."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, load_module

costs = load_module(ROOT / "plugins/filter/costs.py", "gpubox_costs_filters")

NOW = "2026-01-02T12:00:00+00:00"


@pytest.mark.parametrize(
    ("start", "hours"),
    [
        ("2026-01-02T09:30:00+00:00", 2.5),
        ("2026-01-01T12:00:00.000Z", 24.0),  # AWS's Z form
        ("2026-01-02T12:30:00+01:00", 0.5),  # another offset: 11:30 UTC
        ("2026-01-02T12:00:00", 0.0),  # no offset: UTC
        ("2026-01-02T13:00:00+00:00", 0.0),  # a clock ahead of ours: never negative
    ],
)
def test_hours_since_launch(start, hours):
    assert costs.hours_since(start, NOW) == pytest.approx(hours)


@pytest.mark.parametrize("start", [None, "", "yesterday", 42])
def test_hours_since_an_unreadable_time_is_unknown(start):
    assert costs.hours_since(start, NOW) is None


def test_hours_since_counts_to_the_present_by_default():
    assert costs.hours_since("2000-01-01T00:00:00+00:00") > 24 * 365 * 25


def test_accrued_and_per_month_are_exact_products():
    assert costs.accrued(0.526, 2.5) == pytest.approx(1.315)
    assert costs.usd(costs.accrued(0.526, 2.5)) == "1.32"  # 1.315 rounds half up, as a float would not
    assert costs.per_month(0.526) == pytest.approx(383.98)
    assert costs.accrued(None, 2) is None and costs.accrued(0.5, None) is None and costs.per_month(None) is None


def test_gb_month():
    assert costs.gb_month(64, 0.08) == pytest.approx(5.12)
    assert costs.gb_month(30, 0.10) == pytest.approx(3.0)
    assert costs.gb_month(64, None) is None


@pytest.mark.parametrize(
    ("amount", "places", "shown"),
    [
        (0.125, 2, "0.13"),
        (2.675, 2, "2.68"),  # round(2.675, 2) is 2.67 in binary floating point
        (0.005, 2, "0.01"),
        (0.0049, 2, "0.00"),
        (383.98, 2, "383.98"),
        (0, 2, "0.00"),
        (1.23456, 3, "1.235"),
        (None, 2, "?"),
        ("nan", 2, "?"),
    ],
)
def test_usd_rounds_half_up(amount, places, shown):
    assert costs.usd(amount, places) == shown


@pytest.mark.parametrize(
    ("hourly", "shown"),
    [(0.526, "0.526"), (0.5, "0.500"), (0.1578, "0.1578"), (2.24208, "2.24208"), (0.00001, "0.00001"), (None, "?")],
)
def test_rate_keeps_the_decimals_a_price_has(hourly, shown):
    assert costs.rate(hourly) == shown


def test_hours_text():
    assert costs.hours_text(2.449) == "2.4" and costs.hours_text(2.45) == "2.5" and costs.hours_text(None) == "?"


def test_total_adds_exactly_and_counts_the_unknown():
    assert costs.total([0.1] * 10) == {"usd": 1.0, "unknown": 0}  # sum(0.1 x 10) is 0.9999999999999999 in floats
    assert costs.total([1.005, 2.0, None, None]) == {"usd": 3.005, "unknown": 2}
    assert costs.total([]) == {"usd": 0.0, "unknown": 0}
    # the total is the rounded exact sum, not the sum of rounded parts (0.01 + 0.01 + 0.01)
    assert costs.usd(costs.total([0.005, 0.005, 0.004])["usd"]) == "0.01"


@pytest.mark.parametrize(
    ("tags", "key", "shown"),
    [
        ({"Autostop": "60"}, "Autostop", "60 min"),
        ({"Autostop": "0"}, "Autostop", "off"),
        ({"MaxHours": "8"}, "MaxHours", "8 h"),
        ({}, "Autostop", "-"),
        (None, "MaxHours", "-"),
        ({"Autostop": "60\n\x1b[31m"}, "Autostop", '"60\\n\\u001b[31m"'),  # anyone's to write: shown escaped
        ({"Autostop": "٣"}, "Autostop", '"\\u0663"'),  # a digit, but not an ASCII one
        ({"Autostop": "x" * 40}, "Autostop", '"' + "x" * 24 + '"'),
    ],
)
def test_tag_minutes(tags, key, shown):
    assert costs.tag_minutes(tags, key, "min" if key == "Autostop" else "h") == shown


def box(
    instance_id, state, itype="g4dn.xlarge", spot=False, zone="us-west-2a", launched="2026-01-02T10:00:00Z", **tags
):
    found = {
        "instance_id": instance_id,
        "instance_type": itype,
        "state": {"name": state},
        "placement": {"availability_zone": zone},
        "launch_time": launched,
        "tags": tags,
    }
    if spot:
        found["instance_lifecycle"] = "spot"
    return found


PRICES = {
    "ondemand": {"g5.xlarge": 1.0},
    "table": {"g4dn.xlarge": 0.526, "g5.xlarge": 1.006},
    "spot": {"us-west-2b": {"g4dn.xlarge": 0.2}},
    "ebs": {},
    "ebs_table": {"gp3": 0.08, "gp2": 0.10},
}


def test_box_costs_of_running_spot_and_stopped_boxes():
    boxes = [
        box("i-1", "running", Autostop="60", MaxHours="0"),
        box("i-2", "running", "g5.xlarge"),
        box("i-3", "running", spot=True, zone="us-west-2b", MaxHours="8"),
        box("i-4", "running", spot=True, zone="us-west-2c"),  # no spot price for that zone
        box("i-5", "stopped", Autostop="0"),
    ]
    volumes = [
        {"id": "vol-1", "size": 64, "type": "gp3", "instance_ids": ["i-1"]},
        {"id": "vol-2", "size": 100, "type": "gp3", "instance_ids": ["i-1"]},
        {"id": "vol-5", "size": 30, "type": "gp2", "instance_ids": ["i-5"]},
        {"id": "vol-6", "size": 10, "type": "io9", "instance_ids": ["i-2"]},  # a type without a price
    ]

    found = costs.box_costs(boxes, volumes, PRICES, NOW)
    one, two, three, four, five = (found["boxes"][f"i-{n}"] for n in range(1, 6))

    assert (one["hourly"], one["source"], one["hours"]) == (0.526, "table", 2.0)
    assert one["accrued"] == pytest.approx(1.052)
    assert one["disks"] == [{"size": 64, "type": "gp3"}, {"size": 100, "type": "gp3"}]
    assert one["ebs_month"] == pytest.approx(13.12)
    assert (one["autostop"], one["max_hours"]) == ("60 min", "off")
    assert (two["hourly"], two["source"]) == (1.0, "live")  # the live price wins over the table
    assert two["ebs_month"] is None  # io9 has no price
    assert (three["hourly"], three["source"], three["market"]) == (0.2, "spot", "spot")
    assert three["accrued"] == pytest.approx(0.4) and three["max_hours"] == "8 h" and three["autostop"] == "-"
    assert (four["hourly"], four["accrued"], four["source"]) == (None, None, None)  # spot: never the on-demand price
    assert not five["running"] and (five["hourly"], five["hours"], five["accrued"]) == (None, None, None)
    assert five["ebs_month"] == pytest.approx(3.0) and five["autostop"] == "off"

    assert found["hourly"] == {"usd": pytest.approx(1.726), "unknown": 1}
    assert found["accrued"] == {"usd": pytest.approx(3.452), "unknown": 1}
    assert found["ebs_month"] == {"usd": pytest.approx(16.12), "unknown": 1}
    assert costs.usd(found["ebs_month"]["usd"]) == "16.12"


def test_running_spot_asks_each_type_and_zone_once():
    boxes = [
        box("i-1", "running", spot=True, zone="us-west-2b"),
        box("i-2", "pending", spot=True, zone="us-west-2b"),
        box("i-3", "stopped", spot=True, zone="us-west-2c"),
        box("i-4", "running"),
    ]
    swept = [
        {"kind": "instance", "market": "spot", "state": "running", "zone": "eu-west-1a", "instance_type": "g5.xlarge"},
        {"kind": "spot request", "market": "spot", "state": "active", "zone": "eu-west-1a", "instance_type": "p5"},
    ]
    assert costs.running_spot(boxes + swept) == [
        {"instance_type": "g4dn.xlarge", "zone": "us-west-2b"},
        {"instance_type": "g5.xlarge", "zone": "eu-west-1a"},
    ]


def res(kind, rid, region="us-west-2", **more):
    return {"region": region, "kind": kind, "id": rid, "name": None, "tags": {}, **more}


def test_sweep_costs_per_month_once_each():
    resources = [
        res("instance", "i-1", state="running", instance_type="g4dn.xlarge", market="on-demand", zone="us-west-2a"),
        res("instance", "i-2", state="stopped", instance_type="g4dn.xlarge", market="on-demand", zone="us-west-2a"),
        res(
            "instance", "i-3", "eu-west-1", state="running", instance_type="g5.xlarge", market="spot", zone="eu-west-1a"
        ),
        res("instance", "i-4", state="running", instance_type="x9.huge", market="on-demand", zone="us-west-2a"),
        res("volume", "vol-1", state="in-use", size=64, volume_type="gp3"),
        res("volume", "vol-2", "eu-west-1", state="available", size=100, volume_type="gp2"),
        res("snapshot", "snap-1", state="completed", size=64, storage_tier="standard"),
        res("snapshot", "snap-2", state="completed", size=20, storage_tier="archive"),
        res("snapshot", "snap-3", state="completed", size=8, storage_tier="standard"),
        res("image", "ami-1", state="available", snapshots=[{"id": "snap-1", "size": 64}, {"id": "snap-9", "size": 8}]),
        res("key pair", "key-1"),
        res("security group", "sg-1"),
        res("spot request", "sir-1", state="active", instance_id="i-3"),
    ]
    prices = {
        "ondemand": {"us-west-2": {"g4dn.xlarge": 0.5}},
        "spot": {"eu-west-1": {"eu-west-1a": {"g5.xlarge": 0.3}}},
        "ebs": {"eu-west-1": {"gp2": 0.11}},
        "table": {"g4dn.xlarge": 0.526},
        "ebs_table": {"gp3": 0.08, "gp2": 0.10},
        "snapshot": {"standard": 0.05, "archive": 0.0125},
    }

    found = costs.sweep_costs(resources, prices)
    month = {r["id"]: r["month"] for r in found["rows"]}

    assert month["i-1"] == pytest.approx(365.0)  # live 0.5 x 730
    assert month["i-2"] == 0.0
    assert month["i-3"] == pytest.approx(219.0)  # spot 0.3 x 730
    assert month["i-4"] is None  # no price anywhere
    assert month["vol-1"] == pytest.approx(5.12) and month["vol-2"] == pytest.approx(11.0)
    assert month["snap-2"] == pytest.approx(0.25) and month["snap-3"] == pytest.approx(0.4)
    assert month["ami-1"] == pytest.approx(3.6)  # 64 + 8 GiB standard, snap-9 not listed itself
    assert month["key-1"] == month["sg-1"] == month["sir-1"] == 0.0
    in_image = {r["id"]: r["in_image"] for r in found["rows"]}
    assert in_image["snap-1"] == "ami-1" and in_image["snap-3"] is None
    # snap-1 is the image's: counted under ami-1 only
    assert found["total"] == {"usd": pytest.approx(365 + 219 + 5.12 + 11 + 0.25 + 0.4 + 3.6), "unknown": 1}
    assert found["sources"] == {
        "instance": {"live": 1, "table": 0, "spot": 1, "none": 1},
        "volume": {"live": 1, "table": 1, "none": 0},
    }
    # by region, then kind, then name and id
    assert [r["id"] for r in found["rows"]][:3] == ["i-3", "vol-2", "i-1"]


def test_sweep_costs_of_nothing():
    assert costs.sweep_costs([], {}) == {
        "rows": [],
        "total": {"usd": 0.0, "unknown": 0},
        "sources": {
            "instance": {"live": 0, "table": 0, "spot": 0, "none": 0},
            "volume": {"live": 0, "table": 0, "none": 0},
        },
    }
