"""The cuda role's probe: the GPU, driver, toolkit, NVIDIA's apt repository, the persistence daemon and the files the
role writes whole, in one run.

Run by the role as root with the box's python3:  python3 -c SOURCE JSON_SETTINGS
and prints one JSON object (see probe()). It only reads, so it also runs in check mode. It needs neither lspci
nor python3-apt nor systemd (a machine without systemd reports systemd: false).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import stat
import subprocess


def run(argv: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return 127, str(err)
    return proc.returncode, proc.stdout


def read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def gpus() -> list[list[str]]:
    """NVIDIA display controllers on the PCI bus (vendor 0x10de, class 0x03xxxx), from sysfs: [slot, device]."""
    found = []
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        vendor, cls, device = (read(f"{dev}/{name}") for name in ("vendor", "class", "device"))
        if vendor and vendor.strip() == "0x10de" and (cls or "").startswith("0x03"):
            found.append([os.path.basename(dev), (device or "").strip()])
    return found


def packages(names: list[str]) -> dict[str, bool]:
    """Which of the packages dpkg has installed (all false where there is no dpkg)."""
    _rc, out = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *names])
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return {name: name in installed for name in names}


def deb822(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith((" ", "\t", "#")):
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
    return fields


def repo_state(want: dict) -> dict:
    """The role's source, keyring and pin against the settings, and other sources for the same repository."""
    url = want["repo_url"].rstrip("/")
    source = read(os.path.join(want["sources_dir"], "cuda.sources"))
    if source is None:
        source_state = "missing"
    else:
        f = deb822(source)
        ok = (
            f.get("types") == "deb"
            and f.get("uris", "").rstrip("/") == url
            and f.get("suites") == "/"
            and f.get("signed-by") == want["keyring"]
            and f.get("enabled", "yes").lower() != "no"
        )
        source_state = "ok" if ok else "wrong"
    if not os.path.isfile(want["keyring"]):
        keyring = "missing"
    else:
        _rc, out = run(["gpg", "--batch", "--with-colons", "--show-keys", want["keyring"]])
        fprs = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]
        keyring = "ok" if want["key_fingerprint"].upper() in fprs else "wrong"
    pin = read(want["pin_file"])
    pin_lines = {line.strip() for line in (pin or "").splitlines()}
    pin_ok = {"Package: *", "Pin: release l=NVIDIA CUDA", f"Pin-Priority: {want['pin_priority']}"} <= pin_lines
    pattern = re.compile(r".*" + re.escape(url) + r"/?(\s|$)", re.M)
    others = sorted(
        path
        for path in glob.glob(os.path.join(want["sources_dir"], "*.list"))
        + glob.glob(os.path.join(want["sources_dir"], "*.sources"))
        if os.path.basename(path) != "cuda.sources" and pattern.search(read(path) or "")
    )
    state = {
        "source": source_state,
        "keyring": keyring,
        "pin": "ok" if pin_ok else ("missing" if pin is None else "wrong"),
    }
    state["others"] = others
    state["ok"] = state["source"] == state["keyring"] == state["pin"] == "ok" and not others
    return state


def listed(folders: list[str]) -> dict:
    """The entries of `folders` (missing ones have none), in path_state's shape: {"files": [{"path": ...}]}."""
    paths = []
    for folder in folders:
        with contextlib.suppress(OSError):
            paths += [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    return {"files": [{"path": path} for path in paths]}


def persistenced_state(want: dict) -> dict:
    """NVIDIA's persistence daemon: its unit (from the driver packages), whether it is enabled and running,
    whether the role's drop-in is as it should be, and what its drop-in folders hold (`dropins`)."""
    state = {
        "unit": False,
        "enabled": "",
        "active": "",
        "dropin_ok": read(want["dropin"]) == want["dropin_content"],
        "dropins": listed(want.get("dropin_dirs", [])),
    }
    if not os.path.isdir("/run/systemd/system"):
        return state
    _rc, out = run(["systemctl", "show", "-p", "LoadState,UnitFileState,ActiveState", "nvidia-persistenced.service"])
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    state["unit"] = props.get("LoadState") == "loaded"
    state["enabled"] = props.get("UnitFileState", "")
    state["active"] = props.get("ActiveState", "")
    return state


def files_ok(files: dict) -> dict:
    """For each path the role writes whole: does it hold that content, as a root-owned 0644 file?"""
    ok = {}
    for path, content in files.items():
        try:
            st = os.lstat(path)
        except OSError:
            ok[path] = False
            continue
        right = stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == st.st_gid == 0
        ok[path] = right and read(path) == content
    return ok


def probe(want: dict) -> dict:
    smi_rc, smi = run(["nvidia-smi", "--query-gpu=name,driver_version,persistence_mode", "--format=csv,noheader"])
    nvcc_rc, nvcc = run([os.path.join(want["cuda_home"], "bin", "nvcc"), "--version"])
    release = re.search(r"release ([0-9]+\.[0-9]+),", nvcc) if nvcc_rc == 0 else None
    return {
        "gpus": gpus(),
        "smi_rc": smi_rc,
        "smi": [line for line in smi.splitlines() if line.strip()] if smi_rc == 0 else [],
        "nvcc": release.group(1) if release else None,
        "packages": packages(want["packages"]),
        "repo": repo_state(want),
        "systemd": os.path.isdir("/run/systemd/system"),
        "persistenced": persistenced_state(want),
        "files_ok": files_ok(want.get("files", {})),
        # On Nitro instances the DMI product name is the instance type (the setup module reads the same file, but
        # only with its costly hardware facts).
        "product_name": (read("/sys/class/dmi/id/product_name") or "").strip(),
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(probe(json.loads(sys.argv[1]))))
