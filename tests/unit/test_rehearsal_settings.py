"""The rehearsal reads the project's settings through Ansible, exactly as the playbooks do: every file of
inventory/group_vars/all/ (a user's own too), in Ansible's order, later wins, templates rendered; the EC2
inventory plugin never runs. Each case works on a copy of inventory/ (with gpubox.yml and configure.yml, not
the files you may have added), never on the real one, and asserts only on values it sets itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.ground.rehearsal import Rehearsal, ansible_settings

SHIPPED = ("gpubox.yml", "configure.yml")


@pytest.fixture
def inventory(tmp_path, monkeypatch) -> Path:
    """A copy of the project's inventory/ (aws_ec2.yml included) with the shipped settings files. The EC2 API
    points at a closed local port: were the inventory plugin to run, the run would fail instead of calling AWS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    copy = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory", copy, symlinks=True)
    for entry in (copy / "group_vars" / "all").iterdir():
        if entry.name not in SHIPPED:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return copy


def test_a_users_file_beside_gpubox_yml_wins_and_templates_are_rendered(inventory):
    (inventory / "group_vars" / "all" / "zz-mine.yml").write_text(
        "gpubox_boxes: [{name: other}, {name: \"{{ 'sec' ~ 'ond' }}\"}]\n"
        "gpubox_jupyter_local_port: '{{ 9000 + 999 }}'\n"
        "gpubox_ssh_user: tester\n"
    )
    found = ansible_settings(["gpubox_boxes", "gpubox_jupyter_local_port", "gpubox_user"], [inventory])
    assert found == {
        "gpubox_boxes": [{"name": "other"}, {"name": "second"}],
        "gpubox_jupyter_local_port": 9999,
        "gpubox_user": "tester",  # configure.yml's "{{ gpubox_ssh_user }}", rendered with the user's value
    }


def test_files_load_in_ansibles_order_later_wins(inventory):
    folder = inventory / "group_vars" / "all"
    (folder / "mine").mkdir()
    (folder / "00-first.yml").write_text("order_a: 00-first\norder_b: 00-first\norder_c: 00-first\n")
    (folder / "mine" / "late.yml").write_text("order_b: mine/late\norder_c: mine/late\n")
    (folder / "zz-last.yml").write_text("order_c: zz-last\n")
    found = ansible_settings(["order_a", "order_b", "order_c"], [inventory])
    assert found == {"order_a": "00-first", "order_b": "mine/late", "order_c": "zz-last"}


def test_a_later_source_wins_and_the_rehearsal_starts_its_boxes(inventory, tmp_path, monkeypatch):
    monkeypatch.setattr("tests.ground.rehearsal.PROJECT_INVENTORY", inventory)
    (inventory / "group_vars" / "all" / "zz-mine.yml").write_text("gpubox_boxes: [{name: mine}]\n")
    later = tmp_path / "later"
    (later / "group_vars" / "all").mkdir(parents=True)
    (later / "group_vars" / "all" / "tests.yml").write_text(
        "gpubox_boxes: [{name: a}, {name: b}]\ngpubox_jupyter_local_port: 18889\n"
    )
    assert Rehearsal("unit", tmp_path / "state").boxes() == ["mine"]
    rehearsal = Rehearsal("unit", tmp_path / "state", settings_sources=[later])
    assert rehearsal.boxes() == ["a", "b"]
    assert rehearsal.settings["gpubox_jupyter_local_port"] == 18889
    # Boxes its caller declares need no reading at all.
    declared = Rehearsal("unit", tmp_path / "state", box_names=["x"], settings_sources=[tmp_path / "nowhere"])
    assert declared.boxes() == ["x"] and "settings" not in vars(declared)


def test_a_setting_set_nowhere_is_an_error_that_names_it(inventory):
    with pytest.raises(RuntimeError, match="nosuchsetting"):
        ansible_settings(["nosuchsetting"], [inventory])
