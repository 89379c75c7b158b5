"""requirements.lock holds the whole Python tree with hashes, agrees with every pin in requirements*.txt, and is
what the venv has installed."""

import re
from importlib import metadata

from packaging.markers import Marker
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(path):
    """name -> version of each `name==version` in a requirements file, following its `-r` includes."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found |= pins(path.parent / line[3:].strip())
        elif m := PIN.match(line):
            found[canonicalize_name(m[1])] = m[2]
    return found


def locked():
    """name -> (version, marker or None, hashes) of each package in the lock."""
    entries, current = {}, None
    for line in LOCK.read_text().splitlines():
        if m := PIN.match(line):
            marker = line.split(";", 1)[1].rstrip(" \\").strip() if ";" in line else None
            current = canonicalize_name(m[1])
            entries[current] = (m[2], marker, [])
        elif current and (h := re.match(r"\s+--hash=(sha256:[0-9a-f]{64})", line)):
            entries[current][2].append(h[1])
    return entries


def test_every_package_in_the_lock_is_pinned_with_hashes():
    entries = locked()
    assert len(entries) > 50, "the lock holds the whole tree, not the top level"
    assert [name for name, (_, _, hashes) in entries.items() if not hashes] == []
    # the packages the tests and Ansible need most are in it, down the tree
    assert {"ansible-core", "cryptography", "botocore", "pyyaml", "jinja2"} <= entries.keys()


def test_the_lock_agrees_with_every_pin_in_the_requirements_files():
    entries = locked()
    wanted = pins(ROOT / "requirements-dev.txt")
    assert "ansible" in wanted and "cryptography" in wanted
    stale = {name: (version, entries.get(name, ("missing",))[0]) for name, version in wanted.items()}
    stale = {name: pair for name, pair in stale.items() if pair[0] != pair[1]}
    assert stale == {}, f"requirements*.txt and requirements.lock differ (pin, locked): {stale}; run `make lock`"


def test_the_venv_has_exactly_what_is_locked():
    differ = {}
    for name, (version, marker, _) in locked().items():
        if marker and not Marker(marker).evaluate():
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            differ[name] = (version, installed)
    assert differ == {}, f"locked vs installed: {differ}; run `make setup`"
