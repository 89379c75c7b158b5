"""cuda's real effects on each container, installed from the stand-in NVIDIA repository over apt."""

import pytest

VERSION = "12.8"
HOME = f"/usr/local/cuda-{VERSION}"


def forced(host) -> bool:
    """cuda-debian13 runs with cuda_driver_force: true (see host_vars/cuda-debian13.yml)."""
    return "debian13" in host.backend.get_hostname()


def test_toolkit_package_and_layout(host):
    assert host.package("cuda-toolkit-12-8").is_installed
    nvcc = host.run(f"{HOME}/bin/nvcc --version")
    assert nvcc.rc == 0 and f"release {VERSION}," in nvcc.stdout
    # /usr/local/cuda through update-alternatives, as NVIDIA's packages do it.
    assert host.file("/usr/local/cuda").linked_to == HOME
    assert host.file(f"{HOME}/lib64").is_symlink


def test_login_shell_finds_cuda(host):
    out = host.run("sudo -u ubuntu bash -lc 'command -v nvcc; echo $LD_LIBRARY_PATH; echo $CUDA_HOME'")
    assert out.rc == 0, out.stderr
    nvcc, ld_path, cuda_home = out.stdout.splitlines()
    assert nvcc == f"{HOME}/bin/nvcc"
    assert f"{HOME}/lib64" in ld_path.split(":")
    assert cuda_home == HOME
    twice = host.run(". /etc/profile.d/cuda.sh; . /etc/profile.d/cuda.sh; echo $PATH")
    assert twice.stdout.split(":").count(f"{HOME}/bin") == 1


def test_dynamic_linker_knows_cudart(host):
    assert host.file("/etc/ld.so.conf.d/gpubox-cuda.conf").content_string.strip().endswith(f"{HOME}/lib64")
    assert f"{HOME}/lib64/libcudart.so.12" in host.run("ldconfig -p").stdout


def test_repository_is_deb822_signed_and_pinned(host):
    source = host.file("/etc/apt/sources.list.d/cuda.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/nvidia-cuda.asc" in source
    assert "Suites: /" in source
    assert "/nvidia/" + ("debian13" if forced(host) else "debian12") + "/x86_64/" in source
    assert not host.file("/etc/apt/trusted.gpg").exists  # no apt-key
    policy = host.run("apt-cache policy cuda-toolkit-12-8").stdout
    assert "600" in policy


def test_apt_really_checks_the_signature(host):
    """The same repository with another key in Signed-By is refused by apt."""
    uri = host.run("sed -n 's/^URIs: //p' /etc/apt/sources.list.d/cuda.sources").stdout.strip()
    host.run(
        f"printf 'Types: deb\\nURIs: {uri}\\nSuites: /\\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' > /tmp/wrong-key.sources"
    )
    host.run("mkdir -p /tmp/lists-wrong-key/partial")
    out = host.run(
        "apt-get update -o Dir::Etc::SourceList=/tmp/wrong-key.sources -o Dir::Etc::SourceParts=/nonexistent "
        "-o Dir::State::Lists=/tmp/lists-wrong-key -o APT::Get::List-Cleanup=false"
    )
    text = out.stdout + out.stderr
    assert "NO_PUBKEY" in text or "Missing key" in text or "signature" in text.lower(), text
    assert not host.file("/tmp/lists-wrong-key").listdir() or all(
        "Packages" not in name for name in host.file("/tmp/lists-wrong-key").listdir()
    )


def test_driver_only_when_forced(host):
    smi = host.run("nvidia-smi")
    if forced(host):
        # Auto flavour without an instance family or a GPU: the open kernel modules.
        assert host.package("nvidia-open-580").is_installed
        assert not host.package("cuda-drivers-580").is_installed
        assert host.file("/etc/modprobe.d/blacklist-nouveau.conf").contains("^blacklist nouveau$")
        # Installed, and failing as it must without a kernel driver (no reboot in a container).
        assert smi.rc == 9 and "couldn't communicate with the NVIDIA driver" in smi.stdout
    else:
        assert not host.package("nvidia-open-580").is_installed
        assert not host.package("cuda-drivers-580").is_installed
        assert not host.file("/etc/modprobe.d/blacklist-nouveau.conf").exists
        assert smi.rc == 127


@pytest.mark.parametrize("path", ["/etc/profile.d/cuda.sh", "/etc/ld.so.conf.d/gpubox-cuda.conf"])
def test_files_owned_by_root(host, path):
    f = host.file(path)
    assert f.user == "root" and f.mode == 0o644


def test_persistence_daemon_enabled_with_persistence_mode(host):
    """NVIDIA's daemon keeps persistence mode from boot on: enabled through the role's drop-in (the packaged unit
    starts it with --no-persistence-mode and has no [Install] section); no GPU here, so it is not running."""
    enabled = host.run("systemctl is-enabled nvidia-persistenced")
    if forced(host):
        assert enabled.stdout.strip() == "enabled"
        assert host.file("/etc/systemd/system/multi-user.target.wants/nvidia-persistenced.service").is_symlink
        exec_start = host.check_output("systemctl show -p ExecStart --value nvidia-persistenced")
        assert "--user nvidia-persistenced" in exec_start and "--no-persistence-mode" not in exec_start
        assert host.check_output("systemctl show -p StopWhenUnneeded --value nvidia-persistenced") == "no"
        assert host.check_output("systemctl is-active nvidia-persistenced || true") == "inactive"
    else:
        assert not host.file("/etc/systemd/system/nvidia-persistenced.service.d/gpubox.conf").exists
        assert enabled.rc != 0
