#!/usr/bin/env python3
"""Check that the installed Ansible collections satisfy requirements.yml (version floors).

usage: check-collections.py [requirements.yml]   (run with the venv's python; exit 1 on any gap)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version


def installed() -> dict[str, str]:
    bindir = Path(sys.executable).parent
    out = subprocess.run(
        [str(bindir / "ansible-galaxy"), "collection", "list", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found: dict[str, str] = {}
    for path_entries in json.loads(out).values():  # first path on the search list wins
        for name, meta in path_entries.items():
            found.setdefault(name, meta["version"])
    return found


def satisfies(version: str, spec: str) -> bool:
    """A collection's version against a Galaxy version range (">=11.0.0", "*")."""
    return Version(version) in SpecifierSet(spec.replace("*", ">=0"))


def check(requirements: Path) -> list[str]:
    wanted = yaml.safe_load(requirements.read_text())["collections"]
    have = installed()
    problems = []
    for item in wanted:
        name, spec = item["name"], item.get("version", "*")
        if name not in have:
            problems.append(f"{name}: not installed (wanted {spec})")
        elif not satisfies(have[name], spec):
            problems.append(f"{name}: {have[name]} installed, wanted {spec}")
        else:
            print(f"ok  {name} {have[name]} ({spec})")
    return problems


if __name__ == "__main__":
    problems = check(Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.yml"))
    for p in problems:
        print(f"BAD {p}", file=sys.stderr)
    if problems:
        print("Reinstall with `make setup`, or: ansible-galaxy collection install -r requirements.yml", file=sys.stderr)
    sys.exit(1 if problems else 0)
