"""Run a molecule scenario with the download mirror up on its podman network.

Every scenario's platforms come from the shared base config, .config/molecule/config.yml, which molecule merges
under molecule/NAME/molecule.yml (and which is named here with --base-config, so it applies even outside a git
checkout). They join a network of the scenario's own (`extra_opts: [--network=gpubox-mol-NAME]`, created
here with a free subnet and left in place, so scenarios and pytest never share or delete a bridge). The
mirror serves .cache/mirror/ (filled by tests/standins/build.sh when present) on 127.0.0.1 and on the
bridge's gateway address; the scenario finds it through the environment:
  GPUBOX_MIRROR_URL      http://<gateway>:<port>   (what the containers use)
  GPUBOX_MIRROR_CONTROL  http://127.0.0.1:<port>   (fault injection from the controller)

Shell:  python -m tests.ground.molecule_run SCENARIO [molecule command, default: test]
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

import yaml
from molecule.util import merge_dicts

from tests.ground.hosts import ensure_free_network
from tests.ground.mirror import Mirror

ROOT = Path(__file__).resolve().parents[2]
MIRROR_ROOT = ROOT / ".cache" / "mirror"
STANDINS = ROOT / "tests" / "standins" / "build.sh"
BASE_CONFIG = ROOT / ".config" / "molecule" / "config.yml"


def scenario_config(scenario: str) -> dict:
    """The scenario's configuration as molecule sees it: the base config, then molecule.yml merged over it
    (mappings key by key, a list replaced whole), with ${MOLECULE_SCENARIO_NAME} filled in."""
    merged: dict = {}
    for path in (BASE_CONFIG, ROOT / "molecule" / scenario / "molecule.yml"):
        text = string.Template(path.read_text()).safe_substitute(MOLECULE_SCENARIO_NAME=scenario)
        merged = merge_dicts(merged, yaml.safe_load(text) or {})
    return merged


def scenario_network(scenario: str) -> str | None:
    """The podman network the scenario's platforms join (`extra_opts: [--network=NAME]`), if any."""
    platforms = scenario_config(scenario).get("platforms", [])
    names = {o.split("=", 1)[1] for p in platforms for o in p.get("extra_opts", []) if o.startswith("--network=")}
    if len(names) > 1:
        raise SystemExit(f"molecule/{scenario}: all platforms must share one network, got {sorted(names)}")
    return names.pop() if names else None


def prepare_mirror_root() -> Path:
    """Fill .cache/mirror/ with the stand-ins (cached by tests/standins/build.sh) and a probe file."""
    MIRROR_ROOT.mkdir(parents=True, exist_ok=True)
    (MIRROR_ROOT / "probe.txt").write_text("mirror ok\n")  # lets a scenario check that it reaches the mirror
    if STANDINS.exists():
        subprocess.run([str(STANDINS), str(MIRROR_ROOT)], check=True)
    return MIRROR_ROOT


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    scenario, command = argv[0], argv[1:] or ["test"]
    prepare_mirror_root()
    network = scenario_network(scenario)
    gateway = ensure_free_network(network) if network else None
    mirror = Mirror(MIRROR_ROOT, ("127.0.0.1", gateway) if gateway else ("127.0.0.1",)).start()
    env = dict(os.environ)
    env["GPUBOX_MIRROR_URL"] = mirror.url(gateway or "127.0.0.1")
    env["GPUBOX_MIRROR_CONTROL"] = mirror.url()
    try:
        return subprocess.run(
            ["molecule", "--base-config", str(BASE_CONFIG), *command, "-s", scenario], cwd=ROOT, env=env
        ).returncode
    finally:
        mirror.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
