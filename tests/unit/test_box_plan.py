"""The plan (plugins/filter/plan.py): for each declared box that exists, each setting whose
declared value differs from what AWS has, and what the run does about it; nothing declared is left out."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, load_module

plan = load_module(ROOT / "plugins/filter/plan.py", "gpubox_plan")
lists = load_module(ROOT / "plugins/filter/candidates.py", "gpubox_candidates").box_lists

OFFERED = {"g4dn.xlarge": ["us-west-2a", "us-west-2b"], "g5.xlarge": ["us-west-2a"], "g6.xlarge": ["us-west-2b"]}
TYPES = [
    {"instance_type": t, "processor_info": {"supported_architectures": ["x86_64"]}, "gpu_info": {"gpus": [{}]}}
    for t in ("g4dn.xlarge", "g5.xlarge", "g6.xlarge")
] + [
    {
        "instance_type": "g5g.xlarge",
        "processor_info": {"supported_architectures": ["arm64"]},
        "gpu_info": {"gpus": [{}]},
    },
    {"instance_type": "t3.large", "processor_info": {"supported_architectures": ["x86_64"]}, "gpu_info": {}},
]


def declared(**box) -> dict:
    base = {
        "name": "d2l",
        "instance_type": "g4dn.xlarge",
        "market": "on-demand",
        "volume_size": 64,
        "autostop": 60,
        "max_hours": 0,
        "image": "ubuntu-24.04",
        "allow_no_gpu": False,
    }
    return lists({**base, **box})


def instance(state="running", itype="g4dn.xlarge", zone="us-west-2a", spot=False, **tags) -> dict:
    own = {
        "Name": "d2l",
        "ManagedBy": "gpubox",
        "Project": "gpubox",
        "Autostop": "60",
        "MaxHours": "0",
        "Image": "ubuntu-24.04",
        **tags,
    }
    return {
        "instance_id": "i-0123456789abcdef0",
        "instance_type": itype,
        "state": {"name": state},
        "placement": {"availability_zone": zone},
        "architecture": "x86_64",
        "instance_lifecycle": "spot" if spot else None,
        "root_device_name": "/dev/sda1",
        "block_device_mappings": [{"device_name": "/dev/sda1", "ebs": {"volume_id": "vol-root"}}],
        "tags": own,
    }


VOLUMES = [{"id": "vol-root", "size": 64, "instance_ids": ["i-0123456789abcdef0"]}]


def plan_of(box, inst, **kw):
    return plan.box_plan([box], [inst], VOLUMES, offered=kw.pop("offered", OFFERED), types=kw.pop("types", TYPES), **kw)


def settings(result) -> dict[str, str]:
    return {r["setting"]: r["verdict"] for r in result["rows"]}


def test_a_box_as_declared_has_no_plan():
    result = plan_of(declared(), instance())
    assert result == {"rows": [], "changes": [], "check": {}, "data": [], "lines": []}


def test_autostop_and_max_hours_are_retagged_for_the_agent():
    result = plan_of(declared(autostop=7, max_hours=3), instance())
    assert settings(result) == {"autostop": "tag", "max_hours": "tag"}
    assert result["changes"] == [
        {"box": "d2l", "instance_id": "i-0123456789abcdef0", "kind": "tags", "tags": {"Autostop": "7", "MaxHours": "3"}}
    ]
    assert plan_of(declared(autostop=False), instance(Autostop="0"))["rows"] == []  # false is 0, off


def test_a_type_change_waits_for_a_stop_or_an_explicit_restart():
    box = declared(instance_type=["g5.xlarge", "g4dn.2xlarge"])
    running = plan_of(box, instance())
    assert settings(running) == {"instance_type": "wait"} and running["changes"] == []
    (line,) = [x for x in running["lines"] if x.startswith("Next:")]
    assert "gpubox_allow_restart=yes" in line and "playbooks/stop.yml -e gpubox_only=d2l" in line
    restart = plan_of(box, instance(), allow_restart=True)
    assert restart["changes"][0] | {"instance_types": None} == {
        "box": "d2l",
        "instance_id": "i-0123456789abcdef0",
        "kind": "type",
        "instance_type": "g5.xlarge",
        "restart": True,
        "instance_types": None,
    }
    stopped = plan_of(box, instance("stopped"))
    assert settings(stopped) == {"instance_type": "now"} and stopped["changes"][0]["restart"] is False
    assert settings(plan_of(box, instance("stopping"))) == {"instance_type": "later"}


def test_the_new_type_is_the_first_declared_one_the_zone_offers_for_the_image():
    # g6 only in us-west-2b, g5g is arm64, t3 has no GPU: in us-west-2a only g5.xlarge fits
    box = declared(instance_type=["g6.xlarge", "g5g.xlarge", "t3.large", "g5.xlarge"])
    result = plan_of(box, instance("stopped"))
    assert result["changes"][0]["instance_type"] == "g5.xlarge"
    nowhere = plan_of(declared(instance_type=["g6.xlarge"]), instance("stopped"))
    assert settings(nowhere) == {"instance_type": "cannot"} and nowhere["changes"] == []
    assert "none of g6.xlarge is offered in its zone us-west-2a" in "\n".join(nowhere["lines"])


def test_types_are_checked_before_a_change_is_planned():
    result = plan.box_plan([declared(instance_type="g5.xlarge")], [instance("stopped")], VOLUMES)
    assert result["check"] == {"d2l": ["g5.xlarge"]} and result["changes"] == []


def test_a_spot_box_keeps_its_type():
    result = plan_of(declared(instance_type="g5.xlarge", market="spot"), instance(spot=True))
    assert settings(result) == {"instance_type": "cannot"} and result["changes"] == []
    assert "image.yml -e gpubox_box=d2l" in "\n".join(result["lines"])


def test_the_root_volume_grows_and_never_shrinks():
    grown = plan_of(declared(volume_size=100), instance())
    assert grown["changes"] == [
        {"box": "d2l", "instance_id": "i-0123456789abcdef0", "kind": "volume", "volume_id": "vol-root", "size": 100}
    ]
    shrunk = plan_of(declared(volume_size=32), instance())
    assert settings(shrunk) == {"volume_size": "cannot"} and shrunk["changes"] == []
    assert "never shrinks: declare volume_size: 64 or more" in "\n".join(shrunk["lines"])


def test_a_declared_data_volume_is_attached_grown_and_never_shrunk_or_deleted():
    made = plan_of(declared(data_volume=100), instance())
    assert settings(made) == {"data_volume": "data"} and made["data"] == [{"name": "d2l", "data_volume": 100}]
    assert made["changes"] == []  # ec2_data's, not ec2_update's
    data = {"id": "vol-data", "size": 100, "instance_ids": ["i-0123456789abcdef0"], "tags": {"DataOf": "d2l"}}
    volumes = [*VOLUMES, data]
    same = plan.box_plan([declared(data_volume=100)], [instance(DataVolume="vol-data")], volumes)
    assert same["rows"] == [] and same["data"] == []
    grown = plan.box_plan([declared(data_volume=150)], [instance(DataVolume="vol-data")], volumes)
    assert settings(grown) == {"data_volume": "grow"} and grown["data"] == [{"name": "d2l", "data_volume": 150}]
    smaller = plan.box_plan([declared(data_volume=50)], [instance(DataVolume="vol-data")], volumes)
    assert settings(smaller) == {"data_volume": "cannot"} and smaller["data"] == []
    dropped = plan.box_plan([declared()], [instance(DataVolume="vol-data")], volumes)
    text = "\n".join(dropped["lines"])
    assert settings(dropped) == {"data_volume": "cannot"} and "never deletes a data volume unasked" in text
    assert "-e gpubox_delete_data=yes" in text
    # attached, but the instance does not name it (the inventory would not hand it to the box): named again, no row
    unnamed = plan.box_plan([declared(data_volume=100)], [instance()], volumes)
    assert unnamed["rows"] == [] and unnamed["data"] == [{"name": "d2l", "data_volume": 100}]
    # a volume tagged for another box, or not attached to this instance, is not this box's
    other = [*VOLUMES, {**data, "tags": {"DataOf": "lab"}}]
    assert plan.box_plan([declared(data_volume=100)], [instance()], other)["data"] == [
        {"name": "d2l", "data_volume": 100}
    ]


@pytest.mark.parametrize(
    "box, inst, setting",
    [
        (declared(market="spot"), instance(), "market"),
        (declared(image="my:d2l-ready"), instance(), "image"),
        (declared(zones=["us-west-2b"]), instance(), "zones"),
    ],
)
def test_what_only_a_launch_can_change_is_explained_with_the_commands(box, inst, setting):
    result = plan_of(box, inst)
    assert settings(result) == {setting: "cannot"} and result["changes"] == []
    text = "\n".join(result["lines"])
    assert "playbooks/terminate.yml -e gpubox_only=d2l -e gpubox_confirm=yes" in text


def test_the_plan_is_an_aligned_table_then_what_to_run():
    result = plan_of(declared(autostop=7, volume_size=100, market="spot"), instance(), project="course")
    head, header, *rest = result["lines"]
    assert head == "Project course: what is declared differs from what the boxes are."
    assert header.split() == ["BOX", "SETTING", "NOW", "DECLARED", "THIS", "RUN"]
    table = rest[:3]
    assert [line.split()[1] for line in table] == ["autostop", "volume_size", "market"]
    assert len({line.index(line.split()[2]) for line in table}) == 1  # the NOW column is aligned
    assert rest[3].startswith("Next: d2l market:")


def test_boxes_that_do_not_exist_or_are_not_declared_are_not_planned():
    other = instance(Name="other")
    assert plan_of(declared(), {**other, "instance_id": "i-1"})["rows"] == []
    terminated = instance("terminated")
    assert plan_of(declared(autostop=7), terminated)["rows"] == []
    untagged = instance()
    del untagged["tags"]["Autostop"]  # launched before the tag existed: not compared
    assert plan_of(declared(autostop=7), untagged)["rows"] == []
