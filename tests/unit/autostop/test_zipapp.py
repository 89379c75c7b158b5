"""The agent as the role installs it: one zipapp, built on the controller by the lookup gpubox.gpubox.zipapp, the same
bytes from any checkout (the role compares the box's copy by SHA-1), and a program python3 runs as it is."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from autostop_fakes import AGENT_FILES, build_program

from tests.conftest import ROOT

from ansible_collections.gpubox.gpubox.plugins.lookup import zipapp  # isort: skip

PACKAGE = AGENT_FILES / "gpubox_autostop"


def checkout_copy(dest: Path, mtime: float, mode: int) -> Path:
    """The package as another checkout has it: links resolved, other mtimes and permissions, files made in reverse."""
    folder = dest / "gpubox_autostop"
    folder.mkdir(parents=True)
    for source in sorted(PACKAGE.glob("*.py"), reverse=True):
        target = folder / source.name
        target.write_bytes(source.read_bytes())
        target.chmod(mode)
        os.utime(target, (mtime, mtime))
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "cli.cpython-312.pyc").write_bytes(b"stale bytecode")
    return folder


def test_two_checkouts_build_the_same_bytes(tmp_path):
    one = zipapp.build(str(checkout_copy(tmp_path / "a", 1_000_000_000, 0o644)), "/usr/bin/python3 -I")
    two = zipapp.build(str(checkout_copy(tmp_path / "b", 1_700_000_000, 0o600)), "/usr/bin/python3 -I")
    assert one == two
    assert zipapp.build(str(PACKAGE), "/usr/bin/python3 -I") == one  # the checkout's own, limits.py a link
    assert one.startswith(b"#!/usr/bin/python3 -I\nPK")
    (tmp_path / "a.pyz").write_bytes(one)
    with zipfile.ZipFile(tmp_path / "a.pyz") as archive:
        entries = archive.infolist()
    names = [e.filename for e in entries]
    assert names == sorted(names) and "__main__.py" in names and not any("__pycache__" in n for n in names)
    assert {e.date_time for e in entries} == {(1980, 1, 1, 0, 0, 0)}
    assert {e.external_attr >> 16 for e in entries} == {stat.S_IFREG | 0o644}
    assert {e.compress_type for e in entries} == {zipfile.ZIP_STORED}
    # the ranges travel as the agent's own module: the collection's file, byte for byte
    with zipfile.ZipFile(tmp_path / "a.pyz") as archive:
        limits = archive.read("gpubox_autostop/limits.py")
    assert limits == (ROOT / "plugins" / "module_utils" / "autostop_limits.py").read_bytes()


def test_a_change_in_any_module_changes_the_bytes(tmp_path):
    folder = checkout_copy(tmp_path, 1_000_000_000, 0o644)
    before = zipapp.build(str(folder))
    with (folder / "util.py").open("a") as handle:
        handle.write("\n")
    assert zipapp.build(str(folder)) != before


def test_a_folder_that_is_no_program_is_refused(tmp_path):
    folder = tmp_path / "lonely"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    with pytest.raises(ValueError, match=r"needs __init__\.py and __main__\.py"):
        zipapp.build(str(folder))


@pytest.mark.parametrize("python", sorted({sys.executable, shutil.which("python3") or sys.executable}))
def test_the_zipapp_runs_check_config_and_help(tmp_path, autostop_program, python):
    conf = tmp_path / "autostop.conf"
    conf.write_text("idle_minutes = 45\nspot = yes\n")
    out = subprocess.run(
        [python, str(autostop_program), "check-config", "--config", str(conf)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "idle_minutes = 45\n" in out.stdout and "spot = true\n" in out.stdout
    conf.write_text("poll_seconds = 0\n")
    out = subprocess.run(
        [python, "-I", str(autostop_program), "check-config", "--config", str(conf)], capture_output=True, text=True
    )
    assert out.returncode == 2 and "poll_seconds: '0' is outside 1..3600" in out.stderr
    out = subprocess.run([python, "-I", str(autostop_program), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: gpubox-autostop ")
    assert "gpubox autostop: power the box off when nobody uses it" in out.stdout


@pytest.mark.skipif(not os.access("/usr/bin/python3", os.X_OK), reason="the shebang's interpreter is not here")
def test_the_zipapp_runs_by_its_shebang_and_as_gpubox_hold(tmp_path, autostop_program):
    """As on the box: executed itself (#!/usr/bin/python3 -I), and through a link named gpubox-hold."""
    out = subprocess.run([str(autostop_program), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: gpubox-autostop ")
    hold = tmp_path / "hold"
    hold.mkdir()
    conf = tmp_path / "autostop.conf"
    conf.write_text(f"hold_dir = {hold}\nstatus_file = {tmp_path / 'status.json'}\n")
    link = tmp_path / "gpubox-hold"
    link.symlink_to(autostop_program)
    out = subprocess.run([str(link), "--config", str(conf), "30m"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("hold set: the box stays up until "), out
    assert (hold / str(os.getuid())).exists()
    out = subprocess.run([str(link), "--config", str(conf)], capture_output=True, text=True)
    assert "(30 min left)" in out.stdout


def test_the_lookup_keeps_each_build_once_in_a_private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = build_program(PACKAGE, tmp_path / "built").read_bytes()
    path = Path(zipapp.store(data, "gpubox_autostop"))
    assert path.parent == tmp_path / "cache" / "gpubox" / "zipapp"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.name == f"gpubox_autostop-{zipapp.hashlib.sha256(data).hexdigest()[:32]}.pyz"
    assert path.read_bytes() == data
    made = path.stat().st_mtime_ns
    assert zipapp.store(data, "gpubox_autostop") == str(path) and path.stat().st_mtime_ns == made  # kept, not rewritten
    assert zipapp.store(data + b"x", "gpubox_autostop") != str(path)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    path.parent.chmod(0o755)  # loosened by someone: made private again before use
    zipapp.store(data, "gpubox_autostop")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_without_a_writable_cache_folder_the_lookup_uses_its_own_in_tmp(tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(zipapp.tempfile, "tempdir", str(tmp_path / "tmp"))
    path = Path(zipapp.store(b"#!/usr/bin/python3\n", "gpubox_autostop"))
    assert path.parent == tmp_path / "tmp" / f"gpubox-zipapp-{os.geteuid()}"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and path.read_bytes() == b"#!/usr/bin/python3\n"
