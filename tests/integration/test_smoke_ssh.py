"""Smoke: a systemd test host is reached over real SSH as `ubuntu` with sudo, and fetches from the mirror."""

import subprocess

from tests.conftest import run_ansible, ssh_inventory


def ssh(host, key, command: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(host.ssh_port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={tmp_path}/known_hosts",
            "ubuntu@127.0.0.1",
            command,
        ],
        text=True,
        capture_output=True,
        timeout=60,
    )


def test_ssh_sudo_and_mirror_fetch(testhost_factory, ssh_key, mirror, mirror_root, tmp_path):
    host = testhost_factory("smoke-ssh")
    (mirror_root / "hello.txt").write_text("from the mirror\n")

    who = ssh(host, ssh_key, "id -un; sudo -n id -u", tmp_path)
    assert who.returncode == 0, who.stderr
    assert who.stdout.split() == ["ubuntu", "0"]

    fetch = ssh(
        host,
        ssh_key,
        f'python3 -c "import urllib.request as u; '
        f"print(u.urlopen('{mirror.bridge_url}/hello.txt').read().decode(), end='')\"",
        tmp_path,
    )
    assert fetch.returncode == 0, fetch.stderr
    assert fetch.stdout == "from the mirror\n"
    assert mirror.requests("/hello.txt")[-1] == {"path": "/hello.txt", "status": 200, "client": host.address}


def test_mirror_faults_seen_from_a_host(testhost_factory, ssh_key, mirror, mirror_root, tmp_path):
    host = testhost_factory("smoke-ssh")  # same name: a fresh container
    (mirror_root / "flaky.bin").write_bytes(b"x" * 200)
    mirror.fault("/flaky.bin", count=2, status=503)
    script = (
        f"import urllib.request as u, urllib.error as e\n"
        f"for _ in range(3):\n"
        f"    try: print(len(u.urlopen('{mirror.bridge_url}/flaky.bin').read()))\n"
        f"    except e.HTTPError as x: print(x.code)\n"
    )
    out = ssh(host, ssh_key, f'python3 -c "{script}"', tmp_path)
    assert out.stdout.split() == ["503", "503", "200"], out.stderr
    # The control API is not open to the hosts.
    ctl = ssh(
        host,
        ssh_key,
        f"python3 -c \"import urllib.request as u; u.urlopen('{mirror.bridge_url}/_mirror/log')\"",
        tmp_path,
    )
    assert ctl.returncode != 0 and "403" in ctl.stderr


def test_hosts_have_their_own_host_keys(testhost_factory):
    a, b = testhost_factory("keys-a"), testhost_factory("keys-b", image="debian13")
    key = "/etc/ssh/ssh_host_ed25519_key.pub"
    assert a.exec("cat", key).stdout != b.exec("cat", key).stdout
    assert b.exec("sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME").stdout.strip() == "trixie"


def test_ansible_reaches_host_over_ssh_with_become(testhost_factory, ssh_key, tmp_path):
    host = testhost_factory("smoke-ansible")
    inventory = ssh_inventory(tmp_path / "hosts.yml", host, ssh_key)
    out = run_ansible(["ansible", "-i", str(inventory), "box", "-b", "-m", "ansible.builtin.command", "-a", "id -un"])
    assert "root" in out.stdout
