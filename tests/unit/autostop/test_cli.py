"""The command line: check-config prints settings that read back, and the program called as gpubox-hold is the hold
command."""

from __future__ import annotations

import os
from pathlib import Path

from autostop_fakes import hold_env
from gpubox_autostop.cli import main
from gpubox_autostop.settings import Settings, load_settings


def test_gpubox_hold_is_the_program_under_another_name(tmp_path, capsys):
    s = hold_env(tmp_path)
    conf = tmp_path / "autostop.conf"
    conf.write_text(f"hold_dir = {s.hold_dir}\nstatus_file = {s.status_file}\n")
    assert main(["--config", str(conf), "1h30m"], prog="/usr/local/bin/gpubox-hold") == 0
    assert "(1 h 30 min)" in capsys.readouterr().out
    assert (Path(s.hold_dir) / str(os.getuid())).exists()
    assert main(["hold", "--config", str(conf), "off"]) == 0
    assert main(["--config", str(conf), "forever"], prog="gpubox-hold") == 2
    assert "is not a duration" in capsys.readouterr().err


def test_check_config_prints_settings_that_read_back(tmp_path, capsys):
    conf = tmp_path / "autostop.conf"
    conf.write_text("idle_minutes = 45\n")
    assert main(["check-config", "--config", str(conf), "--max-hours", "8"]) == 0
    printed = capsys.readouterr().out
    assert "idle_minutes = 45\n" in printed and "max_hours = 8\n" in printed and "spot = false\n" in printed
    conf.write_text(printed)
    assert load_settings(str(conf)) == Settings(idle_minutes=45.0, max_hours=8.0)
    assert main(["check-config", "--config", str(tmp_path / "missing")]) == 2
    assert main(["check-config", "--config", str(conf), "--poll-seconds", "0"]) == 2
    assert "flag: poll_seconds: '0' is outside 1..3600" in capsys.readouterr().err
