"""Reliability of the cuda role on a systemd host reached over SSH as `ubuntu`, run through
playbooks/configure.yml with `--tags cuda`, against the stand-in NVIDIA repository on the test mirror
(tests/standins/nvidia/build.sh). The host has no GPU, so the role installs the toolkit only.

- a key with the wrong fingerprint: a clear failure naming it, and no key or source left behind;
- the mirror answers 503 twice for the key: the download is retried and succeeds;
- the dpkg lock held for 30 s when the run starts: the run waits for it and succeeds;
- drift: /etc/profile.d/cuda.sh removed, a CUDA package removed and a cuda-keyring style source for the
  same repository added → rerun with --tags cuda → repaired → a second run changes nothing;
- drift with the driver packages in (cuda_driver_force): the repository's key deleted, its pin and its source
  changed, NVIDIA's persistence daemon disabled and the role's drop-in removed → check mode reports it and
  changes nothing → rerun with --tags cuda → repaired → a second run changes nothing;
- a drop-in of NVIDIA's persistence daemon the role did not write (persistence mode off): check mode names it →
  rerun with --tags cuda → removed (an allowed one kept) → a second run changes nothing.
"""

from __future__ import annotations

import calendar
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, changed_count, run_ansible, ssh_inventory

DISTRO = "debian12"
REPO = f"/nvidia/{DISTRO}/x86_64"
LOCK_SECONDS = 30


@pytest.fixture(scope="module")
def standin(mirror_root: Path) -> str:
    """The stand-in repository on the mirror; returns its signing key's fingerprint."""
    subprocess.run([str(ROOT / "tests" / "standins" / "nvidia" / "build.sh"), str(mirror_root)], check=True)
    return (mirror_root / "nvidia" / "signing-key.fingerprint").read_text().strip()


@pytest.fixture(scope="module")
def box(testhost_factory, ssh_key, mirror, standin, tmp_path_factory):
    """A fresh Debian 12 host and a function that runs configure.yml --tags cuda on it."""
    host = testhost_factory("cuda-reliability", image=DISTRO)
    tmp = tmp_path_factory.mktemp("cuda-reliability")
    inventory = ssh_inventory(tmp / "hosts.yml", host, ssh_key)

    playbook = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "configure.yml")]

    def configure(check: bool = True, *args: str, **variables):
        extra = {
            "gpubox_boot_timeout": 120,
            "cuda_repo_base_url": f"{mirror.bridge_url}/nvidia",
            "cuda_repo_key_fingerprint": standin,
            **variables,
        }
        return run_ansible(
            [*playbook, "--tags", "cuda", "-e", json.dumps(extra), *args],
            env={"ANSIBLE_CACHE_PLUGIN": "memory", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
            check=check,
        )

    return host, configure


def test_wrong_key_is_refused_and_removed(box, standin):
    host, configure = box
    wrong = "0123456789ABCDEF0123456789ABCDEF" + standin[-8:]  # same file name, another fingerprint
    proc = configure(check=False, cuda_repo_key_fingerprint=wrong)
    assert proc.returncode != 0
    failures = [json.loads(line.split("=> ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("fatal:")]
    msg = " ".join(f.get("msg", "") for f in failures)
    assert wrong in msg and standin in msg and f"{REPO}/{standin[-8:].lower()}.pub" in msg
    assert host.exec("test", "-e", "/etc/apt/keyrings/nvidia-cuda.asc", check=False).returncode != 0
    assert host.exec("test", "-e", "/etc/apt/sources.list.d/cuda.sources", check=False).returncode != 0


def test_lock_held_and_flaky_mirror_at_start(box, mirror, standin):
    host, configure = box
    key_path = f"{REPO}/{standin[-8:].lower()}.pub"
    mirror.reset()
    mirror.fault(key_path, count=2, status=503)
    host.hold_dpkg_lock(LOCK_SECONDS)
    started = time.time()
    proc = configure()
    # The lock was still held when the run began, and apt installed only after it was released.
    assert host.exec("test", "-f", "/run/gpubox-lock-released").returncode == 0
    released = float(host.exec("cat", "/run/gpubox-lock-released").stdout)
    assert released - started > 5, "the run started too late to meet the held lock"
    first_install = host.exec("sh", "-c", "grep -m1 ' install cuda-' /var/log/dpkg.log").stdout
    installed_at = calendar.timegm(time.strptime(first_install[:19], "%Y-%m-%d %H:%M:%S"))  # the host logs UTC
    assert installed_at >= int(released), (first_install, released)
    # The key download met two 503s, was retried, and got the key.
    assert [r["status"] for r in mirror.requests(key_path)] == [503, 503, 200]
    # No GPU here: the toolkit only, and the run says so.
    assert "No NVIDIA GPU on the PCI bus of box: the CUDA toolkit only" in proc.stdout
    assert host.exec("dpkg-query", "-W", "-f=${Status}", "cuda-toolkit-12-8").stdout == "install ok installed"
    assert host.exec("dpkg-query", "-W", "nvidia-open-580", check=False).returncode != 0


def test_drift_repaired_by_rerunning_the_role(box, mirror):
    host, configure = box
    host.exec("rm", "/etc/profile.d/cuda.sh")
    # What cuda-keyring leaves behind: the same repository with another Signed-By (apt refuses the conflict).
    keyring_list = f"/etc/apt/sources.list.d/cuda-{DISTRO}-x86_64.list"
    line = f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {mirror.bridge_url}{REPO}/ /"
    host.exec("sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q cuda-nvcc-12-8 >/dev/null")
    host.exec("sh", "-c", f"echo '{line}' > {keyring_list}")
    conflict = host.exec("apt-get", "update", check=False)
    assert conflict.returncode != 0 and "Signed-By" in conflict.stderr, conflict.stderr
    assert host.exec("test", "-e", "/usr/local/cuda-12.8/bin/nvcc", check=False).returncode != 0

    repaired = configure()
    assert changed_count(repaired.stdout) > 0
    assert host.exec("test", "-e", keyring_list, check=False).returncode != 0
    for package in ("cuda-toolkit-12-8", "cuda-nvcc-12-8"):
        assert host.exec("dpkg-query", "-W", "-f=${Status}", package).stdout == "install ok installed"
    login = host.exec("sudo", "-u", "ubuntu", "bash", "-lc", "nvcc --version")
    assert "release 12.8," in login.stdout

    again = configure()
    assert changed_count(again.stdout) == 0, again.stdout[-3000:]


KEYRING = "/etc/apt/keyrings/nvidia-cuda.asc"
PIN = "/etc/apt/preferences.d/cuda-repository-pin-600"
SOURCE = "/etc/apt/sources.list.d/cuda.sources"
DROPIN = "/etc/systemd/system/nvidia-persistenced.service.d/gpubox.conf"


def test_repository_and_persistence_drift_repaired(box, standin):
    host, configure = box
    forced = {"cuda_driver_force": True, "cuda_reboot": False}
    configure(**forced)
    assert host.exec("dpkg-query", "-W", "-f=${Status}", "nvidia-compute-utils-580").stdout == "install ok installed"
    assert host.exec("systemctl", "is-enabled", "nvidia-persistenced").stdout.strip() == "enabled"
    # Check mode on the configured box: nothing to change.
    assert changed_count(configure(True, "--check", **forced).stdout) == 0

    pin, source = host.exec("cat", PIN).stdout, host.exec("cat", SOURCE).stdout
    host.exec("systemctl", "disable", "nvidia-persistenced")
    host.exec("rm", KEYRING, DROPIN)
    host.exec("sed", "-i", "s/^Pin-Priority: 600/Pin-Priority: 100/", PIN)
    host.exec("sh", "-c", f"echo 'Enabled: no' >> {SOURCE}")
    host.exec("systemctl", "daemon-reload")

    def drifted() -> bool:
        return (
            host.exec("test", "-e", KEYRING, check=False).returncode != 0
            and "Pin-Priority: 100" in host.exec("cat", PIN).stdout
            and "Enabled: no" in host.exec("cat", SOURCE).stdout
            and host.exec("systemctl", "is-enabled", "nvidia-persistenced", check=False).stdout.strip() != "enabled"
        )

    assert drifted()
    # Check mode reports the drift and repairs nothing.
    assert changed_count(configure(True, "--check", **forced).stdout) > 0
    assert drifted()

    assert changed_count(configure(**forced).stdout) > 0
    shown = host.exec("gpg", "--batch", "--with-colons", "--show-keys", KEYRING).stdout
    assert f"fpr:::::::::{standin}:" in shown
    assert host.exec("cat", PIN).stdout == pin
    assert host.exec("cat", SOURCE).stdout == source
    assert host.exec("apt-get", "update").returncode == 0
    assert host.exec("systemctl", "is-enabled", "nvidia-persistenced").stdout.strip() == "enabled"
    exec_start = host.exec("systemctl", "show", "-p", "ExecStart", "--value", "nvidia-persistenced").stdout
    assert "--user nvidia-persistenced" in exec_start and "--no-persistence-mode" not in exec_start

    again = configure(**forced)
    assert changed_count(again.stdout) == 0, again.stdout[-3000:]


def test_foreign_persistenced_drop_in_removed(box):
    """A drop-in of nvidia-persistenced the role did not write (`systemctl edit`, persistence mode off): --check
    names it and changes nothing; a rerun removes it, the daemon's unit is the package's and the role's again, and
    the one cuda_allowed_drop_ins names stays; a second run changes nothing."""
    host, configure = box
    allowed = {"cuda_driver_force": True, "cuda_reboot": False, "cuda_allowed_drop_ins": ["50-site.conf"]}
    configure(**allowed)  # the driver packages in (as the test before leaves them)
    folder = DROPIN.rsplit("/", 1)[0]
    foreign, kept = f"{folder}/override.conf", f"{folder}/50-site.conf"
    override = "[Service]\nExecStart=\nExecStart=/usr/bin/nvidia-persistenced --no-persistence-mode\n"
    host.exec("sh", "-c", f"cat > {foreign}", input=override)
    host.exec("sh", "-c", f"printf '[Service]\\nEnvironment=GPUBOX_SITE=1\\n' > {kept}")
    host.exec("systemctl", "daemon-reload")

    def exec_start() -> str:
        return host.exec("systemctl", "show", "-p", "ExecStart", "--value", "nvidia-persistenced").stdout

    assert "--no-persistence-mode" in exec_start()
    checked = configure(True, "--check", **allowed)
    assert changed_count(checked.stdout) > 0 and f"(item={foreign})" in checked.stdout, checked.stdout[-3000:]
    assert kept not in checked.stdout
    assert "--no-persistence-mode" in host.exec("cat", foreign).stdout

    assert changed_count(configure(**allowed).stdout) > 0
    assert host.exec("ls", folder).stdout.split() == ["50-site.conf", "gpubox.conf"]
    assert "--user nvidia-persistenced" in exec_start() and "--no-persistence-mode" not in exec_start()
    environment = host.exec("systemctl", "show", "-p", "Environment", "nvidia-persistenced").stdout
    assert "GPUBOX_SITE=1" in environment

    again = configure(**allowed)
    assert changed_count(again.stdout) == 0, again.stdout[-3000:]
