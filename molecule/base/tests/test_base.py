"""base's real effects on each container: packages, sshd's effective settings, login environment."""

import pytest


@pytest.mark.parametrize("package", ["build-essential", "git", "curl", "unzip", "tmux", "htop", "libgfortran5"])
def test_packages_installed(host, package):
    assert host.package(package).is_installed


def test_build_tools_work(host):
    out = host.run("printf 'int main(void){return 42;}' | gcc -x c -o /tmp/gpubox-t - && /tmp/gpubox-t")
    assert out.rc == 42


def test_no_obsolete_gfortran(host):
    assert not host.package("libgfortran3").is_installed


def test_sshd_effective_settings(host):
    eff = host.run("sshd -T -C user=ubuntu,host=x,addr=127.0.0.1")
    assert eff.rc == 0, eff.stderr
    lines = set(eff.stdout.splitlines())
    assert {
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitrootlogin no",
        "pubkeyauthentication yes",
    } <= lines


def test_sshd_running_with_new_settings(host):
    assert host.service("ssh").is_running
    drop_in = host.file("/etc/ssh/sshd_config.d/00-gpubox.conf")
    assert drop_in.mode == 0o644 and drop_in.user == "root"
    assert "PasswordAuthentication no" in drop_in.content_string


def test_sshd_refuses_password_but_not_the_user(host):
    """A real SSH handshake from inside the box: only publickey is offered to ubuntu."""
    out = host.run(
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o PreferredAuthentications=password ubuntu@127.0.0.1 true"
    )
    assert out.rc != 0
    assert "Permission denied (publickey)" in out.stderr


def test_profile_helpers(host):
    helpers = host.file("/etc/profile.d/00-gpubox.sh")
    assert helpers.mode == 0o644 and helpers.user == "root"
    # A login shell gets the helper; prepending twice keeps one copy.
    out = host.run(
        "sudo -u ubuntu bash -lc 'gpubox_path_prepend PATH /opt/x; gpubox_path_prepend PATH /opt/x; echo $PATH'"
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.strip().split(":").count("/opt/x") == 1
    assert out.stdout.strip().startswith("/opt/x:")
    # dash reads /etc/profile too.
    assert host.run("sh -c '. /etc/profile.d/00-gpubox.sh; gpubox_path_prepend FOO /a; echo $FOO'").stdout == "/a\n"
