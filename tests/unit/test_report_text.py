"""The text gpubox prints, made in Python (plugins/filter/report.py, the table of plugins/module_utils/table.py, the
preflight's lines in plugins/filter/candidates.py, the spot requests of plugins/filter/spot.py): aligned tables,
the launch report, the rows of list.yml and costs.yml, with untrusted names escaped."""

from __future__ import annotations

from tests.conftest import ROOT, load_module

report = load_module(ROOT / "plugins/filter/report.py", "gpubox_report_filters")
candidates = load_module(ROOT / "plugins/filter/candidates.py", "gpubox_candidates_filters")
spot = load_module(ROOT / "plugins/filter/spot.py", "gpubox_spot_filters")
costs = load_module(ROOT / "plugins/filter/costs.py", "gpubox_costs_filters")


def test_table_aligns_every_column_to_its_widest_cell():
    rows = [["NAME", "ID", "$"], ["a-much-longer-name", "i-1", "1.5"], ["b", "i-12345", ""]]
    assert report.table(rows) == [
        "NAME                ID       $",
        "a-much-longer-name  i-1      1.5",
        "b                   i-12345",  # no trailing blanks
    ]


def test_table_right_aligns_the_columns_asked_for():
    rows = [["KIND", "$/MONTH"], ["volume", "8.00"], ["TOTAL", "742.49 + ?"]]
    assert report.table(rows, right=[-1]) == ["KIND       $/MONTH", "volume        8.00", "TOTAL   742.49 + ?"]


def test_table_shows_cells_as_text_and_nothing_for_no_rows():
    assert report.table([["N", "X"], [1, None]]) == ["N  X", "1  None"]
    assert report.table([]) == []


def test_attempt_table_is_the_same_table():
    ec2 = load_module(ROOT / "plugins/module_utils/gpubox_ec2.py", "gpubox_ec2_utils")
    attempts = [
        {"instance_type": "g5.xlarge", "zone": "us-west-2a", "market": "spot", "outcome": "capacity", "code": "X"},
        {
            "instance_type": "g6.xlarge",
            "zone": "b",
            "market": "on-demand",
            "outcome": "skipped",
            "code": "",
            "message": "m",
        },
    ]
    assert ec2.attempt_table(attempts) == [
        "#  type       zone        market     outcome",
        "1  g5.xlarge  us-west-2a  spot       capacity: X",
        "2  g6.xlarge  b           on-demand  not tried: m",
    ]


FIRST = {"instance_type": "g5.xlarge", "zone": "us-west-2a", "market": "spot"}


def launched(name, choice, **more):
    return {"item": {"name": name, "candidates": [FIRST]}, "launched": True, "choice": choice, **more}


def test_launch_report_says_where_each_box_went_and_why_not_first():
    results = [
        launched("a", {**FIRST, "index": 1, "of": 2, "first_choice": True}, table=["T"], attempt_log=[]),
        launched(
            "b",
            {"instance_type": "g6.xlarge", "zone": "us-west-2b", "market": "on-demand", "index": 4, "of": 6,
             "first_choice": False},
            attempts=3,
            table=["#  type", "1  g5.xlarge"],
            attempt_log=[{"outcome": "capacity", "advice": ""}, {"outcome": "quota", "advice": "raise L-1"}],
        ),
        {"item": {"name": "c", "candidates": [FIRST]}, "launched": False},
        {"item": {"name": "d", "candidates": [FIRST]}, "skipped": True},
    ]  # fmt: skip
    assert report.launch_report(results) == [
        "Box 'a': launched as g5.xlarge in us-west-2a, spot, its first choice",
        "Box 'b': launched as g6.xlarge in us-west-2b, on-demand - NOT its first choice (g5.xlarge in us-west-2a, "
        "spot) but candidate 4 of 6 (round 3 over the candidates), after:",
        "  #  type",
        "  1  g5.xlarge",
        "  quota: raise L-1",
    ]
    assert report.launch_report(None) == []


def box(name, **more):
    return {
        "instance_id": "i-1",
        "instance_type": "g5.xlarge",
        "state": {"name": "running"},
        "tags": {"Name": name, "Autostop": "60", "MaxHours": "8"},
        "launch_time": "2026-01-02T09:30:00+00:00",
        "placement": {"availability_zone": "us-west-2a"},
        "public_ip_address": "54.1.2.3",
        "public_dns_name": "ec2-54-1-2-3.compute.amazonaws.com",
        **more,
    }


TYPES = [{"instance_type": "g5.xlarge", "gpu_info": {"gpus": [{"count": 1, "name": "A10G"}]}}]


def test_box_rows():
    stopped = box("b\nx", instance_id="i-2", state={"name": "stopped"}, instance_lifecycle="spot")
    stopped["tags"] = {"Name": "b\nx", "Autostop": "0", "MaxHours": "0"}
    del stopped["public_ip_address"]
    stopped["public_dns_name"] = ""
    odd = box("c", instance_id="i-3", instance_type="t9.odd")
    odd["tags"] = {"Name": "c", "Autostop": "5\n", "MaxHours": "08"}
    rows = report.box_rows([box("a"), stopped, odd], TYPES, {}, {"g5.xlarge": 1.006})
    assert rows[0][0] == "NAME" and rows[0][-1] == "$/H ON-DEMAND"
    assert rows[1] == ["a", "i-1", "g5.xlarge", "1 \u00d7 A10G", "running", "on-demand", "60 min, 8 h cap",
                       "54.1.2.3 ec2-54-1-2-3.compute.amazonaws.com", "2026-01-02 09:30", "1.006"]  # fmt: skip
    assert rows[2][0] == '"b\\nx"' and rows[2][5:8] == ["spot", "off", "-"]
    # a tag is anyone's to write: one that is not a whole number is not shown, a newline included
    assert rows[3][3] == "-" and rows[3][6] == "-" and rows[3][-1] == "?"
    assert report.box_rows([box("a")], TYPES, {"g5.xlarge": 1.1}, {"g5.xlarge": 1.006})[1][-1] == "1.100"


def test_box_cost_rows_end_with_the_totals():
    boxes = [box("a"), box("b", instance_id="i-2", state={"name": "stopped"})]
    volumes = [{"id": "vol-1", "size": 100, "type": "gp3", "instance_ids": ["i-1"]}]
    prices = {"table": {"g5.xlarge": 1.006}, "ebs_table": {"gp3": 0.08}}
    found = costs.box_costs(boxes, volumes, prices, now="2026-01-02T12:00:00+00:00")
    assert report.box_cost_rows(boxes, found) == [
        ["NAME", "STATE", "$/H NOW", "HOURS UP", "ACCRUED $", "DISKS", "EBS $/MONTH", "AUTOSTOP", "MAX HOURS"],
        ["a", "running", "1.006 table", "2.5", "2.52", "100 GiB gp3", "8.00", "60 min", "8 h"],
        ["b", "stopped", "-", "-", "-", "-", "-", "60 min", "8 h"],
        ["TOTAL", "", "1.006", "", "2.52", "", "8.00", "", ""],
    ]


def test_kept_rows():
    volumes = [
        {"id": "vol-9", "size": 50, "type": "gp3", "zone": "us-west-2b", "tags": {"DataOf": "old"}},
        {"id": "vol-10", "size": 3, "type": "new", "zone": "us-west-2c", "tags": {"DataOf": "a b"}},
    ]
    assert report.kept_rows(volumes, {"gp3": 0.08}) == [
        ["KEPT DATA VOLUME OF", "VOLUME ID", "ZONE", "SIZE", "EBS $/MONTH"],
        ["old", "vol-9", "us-west-2b", "50 GiB gp3", "4.00"],
        ['"a b"', "vol-10", "us-west-2c", "3 GiB new", "0.00"],
    ]


def test_sweep_rows_of_every_kind():
    base = {"region": "r", "tags": {}, "name": "n"}
    resources = [
        {**base, "kind": "instance", "id": "i-1", "state": "stopped", "instance_type": "g5.xlarge", "market": "spot"},
        {**base, "kind": "volume", "id": "vol-1", "name": "x\ty", "state": "in-use", "size": 100,
         "volume_type": "gp3", "instance_ids": ["i-1", "i-2"], "tags": {"Project": "p"}},
        {**base, "kind": "snapshot", "id": "snap-1", "state": "completed", "size": 8, "storage_tier": "archive"},
        {**base, "kind": "image", "id": "ami-1", "state": "available", "snapshots": [{"id": "snap-1", "size": 8}]},
        {**base, "kind": "spot request", "id": "sir-1", "state": "open", "instance_id": None},
        {**base, "kind": "key pair", "id": "key-1", "name": None},
    ]  # fmt: skip
    found = costs.sweep_costs(resources, {"ebs_table": {"gp3": 0.08}, "snapshot": {"archive": 0.0125}})
    rows = report.sweep_rows(found, every=True)
    assert rows[0] == ["REGION", "PROJECT", "KIND", "ID", "NAME", "STATE / SIZE", "$/MONTH"]
    assert rows[1:] == [
        ["r", "-", "instance", "i-1", "n", "stopped g5.xlarge spot", "0.00"],
        ["r", "p", "volume", "vol-1", '"x\\ty"', "100 GiB gp3 in-use on i-1, i-2", "8.00"],
        ["r", "-", "snapshot", "snap-1", "n", "8 GiB completed archive", "in ami-1"],
        ["r", "-", "image", "ami-1", "n", "available 8 GiB in 1 snapshot", "0.10"],
        ["r", "-", "spot request", "sir-1", "n", "open", "-"],
        ["r", "-", "key pair", "key-1", "-", "-", "0.00"],
        ["TOTAL", "", "", "", "", "", "8.10"],
    ]
    assert [len(row) for row in report.sweep_rows(found)] == [6] * 8


def test_unusable_candidates_say_why():
    places = {
        "a": {
            "impossible": [
                {"instance_type": "g9", "why": "not offered", "zones": []},
                {"instance_type": "g5", "why": "not in zones", "zones": ["z1", "z2"]},
                {"instance_type": "g6", "why": "no subnet", "zones": ["z3"]},
            ]
        },
        "b": {"impossible": []},
    }
    quota = {"b": [{"instance_type": "g5", "market": "spot", "why": "quota full"}]}
    assert candidates.unusable_candidates([{"name": "a"}, {"name": "b"}], places, quota, "us-west-2") == [
        "Box 'a': g9 is not offered in us-west-2 (offered in no zone)",
        "Box 'a': g5 is not offered in the box's zones (offered in z1, z2)",
        "Box 'a': g6 is offered only in zones without a default subnet (offered in z3)",
        "Box 'b': g5 spot: quota full",
    ]


def test_architectures_prefer_x86_64():
    types = {
        "g5": {"processor_info": {"supported_architectures": ["i386", "x86_64"]}},
        "g5g": {"processor_info": {"supported_architectures": ["arm64"]}},
    }
    assert candidates.architectures(["g5", "g5g"], types) == ["x86_64", "arm64"]


def test_owned_requests_need_every_tag_exactly():
    def request(rid, **tags):
        return {"spot_instance_request_id": rid, "tags": [{"key": k, "value": v} for k, v in tags.items()]}

    requests = [
        request("sir-1", Project="p", ManagedBy="gpubox", Name="n1"),
        request("sir-2", Project="p*", ManagedBy="gpubox"),  # a wildcard the describe filter matched
        request("sir-3", Project="p", ManagedBy="gpubox"),
        {"spot_instance_request_id": "sir-4"},
    ]
    owned = spot.owned_requests(requests, {"Project": "p", "ManagedBy": "gpubox"})
    assert [(r["spot_instance_request_id"], r["name"]) for r in owned] == [("sir-1", "n1"), ("sir-3", "")]
