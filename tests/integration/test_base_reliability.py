"""Reliability of the base role on a systemd host reached over SSH as `ubuntu`, run through
playbooks/configure.yml with `--tags base`:

- the dpkg lock held for 30 s when the run starts (unattended-upgrades on a fresh EC2 boot): the run waits
  for it and succeeds;
- drift: password login turned back on (in the role's drop-in, in sshd_config and in a cloud-init style
  drop-in) → rerun with --tags base → keys only again → a second run changes nothing;
- drift: an sshd drop-in the role did not write → check mode names it and changes nothing → rerun with --tags
  base → removed, sshd back to its settings, cloud-init's drop-in kept → a second run changes nothing;
- drift: the login-environment helpers edited → check mode reports it and changes nothing → rerun with --tags
  base → restored → a second run changes nothing.
"""

from __future__ import annotations

import calendar
import json
import subprocess
import time

import pytest

from tests.conftest import ROOT, changed_count, run_ansible, ssh_inventory

LOCK_SECONDS = 30


def failure_messages(proc) -> str:
    """The messages of the failed tasks (ansible-core prints the task's source under them too)."""
    return " ".join(
        json.loads(line.split("=> ", 1)[1]).get("msg", "")
        for line in proc.stdout.splitlines()
        if line.startswith("fatal:")
    )


def effective(host) -> set[str]:
    return set(host.exec("sshd", "-T", "-C", "user=ubuntu,host=x,addr=127.0.0.1").stdout.splitlines())


def password_offered(host, tmp_path) -> str:
    """What sshd answers `ubuntu` over a real connection when no key is offered."""
    options = ["BatchMode=yes", "PubkeyAuthentication=no", f"UserKnownHostsFile={tmp_path}/known_hosts"]
    options.append("StrictHostKeyChecking=accept-new")
    out = subprocess.run(
        ["ssh", "-p", str(host.ssh_port), *(a for o in options for a in ("-o", o)), "ubuntu@127.0.0.1", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stderr


@pytest.fixture(scope="module")
def box(testhost_factory, ssh_key, tmp_path_factory):
    host = testhost_factory("base-reliability", image="debian13")
    tmp = tmp_path_factory.mktemp("base-reliability")
    inventory = ssh_inventory(tmp / "hosts.yml", host, ssh_key)

    playbook = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "configure.yml")]

    def configure(check: bool = True, *args: str, **variables):
        return run_ansible(
            [*playbook, "--tags", "base", "-e", json.dumps({"gpubox_boot_timeout": 120, **variables}), *args],
            env={"ANSIBLE_CACHE_PLUGIN": "memory", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
            check=check,
        )

    return host, configure, tmp


def test_first_run_waits_for_the_dpkg_lock(box):
    host, configure, _ = box
    host.hold_dpkg_lock(LOCK_SECONDS)
    started = time.time()
    configure()
    released = float(host.exec("cat", "/run/gpubox-lock-released").stdout)
    assert released - started > 5, "the run started too late to meet the held lock"
    first_install = host.exec("sh", "-c", "grep -m1 ' install ' /var/log/dpkg.log").stdout
    installed_at = calendar.timegm(time.strptime(first_install[:19], "%Y-%m-%d %H:%M:%S"))  # the host logs UTC
    assert installed_at >= int(released), (first_install, released)
    assert host.exec("dpkg-query", "-W", "-f=${Status}", "build-essential").stdout == "install ok installed"


def test_password_login_drift_repaired(box, tmp_path):
    host, configure, _ = box
    assert "passwordauthentication no" in effective(host)
    host.exec(
        "sed", "-i", "s/^PasswordAuthentication no/PasswordAuthentication yes/", "/etc/ssh/sshd_config.d/00-gpubox.conf"
    )
    host.exec("sed", "-i", "1i PasswordAuthentication yes", "/etc/ssh/sshd_config")  # before the Include: wins
    host.exec("sed", "-i", "1i PermitRootLogin yes", "/etc/ssh/sshd_config")
    host.exec("sh", "-c", "echo 'PasswordAuthentication yes' > /etc/ssh/sshd_config.d/50-cloud-init.conf")
    host.exec("systemctl", "reload", "ssh")
    assert {"passwordauthentication yes", "permitrootlogin yes"} <= effective(host)
    assert "password" in password_offered(host, tmp_path)

    repaired = configure()
    assert changed_count(repaired.stdout) > 0
    assert {"passwordauthentication no", "permitrootlogin no", "kbdinteractiveauthentication no"} <= effective(host)
    offered = password_offered(host, tmp_path)
    assert "Permission denied (publickey)" in offered, offered

    again = configure()
    assert changed_count(again.stdout) == 0, again.stdout[-3000:]


def test_foreign_sshd_drop_in_removed(box):
    host, configure, _ = box
    foreign, cloud_init = "/etc/ssh/sshd_config.d/99-foreign.conf", "/etc/ssh/sshd_config.d/50-cloud-init.conf"
    host.exec("sh", "-c", f"echo 'MaxAuthTries 2' > {foreign}; echo 'PasswordAuthentication no' > {cloud_init}")
    host.exec("systemctl", "reload", "ssh")
    assert "maxauthtries 2" in effective(host)

    checked = configure(True, "--check")
    assert changed_count(checked.stdout) > 0 and f"(item={foreign})" in checked.stdout, checked.stdout[-3000:]
    assert cloud_init not in checked.stdout
    assert host.exec("cat", foreign).stdout == "MaxAuthTries 2\n"

    repaired = configure()
    assert changed_count(repaired.stdout) > 0
    assert host.exec("test", "-e", foreign, check=False).returncode != 0
    assert host.exec("cat", cloud_init).stdout == "PasswordAuthentication no\n"
    assert "maxauthtries 6" in effective(host)  # sshd's default again

    again = configure()
    assert changed_count(again.stdout) == 0, again.stdout[-3000:]


def test_profile_helpers_drift_repaired(box):
    host, configure, _ = box
    helpers = "/etc/profile.d/00-gpubox.sh"
    shipped = host.exec("cat", helpers).stdout
    assert changed_count(configure(True, "--check").stdout) == 0
    host.exec("sh", "-c", f"echo 'gpubox_path_prepend() {{ :; }}' > {helpers}")
    assert changed_count(configure(True, "--check").stdout) > 0
    assert host.exec("cat", helpers).stdout != shipped
    assert changed_count(configure().stdout) > 0
    assert host.exec("cat", helpers).stdout == shipped
    login = host.exec("sudo", "-u", "ubuntu", "bash", "-lc", "gpubox_path_prepend PATH /opt/x; echo $PATH")
    assert login.stdout.startswith("/opt/x:")
    assert changed_count(configure().stdout) == 0


def test_no_lockout_of_a_user_without_a_key(box):
    """Hardening sshd for a login user who has no authorized key would lock them out: refused, unchanged."""
    host, configure, _ = box
    host.exec("useradd", "--create-home", "--shell", "/bin/bash", "keyless")
    before = host.exec("cat", "/etc/ssh/sshd_config.d/00-gpubox.conf").stdout
    proc = configure(check=False, gpubox_user="keyless")
    assert proc.returncode != 0
    msg = failure_messages(proc)
    assert "/home/keyless/.ssh/authorized_keys" in msg and "base_sshd_require_user_key" in msg, msg
    assert host.exec("cat", "/etc/ssh/sshd_config.d/00-gpubox.conf").stdout == before

    proc = configure(check=False, gpubox_user="nosuchuser")
    assert proc.returncode != 0
    assert "base_user 'nosuchuser' does not exist" in failure_messages(proc)


def test_wrong_type_refused_by_argument_spec(box):
    _, configure, _ = box
    proc = configure(check=False, base_apt_cache_valid_time="an hour")
    assert proc.returncode != 0
    msg = failure_messages(proc)
    assert "base_apt_cache_valid_time" in msg and "int" in msg, msg
