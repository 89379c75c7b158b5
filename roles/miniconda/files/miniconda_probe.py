"""The miniconda role's probe: what the box holds, compared with what the role wants, in one run.

Run by the role as the environment's owner with the box's python3:  python3 -c SOURCE JSON_SETTINGS
and prints one JSON object (see probe()). It changes nothing, so it also runs in check mode. The checks inside
the environment run in a child process with the environment's own Python (ENV_CHECK below).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

# Runs inside the environment: its Python version, the spec's requirements and everything they require (markers
# and extras evaluated as pip does) that is missing or at a version that does not satisfy them, and the modules
# that do not import, each with the requirement that reinstalls the package providing it.
ENV_CHECK = r"""
import importlib, json, sys
from email.parser import HeaderParser
from importlib.metadata import distributions, packages_distributions
try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name


def headers(dist):
    # Only the headers of METADATA (name, version, requirements): its body, the project's whole description, is
    # most of the file and most of the time importlib.metadata takes to parse it (on each property read).
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    return HeaderParser().parsestr(text.split("\n\n", 1)[0])


# Each installed distribution, with its headers, by its normalized name, the first on sys.path winning (as
# distribution() finds it): one pass over site-packages instead of one per requirement.
installed = {}
for dist in distributions():
    meta = headers(dist)
    installed.setdefault(canonicalize_name(meta["Name"] or ""), (dist, meta))

wanted = json.loads(sys.argv[1])
pins = {canonicalize_name(Requirement(r).name): r for r in wanted["requirements"]}
unmet, seen = [], set()
queue = [(Requirement(r), "the environment file") for r in wanted["requirements"]]
while queue:
    req, parent = queue.pop()
    name = canonicalize_name(req.name)
    if name not in installed:
        unmet.append(f"{req} (required by {parent}): not installed")
        continue
    dist, meta = installed[name]
    if not meta["Version"] or not req.specifier.contains(meta["Version"], prereleases=True):
        unmet.append(f"{req} (required by {parent}): {meta['Version']} installed")
    key = (name, frozenset(req.extras))
    if key in seen:
        continue
    seen.add(key)
    extras = set(req.extras) | {""}
    # an egg-info distribution keeps its requirements in requires.txt, which importlib.metadata reads
    for line in meta.get_all("Requires-Dist") or dist.requires or []:
        dep = Requirement(line)
        if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
            queue.append((dep, f"{meta['Name']} {meta['Version']}"))

providers = None  # which distribution provides which module: read (~0.1 s) only when an import fails
broken, reinstall = [], []
for module in wanted["imports"]:
    try:
        importlib.import_module(module)
    except Exception as err:  # any failure to import is drift
        broken.append(f"{module}: {type(err).__name__}: {err}")
        providers = packages_distributions() if providers is None else providers
        for provider in map(canonicalize_name, providers.get(module.split(".")[0], [])):
            if provider in installed:
                meta = installed[provider][1]
                reinstall.append(pins.get(provider, f"{meta['Name']}=={meta['Version']}"))
print(json.dumps({"python": "%d.%d.%d" % sys.version_info[:3], "unmet": unmet, "import_errors": broken,
                  "reinstall": sorted(set(reinstall))}))
"""


def env_state(want: dict) -> dict:
    """The environment: missing (no conda environment there), broken (its Python does not run) or present,
    with what its Python reports."""
    prefix = want["env_prefix"]
    if not os.path.isfile(os.path.join(prefix, "conda-meta", "history")):
        return {"env": "missing"}
    python = os.path.join(prefix, "bin", "python")
    args = json.dumps({"requirements": want["requirements"], "imports": want["imports"]})
    # No bytecode written by the probe; the check never reads the user's site directory.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    try:
        proc = subprocess.run(
            [python, "-c", ENV_CHECK, args], capture_output=True, text=True, env=env, timeout=300, check=False
        )
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as err:
        detail = proc.stderr.strip()[-500:] if "proc" in locals() else str(err)
        return {"env": "broken", "env_error": detail or str(err)}
    version = want["python"]
    found["python_ok"] = found["python"] == version or found["python"].startswith(version + ".")
    found["env"] = "present"
    return found


def kernel_state(want: dict) -> str:
    """The Jupyter kernel spec: ok, missing, or wrong (another Python or name)."""
    try:
        with open(want["kernel_json"]) as f:
            spec = json.load(f)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError):
        return "wrong"
    argv = spec.get("argv") or [""]
    ok = argv[0] == os.path.join(want["env_prefix"], "bin", "python")
    return "ok" if ok and spec.get("display_name") == want["kernel_display_name"] else "wrong"


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zipfile.crc32(block, crc)
    return crc


def notebooks_state(want: dict) -> dict:
    """The notebooks against the archive kept on the box, which is their manifest (names and CRC-32s): the files
    of the archive that are missing (to restore), and how many differ from it (edited by the user: left alone)."""
    if not want.get("notebooks_zip"):
        return {}
    path, root = want["notebooks_zip"], want["notebooks_dir"]
    state = {"zip_ok": os.path.isfile(path), "missing": None, "edited": 0, "shipped": 0}
    if state["zip_ok"] and want.get("notebooks_sha256"):
        state["zip_ok"] = sha256(path) == want["notebooks_sha256"]
    if not state["zip_ok"]:
        return state
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
    except zipfile.BadZipFile:
        state["zip_ok"] = False
        return state
    state["missing"] = []
    state["shipped"] = len(members)
    for member in members:
        target = os.path.join(root, member.filename)
        if not os.path.isfile(target):
            state["missing"].append(member.filename)
        elif os.path.getsize(target) != member.file_size or crc32(target) != member.CRC:
            state["edited"] += 1
    return state


def conda_init_state(want: dict) -> bool:
    """Does the user's ~/.bashrc hold `conda init`'s block, calling this prefix's conda?"""
    if not want.get("bashrc"):
        return True
    try:
        with open(want["bashrc"]) as f:
            text = f.read()
    except OSError:
        return False
    block = re.search(r"^# >>> conda initialize >>>$(.*?)^# <<< conda initialize <<<$", text, re.M | re.S)
    return bool(block) and f"'{want['conda']}' 'shell.bash' 'hook'" in block.group(1)


def probe(want: dict) -> dict:
    state = env_state(want)
    state["conda_init"] = conda_init_state(want)
    state["kernel"] = kernel_state(want)
    state["notebooks"] = notebooks_state(want)
    state["unzip"] = shutil.which("unzip") is not None
    return state


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))))
