"""The autostop ranges have one home, plugins/module_utils/autostop_limits.py: the agent's settings module reads it
(limits.py is a link to it), and the controller's checks (the test autostop_within, the lookup autostop_limits, used
by the roles autostop and ec2_preflight) accept exactly what the agent accepts."""

from __future__ import annotations

import math
import os
import re

import pytest
import yaml
from gpubox_autostop import limits
from gpubox_autostop.settings import ConfigError, make_settings

from tests.conftest import ROOT, load_module

HOME = ROOT / "plugins" / "module_utils" / "autostop_limits.py"
test_plugin = load_module(ROOT / "plugins" / "test" / "autostop.py", "gpubox_test_autostop")
lookup_plugin = load_module(ROOT / "plugins" / "lookup" / "autostop_limits.py", "gpubox_lookup_autostop_limits")
within = test_plugin.TestModule().tests()["autostop_within"]


def test_the_agent_reads_the_collections_file():
    link = ROOT / "roles" / "autostop" / "files" / "gpubox_autostop" / "limits.py"
    assert link.is_symlink() and os.path.realpath(link) == str(HOME)
    assert limits.RANGES == test_plugin.RANGES == lookup_plugin.RANGES
    assert limits.RANGES["idle_minutes"] == (0, 10080) and limits.RANGES["max_hours"] == (0, 8760)


@pytest.mark.parametrize("name", sorted(limits.RANGES))
def test_the_controller_accepts_what_the_agent_accepts(name):
    low, high = limits.RANGES[name]
    for value in (low, high, (low + high) / 2, low - 0.001, high + 0.001, high + 1, -1, math.nan, math.inf):
        try:
            make_settings({name: str(value)}, {})
            agent = True
        except ConfigError:
            agent = False
        assert within(value, name) is agent, (name, value)
        assert within(str(value), name) is agent, (name, value)


def test_what_no_number_is_never_within():
    assert not within("an hour", "idle_minutes") and not within(None, "idle_minutes")
    assert not within("nan", "idle_minutes") and not within("inf", "max_hours") and not within("-inf", "grace_minutes")
    assert within(False, "idle_minutes")  # idle_minutes: false is off, 0
    with pytest.raises(Exception, match="autostop_within knows idle_minutes"):
        within(5, "idle_minute")


def test_the_lookup_gives_the_bounds_as_a_refusal_writes_them():
    run = lookup_plugin.LookupModule().run
    assert run(["idle_minutes", "max_hours"]) == [
        {"low": 0, "high": 10080, "range": "0-10080"},
        {"low": 0, "high": 8760, "range": "0-8760"},
    ]
    assert run(["max_hold_hours"]) == [{"low": 1 / 60, "high": 744, "range": "1/60-744"}]
    everything = run([])[0]
    assert sorted(everything) == sorted(limits.RANGES) and everything["poll_seconds"]["range"] == "1-3600"
    assert isinstance(everything["idle_minutes"]["high"], int)
    with pytest.raises(Exception, match="not 'idle'"):
        run(["idle"])


def test_the_documented_ranges_are_the_agents():
    """The role's argument_specs (and so its README) say the ranges in words; they say what the agent accepts."""
    spec = yaml.safe_load((ROOT / "roles" / "autostop" / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    said = {}
    for option, entry in options.items():
        match = re.search(r"\((\d+) to (\d+)|at most (\d+)\)", entry.get("description", ""))
        if match and option.removeprefix("autostop_") in limits.RANGES:
            low, high, at_most = match.groups()
            said[option.removeprefix("autostop_")] = (int(low), int(high)) if at_most is None else int(at_most)
    assert said == {
        "grace_minutes": limits.RANGES["grace_minutes"],
        "poll_seconds": limits.RANGES["poll_seconds"],
        "max_hold_hours": limits.RANGES["max_hold_hours"][1],
        "spot_poll_seconds": limits.RANGES["spot_poll_seconds"],
        "interrupt_timeout": limits.RANGES["interrupt_timeout"],
        "on_stop_timeout": limits.RANGES["on_stop_timeout"],
    }
    preflight = (ROOT / "roles" / "ec2_preflight" / "meta" / "argument_specs.yml").read_text()
    idle, cap = limits.RANGES["idle_minutes"], limits.RANGES["max_hours"]
    assert f"idle minutes {idle[0]}-{idle[1]} or false" in preflight and f"max_hours {cap[0]}-{cap[1]} " in preflight
