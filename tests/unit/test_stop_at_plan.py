"""A box's stop_at in the plan (plugins/filter/plan.py): a declared daily stop that differs from the instance's StopAt
tag is a row and a tag change, merged with the box's other tag changes; a box without the tag has none; the plan's
lines keep their "Next:" notes."""

from __future__ import annotations

from test_box_plan import declared, instance, plan_of


def amended(box, inst):
    return plan_of(box, inst)


def test_the_same_stop_at_or_none_on_both_sides_leaves_the_plan_as_it_is():
    for box, inst in (
        (declared(), instance()),  # launched before the tag: no daily stop, none declared
        (declared(stop_at=""), instance(StopAt="")),
        (declared(stop_at="20:00 Europe/Berlin"), instance(StopAt="20:00 Europe/Berlin")),
    ):
        assert plan_of(box, inst) == {"rows": [], "changes": [], "check": {}, "data": [], "lines": []}


def test_a_new_stop_at_is_a_tag_change_and_a_row():
    result = amended(declared(stop_at="20:00 Europe/Berlin"), instance())
    assert [(r["setting"], r["now"], r["declared"], r["verdict"]) for r in result["rows"]] == [
        ("stop_at", "none", "20:00 Europe/Berlin", "tag")
    ]
    assert result["changes"] == [
        {"box": "d2l", "instance_id": "i-0123456789abcdef0", "kind": "tags", "tags": {"StopAt": "20:00 Europe/Berlin"}}
    ]
    assert result["lines"][2].split()[:4] == ["d2l", "stop_at", "none", "20:00"]


def test_turned_off_it_is_merged_with_the_other_tags_and_the_notes_stay():
    box = declared(autostop=7, volume_size=50)  # 50 < 64: a row that cannot change, with a note
    result = amended(box, instance(StopAt="07:30"))
    assert result["changes"] == [
        {"box": "d2l", "instance_id": "i-0123456789abcdef0", "kind": "tags", "tags": {"Autostop": "7", "StopAt": ""}}
    ]
    assert [r["setting"] for r in result["rows"]] == ["autostop", "stop_at", "volume_size"]
    assert result["lines"][-1].startswith("Next: d2l volume_size: an EBS volume never shrinks")
    assert sum(line.startswith("Next:") for line in result["lines"]) == 1


def test_a_box_that_does_not_exist_is_not_planned():
    inst = instance(state="terminated", StopAt="")
    assert plan_of(declared(stop_at="20:00"), inst)["changes"] == []
