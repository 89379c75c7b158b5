"""The smoke play's real effects on each container: a file, and a systemd unit that ran."""


def test_marker_file(host):
    marker = host.file("/etc/gpubox-smoke")
    assert marker.is_file
    assert marker.mode == 0o644
    release = host.system_info.release.split(".")[0]
    assert marker.content_string == f"gpubox smoke on Debian {release}\n"


def test_unit_ran_under_systemd(host):
    assert host.run("readlink /proc/1/exe").stdout.strip().endswith("systemd")
    unit = host.service("gpubox-smoke")
    assert unit.is_enabled
    assert unit.is_running  # active (oneshot with RemainAfterExit)
    assert host.file("/run/gpubox-smoke").content_string == host.file("/etc/gpubox-smoke").content_string


def test_login_user_like_ec2(host):
    ubuntu = host.user("ubuntu")
    assert ubuntu.exists and ubuntu.shell == "/bin/bash"
    assert host.run("sudo -n -u ubuntu sudo -n true").rc == 0
