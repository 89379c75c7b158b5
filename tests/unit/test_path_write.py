"""One table of files drives the read and the write: path_state reads the table's paths, drifted_paths finds the
entries that differ, and path_write makes each of them what its entry says (a file from its content or from a
controller file's bytes, a directory, a link, an absent path), runs the entry's check first, keeps a secret out of
the output, and notifies exactly the handlers the written entries name. On this machine (-c local), the files
under a temporary folder."""

from __future__ import annotations

import os
import stat

import pytest

from tests.conftest import run_local_play

HANDLERS = [
    {
        "name": "Restart one",
        "ansible.builtin.copy": {"dest": "{{ root }}/notified-one", "content": "x", "mode": "0644"},
    },
    {
        "name": "Restart two",
        "ansible.builtin.copy": {"dest": "{{ root }}/notified-two", "content": "x", "mode": "0644"},
    },
]


def table(root) -> list[dict]:
    blob = root.parent / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    return [
        {"path": f"{root}/etc", "state": "directory", "mode": "0750"},
        {"path": f"{root}/etc/app.conf", "content": "port = 1\n", "mode": "0640", "notify": ["Restart one"]},
        {"path": f"{root}/etc/token", "content": "s3cret-token-value\n", "mode": "0600", "secret": True},
        {"path": f"{root}/etc/blob", "content_file": str(blob), "mode": "0755", "notify": ["Restart two"]},
        {"path": f"{root}/etc/checked", "content": "good\n", "mode": "0644", "validate": "grep -qx good %s"},
        {"path": f"{root}/app", "state": "link", "src": f"{root}/etc/app.conf"},
        {"path": f"{root}/stale", "state": "absent"},
    ]


def converge(tmp_path, files: list[dict], check: bool = False):
    """The roles' three steps: read the table's paths, compare, write what differs (with the roles' notify)."""
    root = tmp_path / "root"
    play = {
        "name": "Converge",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "root": str(root),
            "files": files,
            "drifted": "{{ found | gpubox.gpubox.drifted_paths(files) }}",
            "writes": "{{ files | selectattr('path', 'in', drifted) }}",
        },
        "tasks": [
            {
                "name": "Read",
                "gpubox.gpubox.path_state": {"paths": "{{ files | map(attribute='path') }}"},
                "register": "found",
                "check_mode": False,
            },
            {
                "name": "Write",
                "gpubox.gpubox.path_write": "{{ item }}",
                "loop": "{{ writes }}",
                "loop_control": {"label": "{{ item.path }}"},
                "notify": "{{ writes | map(attribute='notify', default=[]) | flatten | unique }}",
            },
        ],
        "handlers": HANDLERS,
    }
    proc = run_local_play(tmp_path / "play.yml", [play], args=("--check", "--diff") if check else ())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def mode(path) -> str:
    return f"{stat.S_IMODE(os.lstat(path).st_mode):04o}"


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "stale").write_text("left over\n")
    return root


def test_the_table_is_written_as_declared_and_a_rerun_changes_nothing(tmp_path, root):
    files = table(root)
    first = converge(tmp_path, files)

    assert mode(root / "etc") == "0750"
    assert (root / "etc/app.conf").read_text() == "port = 1\n" and mode(root / "etc/app.conf") == "0640"
    assert (root / "etc/token").read_text() == "s3cret-token-value\n" and mode(root / "etc/token") == "0600"
    assert (root / "etc/blob").read_bytes() == bytes(range(256)) * 4 and mode(root / "etc/blob") == "0755"
    assert (root / "etc/checked").read_text() == "good\n"
    assert os.readlink(root / "app") == f"{root}/etc/app.conf"
    assert not (root / "stale").exists()
    assert (root / "notified-one").exists() and (root / "notified-two").exists()
    assert "s3cret-token-value" not in first.stdout + first.stderr

    for notified in root.glob("notified-*"):
        notified.unlink()
    second = converge(tmp_path, files)
    assert "changed=0" in second.stdout, second.stdout[-3000:]
    assert not list(root.glob("notified-*"))  # nothing written, nothing restarted


def test_only_what_drifted_is_written_and_only_its_handlers_run(tmp_path, root):
    files = table(root)
    converge(tmp_path, files)
    for notified in root.glob("notified-*"):
        notified.unlink()
    (root / "etc/app.conf").write_text("port = 2\n")  # drift of one file: its content
    (root / "etc/token").chmod(0o644)  # and of another, which names no handler
    (root / "etc/blob").write_bytes(bytes(range(256)) * 4)  # rewritten with the same bytes: no drift

    proc = converge(tmp_path, files)

    assert (root / "etc/app.conf").read_text() == "port = 1\n" and mode(root / "etc/token") == "0600"
    assert (root / "notified-one").exists() and not (root / "notified-two").exists()
    assert "changed=2" in proc.stdout  # the write and the one handler
    assert "s3cret-token-value" not in proc.stdout + proc.stderr


def test_a_file_its_check_refuses_is_not_written(tmp_path, root):
    files = [{"path": f"{root}/checked", "content": "bad\n", "mode": "0644", "validate": "grep -qx good %s"}]
    (root / "checked").write_text("good\n")
    proc = run_local_play(
        tmp_path / "play.yml",
        [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [{"gpubox.gpubox.path_write": "{{ item }}", "loop": files}],
            }
        ],
    )
    assert proc.returncode != 0 and "failed to validate" in proc.stdout
    assert (root / "checked").read_text() == "good\n"


def test_check_mode_reports_the_drift_and_writes_nothing(tmp_path, root):
    files = table(root)
    proc = converge(tmp_path, files, check=True)

    assert "changed=3" in proc.stdout, proc.stdout[-3000:]  # the write, and the two handlers it would notify
    assert "+port = 1" in proc.stdout  # the diff of a file
    assert "s3cret-token-value" not in proc.stdout + proc.stderr  # but never of a secret
    assert sorted(p.name for p in root.iterdir()) == ["stale"]


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"path": "relative/file", "content": "x"}, "'relative/file' is not an absolute path"),
        ({"path": "/tmp/gpubox-none", "state": "link"}, "a link needs src"),
        ({"path": "/tmp/gpubox-none"}, "give content or content_file"),
        ({"path": "/tmp/gpubox-none", "state": "fifo"}, "fifo"),
    ],
)
def test_a_malformed_entry_is_refused_by_name(tmp_path, entry, said):
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [{"gpubox.gpubox.path_write": entry}]}
    proc = run_local_play(tmp_path / "play.yml", [play])
    assert proc.returncode != 0 and said in proc.stdout, proc.stdout[-2000:]
    assert not os.path.lexists("/tmp/gpubox-none")
