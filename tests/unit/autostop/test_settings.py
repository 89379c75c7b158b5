"""The agent's settings: the config file (KEY=VALUE or JSON), the flags on top, the defaults, and the refusals by
name."""

from __future__ import annotations

import json

import pytest
from gpubox_autostop import settings as agent_settings
from gpubox_autostop.settings import ConfigError, Settings, load_settings


def test_settings_from_key_value_lines_then_flags(tmp_path):
    conf = tmp_path / "autostop.conf"
    conf.write_text(
        "# gpubox autostop\nidle_minutes = 30\nmax_hours = none\n"
        'poweroff_command = "/sbin/shutdown -h now"\nspot = yes\njupyter_server_activity = off\n\n'
    )
    s = load_settings(str(conf), {"grace_minutes": "2"})
    assert (s.idle_minutes, s.max_hours, s.grace_minutes, s.spot) == (30.0, 0.0, 2.0, True)
    assert s.poweroff_command == "/sbin/shutdown -h now" and s.jupyter_server_activity is False
    conf.write_text(json.dumps({"idle_minutes": 45, "spot": True, "max_hours": None, "signals": "gpu,ssh"}))
    s = load_settings(str(conf))
    assert (s.idle_minutes, s.spot, s.max_hours, s.enabled) == (45.0, True, 0.0, frozenset({"gpu", "ssh"}))


def test_without_a_config_file_the_defaults_apply(tmp_path, monkeypatch):
    monkeypatch.setattr(agent_settings, "CONFIG_FILE", str(tmp_path / "missing.conf"))
    assert load_settings(None) == Settings()
    assert load_settings(None, {"idle_minutes": "15"}) == Settings(idle_minutes=15.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("idle_minutes = 60\nidle_minuts = 30\n", "autostop.conf:2: unknown setting 'idle_minuts'"),
        ("idle_minutes\n", "autostop.conf:1: not KEY=VALUE"),
        ("idle_minutes = sixty\n", "idle_minutes: 'sixty' is not a number"),
        ("poll_seconds = 0\n", "poll_seconds: '0' is outside 1..3600"),
        ("cpu_threshold = 150\n", "cpu_threshold: '150' is outside 0..100"),
        ("spot = maybe\n", "spot: 'maybe' is not true or false"),
        ("signals = gpu,mouse\n", "signals: unknown mouse"),
        ("jupyter_url = localhost:8888\n", "jupyter_url: 'localhost:8888' is not an http:// or https:// URL"),
        ("hold_dir = var/lib/x\n", "hold_dir: 'var/lib/x' is not an absolute path"),
        ("poweroff_command = \n", "poweroff_command: empty"),
        ('{"idle_minutes": 60, "nope": 1}', "unknown setting 'nope'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_settings_are_refused_by_name(tmp_path, text, message):
    conf = tmp_path / "autostop.conf"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(str(conf))
