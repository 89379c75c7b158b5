"""The controller-side checks that let a provisioning rerun skip a module run: a security group already as wanted
(plugins/filter/firewall.py) and a file's mode (plugins/filter/files.py)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import sys

import pytest

from tests.conftest import ROOT, changed_count, load_module, run_local_play

firewall = load_module(ROOT / "plugins/filter/firewall.py", "gpubox_firewall_filter")
files = load_module(ROOT / "plugins/filter/files.py", "gpubox_files_filter")

CIDR = "198.51.100.7/32"
DESC = "SSH (Jupyter goes through the SSH tunnel)"
TAGS = {"ManagedBy": "gpubox", "Project": "p", "Name": "gpubox-p-ssh"}


def group(**changes) -> dict:
    base = {
        "group_id": "sg-1",
        "vpc_id": "vpc-1",
        "ip_permissions": [
            {
                "ip_protocol": "tcp",
                "from_port": 22,
                "to_port": 22,
                "ip_ranges": [{"cidr_ip": CIDR, "description": DESC}],
                "ipv6_ranges": [],
                "prefix_list_ids": [],
                "user_id_group_pairs": [],
            }
        ],
        "ip_permissions_egress": [{"ip_protocol": "-1", "ip_ranges": [{"cidr_ip": "0.0.0.0/0"}]}],
        "tags": dict(TAGS, Extra="kept"),
    }
    return base | changes


def drift(g) -> list[str]:
    return firewall.firewall_drift(g, "vpc-1", CIDR, DESC, TAGS)


def test_a_group_as_wanted_has_no_drift():
    assert drift(group()) == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"vpc_id": "vpc-2"}, "VPC"),
        ({"ip_permissions": []}, "ingress"),
        ({"ip_permissions": group()["ip_permissions"] * 2}, "ingress"),
        ({"ip_permissions": [dict(group()["ip_permissions"][0], from_port=8888, to_port=8888)]}, "ingress"),
        (
            {
                "ip_permissions": [
                    dict(group()["ip_permissions"][0], ip_ranges=[{"cidr_ip": "0.0.0.0/0", "description": DESC}])
                ]
            },
            "ingress",
        ),
        ({"ip_permissions": [dict(group()["ip_permissions"][0], ip_ranges=[{"cidr_ip": CIDR}])]}, "ingress"),
        ({"ip_permissions": [dict(group()["ip_permissions"][0], ipv6_ranges=[{"cidr_ipv6": "::/0"}])]}, "ingress"),
        (
            {"ip_permissions": [dict(group()["ip_permissions"][0], user_id_group_pairs=[{"group_id": "sg-2"}])]},
            "ingress",
        ),
        ({"ip_permissions_egress": []}, "egress"),
        ({"tags": {"ManagedBy": "gpubox", "Project": "other", "Name": "gpubox-p-ssh"}}, "tags"),
    ],
)
def test_any_difference_is_drift(change, why):
    found = drift(group(**change))
    assert found and why in " ".join(found), found


@pytest.mark.parametrize("value", [None, {}, [], "sg-1"])
def test_a_group_not_read_goes_through_the_module(value):
    assert drift(value)


def test_file_mode(tmp_path):
    key = tmp_path / "key"
    key.write_text("x")
    key.chmod(0o400)
    assert files.file_mode(key) == "0400"
    key.chmod(0o644)
    assert files.file_mode(str(key)) == "0644"
    tmp_path.chmod(0o700)
    assert files.file_mode(tmp_path) == "0700"
    assert files.file_mode(tmp_path / "missing") == ""
    link = tmp_path / "link"
    os.symlink(key, link)
    assert files.file_mode(link) == ""


def path_state(tmp_path, *names: str) -> dict:
    """What the module path_state answers for these names in tmp_path, run as Ansible runs it (its arguments file)."""
    args = tmp_path.parent / f"{tmp_path.name}-path-state-args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"paths": [str(tmp_path / n) for n in names]}}))
    out = subprocess.run(
        [sys.executable, str(ROOT / "plugins/modules/path_state.py"), str(args)], capture_output=True, text=True
    )
    return json.loads(out.stdout)


def test_path_drifts_from_what_path_state_read(tmp_path):
    conf = tmp_path / "gpubox.conf"
    conf.write_text("a = 1\n")
    conf.chmod(0o644)
    hold = tmp_path / "hold"
    hold.mkdir()
    hold.chmod(0o1777)
    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    found = path_state(tmp_path, "gpubox.conf", "hold", "missing.conf", "no-such-dir/x.conf")
    assert [f["path"] for f in found["files"]] == [str(conf), str(hold)]  # what is missing is not listed
    assert not found.get("warnings") and not found["changed"]
    drifts = files.path_drifts
    assert not drifts(found, str(conf), "file", "0644", owner, group, "a = 1\n")
    assert not drifts(found, str(hold), "directory", "01777", owner, group)
    assert drifts(found, str(conf), "file", "0644", owner, group, "a = 2\n")  # content
    assert drifts(found, str(conf), "file", "0644", owner, group, "a = 1")  # the trailing newline counts
    assert drifts(found, str(conf), "file", "0600", owner, group, "a = 1\n")  # mode
    assert drifts(found, str(conf), "file", "0644", "gpubox-nobody", group, "a = 1\n")  # owner
    assert drifts(found, str(conf), "file", "0644", owner, "gpubox-nogroup", "a = 1\n")  # group
    assert drifts(found, str(hold), "directory", "0755")  # mode of a directory
    assert drifts(found, str(conf), "directory")  # a file where a directory belongs
    assert drifts(found, str(hold), "file")  # and the other way round
    assert drifts(found, str(tmp_path / "missing.conf"), "file")  # missing
    assert drifts(found, str(conf), "file", "rwx")  # a mode it cannot read: the task decides
    assert drifts(found, str(conf), "fifo")
    # a find that did not run (skipped, failed, check mode of an older Ansible) judges nothing
    assert drifts({"skipped": True}, str(conf), "file")
    assert drifts(None, str(conf), "file")


def test_path_state_as_a_script_answers_as_the_module(tmp_path):
    """The action plugin runs the module's file as `python3 -c SOURCE PATHS_JSON`: the same answer, no Ansible."""
    (tmp_path / "gpubox.conf").write_text("a = 1\n")
    (tmp_path / "hold").mkdir()
    paths = [str(tmp_path / n) for n in ("gpubox.conf", "hold", "missing.conf")]
    source = (ROOT / "plugins/modules/path_state.py").read_text()
    out = subprocess.run([sys.executable, "-c", source, json.dumps(paths)], capture_output=True, text=True, check=True)
    as_script = json.loads(out.stdout)
    as_module = path_state(tmp_path, "gpubox.conf", "hold", "missing.conf")
    assert as_script["files"] == as_module["files"] and len(as_script["files"]) == 2
    refused = subprocess.run([sys.executable, "-c", source, '["etc/gpubox"]'], capture_output=True, text=True)
    assert json.loads(refused.stdout) == {
        "failed": True,
        "msg": "path_state: paths must be absolute, got ['etc/gpubox']",
    }


def test_path_state_task_runs_the_action(tmp_path):
    """A role's path_state task, as the project's ansible.cfg runs it: through the action plugin (one command, no
    module payload), with the module's result; a relative path fails the task with the module's message."""
    (tmp_path / "gpubox.conf").write_text("a = 1\n")
    box = tmp_path / "box"
    box.mkdir()
    (box / "gpubox.conf").write_text("a = 1\n")
    plays = [
        {
            "name": "Read",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Read",
                    "gpubox.gpubox.path_state": {"paths": [str(box / "gpubox.conf"), str(box / "x")]},
                    "register": "r",
                },
                {"name": "Keep", "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(tmp_path / "r")}},
                {"name": "Refuse", "gpubox.gpubox.path_state": {"paths": ["etc/gpubox"]}},
            ],
        }
    ]
    out = run_local_play(tmp_path / "play.yml", plays, env={"ANSIBLE_VERBOSITY": "3"})
    answer = json.loads((tmp_path / "r").read_text())
    assert [f["path"] for f in answer["files"]] == [str(box / "gpubox.conf")]
    assert answer["files"][0]["checksum"] == files.hashlib.sha1(b"a = 1\n").hexdigest()
    # not a module run (its payload would be AnsiballZ_path_state.py): the module's file ran as a script
    assert "AnsiballZ_path_state" not in out.stdout and " -c " in out.stdout
    assert out.returncode != 0 and "path_state: paths must be absolute, got ['etc/gpubox']" in out.stdout


def test_drifted_paths_of_a_role_table(tmp_path):
    """A role's table of what it writes (vars/main.yml): the paths that drift, each judged as path_drifts does;
    "absent" drifts when the path is there."""
    (tmp_path / "gpubox.conf").write_text("a = 1\n")
    (tmp_path / "old-hook").write_text("#!/bin/sh\n")
    (tmp_path / "hold").mkdir()
    found = path_state(tmp_path, "gpubox.conf", "old-hook", "hold", "gone")
    table = [
        {"path": str(tmp_path / "gpubox.conf"), "content": "a = 1\n"},
        {"path": str(tmp_path / "hold"), "state": "directory"},
        {"path": str(tmp_path / "gone"), "state": "absent"},
        {"path": str(tmp_path / "old-hook"), "state": "absent"},
        {"path": str(tmp_path / "new.conf"), "state": "file", "content": ""},
        {"path": str(tmp_path / "gpubox.conf"), "state": "file", "mode": "0000"},
    ]
    assert files.drifted_paths(found, table) == [str(tmp_path / n) for n in ("old-hook", "new.conf", "gpubox.conf")]
    assert files.drifted_paths(found, table[:3]) == []
    assert files.drifted_paths(found, []) == []


def test_path_state_refuses_relative_paths(tmp_path):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"paths": ["etc/gpubox"]}}))
    out = subprocess.run([sys.executable, str(ROOT / "plugins/modules/path_state.py"), str(args)], capture_output=True)
    answer = json.loads(out.stdout)
    assert answer["failed"] and "etc/gpubox" in answer["msg"]


def test_path_drifts_of_a_link(tmp_path):
    target = tmp_path / "gpubox-autostop"
    target.write_text("#!/usr/bin/python3\n")
    link = tmp_path / "gpubox-hold"
    os.symlink(target, link)
    found = path_state(tmp_path, "gpubox-hold")
    assert found["files"][0]["lnk_target"] == str(target)
    assert not files.path_drifts(found, str(link), "link", src=str(target))
    assert files.path_drifts(found, str(link), "link", src=str(tmp_path / "elsewhere"))
    assert files.path_drifts(found, str(link), "file")  # a link where a file belongs (not followed)
    link.unlink()
    link.write_text("a file where the link belongs\n")
    assert files.path_drifts(path_state(tmp_path, "gpubox-hold"), str(link), "link", src=str(target))


def test_path_drifts_of_a_binary_file_against_a_file_here(tmp_path):
    """content_file: the wanted content is a file on this machine (a zipapp), compared by the SHA-1 of its bytes."""
    box = tmp_path / "box"
    box.mkdir()
    program = bytes(range(256)) * 64 + b"\xff\xfe not UTF-8"
    (box / "gpubox-autostop").write_bytes(program)
    (box / "gpubox-autostop").chmod(0o755)
    wanted = tmp_path / "built.pyz"
    wanted.write_bytes(program)
    found = path_state(box, "gpubox-autostop")
    path = str(box / "gpubox-autostop")
    assert not files.path_drifts(found, path, "file", "0755", content_file=str(wanted))
    assert files.path_drifts(found, path, "file", "0644", content_file=str(wanted))  # the mode still counts
    wanted.write_bytes(program[:-1])  # one byte less
    assert files.path_drifts(found, path, "file", content_file=str(wanted))
    assert files.path_drifts(found, path, "file", content_file=str(tmp_path / "missing.pyz"))  # unreadable: drifts
    wanted.write_bytes(program)
    table = [
        {"path": path, "state": "file", "mode": "0755", "content_file": str(wanted)},
        {"path": str(box / "other"), "state": "file", "content_file": str(wanted)},
    ]
    assert files.drifted_paths(found, table) == [str(box / "other")]
    wanted.write_bytes(b"#!/usr/bin/python3\nnew")
    assert files.drifted_paths(found, table) == [path, str(box / "other")]


def test_path_state_lists_folders(tmp_path):
    """`list`: each entry of those folders too, in the same shape (a link not followed, a missing folder none), after
    the paths and without repeating one; the same from the module and from the script the action runs."""
    dropins = tmp_path / "jupyter.service.d"
    dropins.mkdir()
    (dropins / "override.conf").write_text("[Service]\n")
    (dropins / "gpubox.conf").write_text("[Service]\n")
    os.symlink(tmp_path / "elsewhere", dropins / "linked.conf")
    (tmp_path / "unit").write_text("[Unit]\n")
    os.symlink(dropins, tmp_path / "link-to-folder")
    paths = [str(tmp_path / "unit"), str(dropins / "gpubox.conf")]
    folders = [str(dropins), str(tmp_path / "missing.d"), str(tmp_path / "link-to-folder"), str(tmp_path / "unit")]
    args = tmp_path.parent / f"{tmp_path.name}-list-args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"paths": paths, "list": folders}}))
    module = subprocess.run(
        [sys.executable, str(ROOT / "plugins/modules/path_state.py"), str(args)], capture_output=True
    )
    as_module = json.loads(module.stdout)
    source = (ROOT / "plugins/modules/path_state.py").read_text()
    script = subprocess.run([sys.executable, "-c", source, json.dumps(paths), json.dumps(folders)], capture_output=True)
    as_script = json.loads(script.stdout)
    assert as_module["files"] == as_script["files"]
    assert [f["path"] for f in as_script["files"]] == [
        str(tmp_path / "unit"),
        str(dropins / "gpubox.conf"),
        str(dropins / "linked.conf"),
        str(dropins / "override.conf"),
    ]
    assert as_script["files"][2]["islnk"] and as_script["files"][3]["isreg"]
    refused = subprocess.run([sys.executable, "-c", source, "[]", '["etc/x.d"]'], capture_output=True, text=True)
    assert json.loads(refused.stdout)["failed"]


def test_unit_drop_in_dirs():
    assert files.unit_drop_in_dirs("jupyter") == [
        "/etc/systemd/system/jupyter.service.d",
        "/etc/systemd/system.control/jupyter.service.d",
        "/run/systemd/system/jupyter.service.d",
        "/run/systemd/system.control/jupyter.service.d",
    ]
    assert files.unit_drop_in_dirs("gpubox-autostop.service")[0] == "/etc/systemd/system/gpubox-autostop.service.d"
    assert files.unit_drop_in_dirs("backup.timer")[2] == "/run/systemd/system/backup.timer.d"


def test_foreign_paths_are_what_the_role_did_not_write():
    found = {
        "files": [
            {"path": "/etc/systemd/system/jupyter.service"},
            {"path": "/etc/systemd/system/jupyter.service.d/gpubox.conf"},
            {"path": "/etc/systemd/system/jupyter.service.d/override.conf"},
            {"path": "/etc/systemd/system/jupyter.service.d/notes.txt"},  # not a drop-in: systemd reads *.conf
            {"path": "/etc/systemd/system/jupyter.service.d/kept.conf"},
            {"path": "/run/systemd/system/jupyter.service.d/50-run.conf"},
            {"path": "/etc/systemd/system/other.service.d/x.conf"},  # not a listed folder
        ]
    }
    folders = ["/etc/systemd/system/jupyter.service.d", "/run/systemd/system/jupyter.service.d/"]
    table = [
        {"path": "/etc/systemd/system/jupyter.service"},
        {"path": "/etc/systemd/system/jupyter.service.d/gpubox.conf"},
    ]
    foreign = files.foreign_paths(found, folders, table, ["kept.conf"], ["Restart jupyter"])
    assert foreign == [
        {
            "path": "/etc/systemd/system/jupyter.service.d/override.conf",
            "state": "absent",
            "notify": ["Restart jupyter"],
        },
        {"path": "/run/systemd/system/jupyter.service.d/50-run.conf", "state": "absent", "notify": ["Restart jupyter"]},
    ]
    assert [f["path"] for f in files.foreign_paths(found, folders, pattern="*")][-2:] == [
        "/etc/systemd/system/jupyter.service.d/kept.conf",
        "/run/systemd/system/jupyter.service.d/50-run.conf",
    ]
    assert files.foreign_paths({"skipped": True}, folders) == [] and files.foreign_paths(None, folders) == []


def test_a_foreign_drop_in_is_reported_then_removed(tmp_path):
    """The roles' shape: path_state reads the table's paths and lists the folder in one run, foreign_paths adds what
    the role did not write to the entries to write, path_write removes it and notifies its handler. --check reports
    it by path and leaves it; the run removes it, keeps the allowed one; a rerun changes nothing."""
    box = tmp_path / "unit.service.d"
    box.mkdir()
    (box / "gpubox.conf").write_text("[Service]\n")
    (box / "override.conf").write_text("[Service]\nExecStart=\n")
    (box / "kept.conf").write_text("[Service]\n")
    table = [{"path": str(box / "gpubox.conf"), "state": "file", "content": "[Service]\n", "notify": ["Restarted"]}]
    plays = [
        {
            "name": "Drop-ins",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "t_files": table,
                "t_writes": "{{ (t_files | selectattr('path', 'in', t_found | gpubox.gpubox.drifted_paths(t_files))"
                " | list) + t_found | gpubox.gpubox.foreign_paths([t_dir], t_files, ['kept.conf'], ['Restarted']) }}",
                "t_dir": str(box),
            },
            "tasks": [
                {
                    "name": "Read",
                    "gpubox.gpubox.path_state": {
                        "paths": "{{ t_files | map(attribute='path') }}",
                        "list": ["{{ t_dir }}"],
                    },
                    "register": "t_found",
                    "check_mode": False,
                },
                {
                    "name": "Write",
                    "gpubox.gpubox.path_write": "{{ item }}",
                    "loop": "{{ t_writes }}",
                    "loop_control": {"label": "{{ item.path }}"},
                    "notify": "{{ t_writes | map(attribute='notify', default=[]) | flatten | unique }}",
                },
            ],
            "handlers": [
                {
                    "name": "Restarted",
                    "ansible.builtin.copy": {"content": "restarted\n", "dest": str(tmp_path / "restarted")},
                }
            ],
        }
    ]
    checked = run_local_play(tmp_path / "play.yml", plays, args=("--check",))
    assert checked.returncode == 0, checked.stdout
    assert f"changed: [localhost] => (item={box / 'override.conf'})" in checked.stdout
    assert (box / "override.conf").exists() and not (tmp_path / "restarted").exists()  # check mode ran no handler
    run = run_local_play(tmp_path / "play.yml", plays)
    assert run.returncode == 0 and changed_count(run.stdout) > 0, run.stdout
    assert sorted(p.name for p in box.iterdir()) == ["gpubox.conf", "kept.conf"]
    assert (tmp_path / "restarted").read_text() == "restarted\n"
    (tmp_path / "restarted").unlink()
    again = run_local_play(tmp_path / "play.yml", plays)
    assert changed_count(again.stdout) == 0, again.stdout
    assert not (tmp_path / "restarted").exists()
