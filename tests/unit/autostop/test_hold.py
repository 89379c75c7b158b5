"""Holds: the hold files as the agent reads them (every check), and the gpubox-hold command that writes, removes and
shows them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from autostop_fakes import NOW, hold_env, settings
from gpubox_autostop.hold import Hold, hold_command, parse_duration, read_holds
from gpubox_autostop.probes import probe_hold


def test_the_hold_files_are_validated(tmp_path):
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    uid = os.getuid()
    (hold_dir / ".1000.tmp").write_text("garbage")  # a hold being written: skipped silently
    (hold_dir / "notauid").write_text(str(int(NOW + 60)))
    (hold_dir / "4242").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text(str(int(NOW + 60)))
    (hold_dir / str(uid)).write_text("in two hours please")
    holds, problems = read_holds(str(hold_dir), NOW, 24 * 3600)
    assert holds == []
    assert problems == [
        f"hold file '{uid}' ignored: not an expiry time",
        "hold file '4242' ignored: is a symbolic link (not followed)",
        "hold file 'notauid' ignored: not named by a uid",
    ]
    (hold_dir / str(uid)).write_text(str(int(NOW + 30 * 86400)))
    assert read_holds(str(hold_dir), NOW, 24 * 3600)[1][0].endswith("expiry beyond max_hold_hours")
    (hold_dir / str(uid)).write_text(str(int(NOW - 1)))  # expired: no hold, no complaint
    assert read_holds(str(hold_dir), NOW, 24 * 3600)[0] == []
    reading = probe_hold(str(hold_dir), NOW, 24 * 3600)
    assert not reading.active and reading.error.startswith("hold file '4242' ignored")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_hold_file_must_belong_to_the_uid_it_names(tmp_path):
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    (hold_dir / "1000").write_text(str(int(NOW + 600)))
    os.chown(hold_dir / "1000", 1001, 1001)
    assert read_holds(str(hold_dir), NOW, 3600)[1] == ["hold file '1000' ignored: owned by uid 1001"]
    os.chown(hold_dir / "1000", 1000, 1000)
    assert read_holds(str(hold_dir), NOW, 3600)[0] == [Hold(1000, int(NOW + 600))]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("30m", 1800), ("90m", 5400), ("1h30m", 5400), ("1h 30m", 5400), ("2H", 7200), ("45min", 2700)],
)
def test_hold_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2", "soon", "1.5h", "-1h", "h", "30s", "0m", "2h2h", ""])
def test_garbage_durations_are_refused_with_a_message(text):
    with pytest.raises(ValueError, match=r"is not a duration|at least 1 minute"):
        parse_duration(text)


def run_hold(s, *args, uid=1000):
    out, err = _Buffer(), _Buffer()
    rc = hold_command(list(args), s, now=NOW, uid=uid, out=out, err=err)
    return rc, out.text, err.text


class _Buffer:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text


def test_hold_sets_replaces_shows_and_removes_the_users_file(tmp_path):
    s = hold_env(tmp_path, max_hours=8.0)
    rc, out, err = run_hold(s, "2h", uid=os.getuid())
    assert (rc, err) == (0, "")
    assert out.startswith("hold set: the box stays up until ") and "(2 h), even when idle" in out
    assert "max_hours 8 still applies" in out
    mine = Path(s.hold_dir) / str(os.getuid())
    assert mine.read_text() == f"{int(NOW + 7200)}\n"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o644
    assert run_hold(s, "30m", uid=os.getuid())[0] == 0  # the last word wins, even if shorter
    assert mine.read_text() == f"{int(NOW + 1800)}\n"
    assert not [p for p in Path(s.hold_dir).iterdir() if p.name.startswith(".")]  # no temporary left
    Path(s.status_file).write_text(json.dumps({"time": NOW, "line": "active: hold by x", "poweroff_at": None}))
    rc, out, _ = run_hold(s, uid=os.getuid())
    assert rc == 0 and "(30 min left)" in out and "autostop at " in out and ": active: hold by x" in out
    assert run_hold(s, "off", uid=os.getuid())[:2] == (0, "hold removed: the box powers off when idle\n")
    assert not mine.exists()
    assert run_hold(s, "off", uid=os.getuid())[1] == "you had no hold\n"
    assert run_hold(s, "status")[1].startswith("no hold: the box powers off when idle")


def test_hold_refuses_garbage_and_too_long(tmp_path):
    s = hold_env(tmp_path)
    rc, out, err = run_hold(s, "tomorrow")
    assert (rc, out) == (2, "")
    assert (
        err == "gpubox-hold: 'tomorrow' is not a duration: give hours and/or minutes, e.g. 2h, 30m, 1h30m (or 'off')\n"
    )
    assert run_hold(s, "25h")[2] == "gpubox-hold: at most 24 h (max_hold_hours)\n"
    assert list(Path(s.hold_dir).iterdir()) == []


def test_hold_without_the_agent_installed_says_so(tmp_path):
    s = settings(hold_dir=str(tmp_path / "missing"), status_file=str(tmp_path / "none.json"))
    rc, _, err = run_hold(s, "2h")
    assert rc == 1 and "is gpubox autostop installed?" in err
    rc, out, _ = run_hold(s)
    assert rc == 0 and "no status (is the gpubox-autostop service running?)" in out
