"""The stand-in Miniconda/Miniforge installers are as strict as the real ones about their command line, and
their `conda` refuses what conda refuses (tests/standins/miniconda/). Runs them on this machine."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIRROR = ROOT / ".cache" / "mirror"
MINICONDA = "Miniconda3-py311_25.5.1-1-Linux-x86_64.sh"
MINIFORGE = "Miniforge3-25.3.1-0-Linux-x86_64.sh"


@pytest.fixture(scope="session")
def installers() -> Path:
    subprocess.run([str(ROOT / "tests" / "standins" / "miniconda" / "build.sh"), str(MIRROR)], check=True)
    return MIRROR / "miniconda"


@pytest.fixture
def home(tmp_path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def run(args, home: Path, **kw) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run([str(a) for a in args], env=env, text=True, capture_output=True, timeout=120, **kw)


def install(installers: Path, name: str, prefix: Path, home: Path, *opts: str) -> subprocess.CompletedProcess:
    return run(["bash", installers / name, *opts, "-p", prefix], home)


def test_checksums_published_next_to_the_installers(installers):
    sums = dict(reversed(line.split("  ")) for line in (installers / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {MINICONDA, MINIFORGE}
    for name, digest in sums.items():
        out = subprocess.run(["sha256sum", installers / name], capture_output=True, text=True, check=True)
        assert out.stdout.split()[0] == digest


def test_installer_command_line(installers, home, tmp_path):
    prefix = tmp_path / "mc"
    assert run(["bash", installers / MINICONDA, "-h"], home).returncode == 2
    bad = run(["bash", installers / MINICONDA, "-b", "-z", "-p", prefix], home)
    assert bad.returncode == 1 and not prefix.exists()
    interactive = run(["bash", installers / MINICONDA, "-p", prefix], home)
    assert interactive.returncode == 2 and not prefix.exists()
    spaces = install(installers, MINICONDA, tmp_path / "with space", home, "-b")
    assert spaces.returncode == 1 and "spaces" in spaces.stderr

    first = install(installers, MINICONDA, prefix, home, "-b")
    assert first.returncode == 0, first.stderr
    assert "installation finished." in first.stdout
    again = install(installers, MINICONDA, prefix, home, "-b")
    assert again.returncode == 1
    assert f"ERROR: File or directory already exists: '{prefix}'" in again.stderr
    assert "use the -u option" in again.stderr
    assert install(installers, MINICONDA, prefix, home, "-b", "-u").returncode == 0
    assert install(installers, MINICONDA, prefix, home, "-b", "-f").returncode == 0
    version = run([prefix / "bin" / "conda", "--version"], home)
    assert version.stdout.strip() == "conda 25.5.1"


@pytest.fixture
def miniconda(installers, home, tmp_path) -> Path:
    prefix = tmp_path / "mc"
    assert install(installers, MINICONDA, prefix, home, "-b").returncode == 0
    return prefix


@pytest.fixture
def miniforge(installers, home, tmp_path) -> Path:
    prefix = tmp_path / "mf"
    assert install(installers, MINIFORGE, prefix, home, "-b").returncode == 0
    return prefix


def env_file(tmp_path: Path, deps: list[str], channels: list[str] | None = None) -> Path:
    path = tmp_path / "environment.yml"
    lines = ["name: t"] + (["channels:"] + [f"  - {c}" for c in channels] if channels else [])
    path.write_text("\n".join([*lines, "dependencies:", *[f"  - {d}" for d in deps]]) + "\n")
    return path


def test_default_channels_need_the_terms_of_service(miniconda, home, tmp_path):
    spec = env_file(tmp_path, ["python=3.11"], ["defaults"])
    conda = miniconda / "bin" / "conda"
    refused = run([conda, "env", "create", "--file", spec], home)
    assert refused.returncode == 1 and "CondaToSNonInteractiveError" in refused.stderr
    assert not (miniconda / "envs" / "t").exists()

    no_channel = run([conda, "tos", "accept", "--override-channels"], home)
    assert no_channel.returncode == 1 and "--channel" in no_channel.stderr
    for url in ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"):
        accepted = run([conda, "tos", "accept", "--override-channels", "--channel", url], home)
        assert accepted.stdout.strip() == f"accepted Terms of Service for {url}"
    listing = json.loads(run([conda, "tos", "--json", "--override-channels", "--channel=" + url], home).stdout)
    assert listing[url]["tos_accepted"] is True

    created = run([conda, "env", "create", "--file", spec], home)
    assert created.returncode == 0, created.stderr
    python = miniconda / "envs" / "t" / "bin" / "python"
    out = run([python, "-c", "import sys, ssl; print(sys.prefix, sys.version_info[:2])"], home)
    assert out.stdout.split()[0] == str(miniconda / "envs" / "t") and "(3, 11)" in out.stdout
    exists = run([conda, "env", "create", "--file", spec], home)
    assert exists.returncode == 1 and "CondaValueError: prefix already exists" in exists.stderr


def test_refuses_what_it_cannot_provide(miniforge, home, tmp_path):
    conda = miniforge / "bin" / "conda"
    for deps in (["python=3.9", "pip"], ["python=3.11", "numpy=1.23.5"], ["python>=3.12"]):
        out = run([conda, "env", "create", "--file", env_file(tmp_path, deps, ["conda-forge"])], home)
        assert out.returncode == 1, deps
        assert "PackagesNotFoundError" in out.stderr and deps[-1] in out.stderr
        assert not (miniforge / "envs" / "t").exists()


def test_refuses_unknown_options_and_commands(miniforge, home, tmp_path):
    conda = miniforge / "bin" / "conda"
    spec = env_file(tmp_path, ["python=3.11"])
    assert run([conda, "env", "create", "--file", spec, "--force"], home).returncode == 2
    assert run([conda, "env", "update", "--file", spec, "--yes"], home).returncode == 2
    assert run([conda, "install", "numpy"], home).returncode == 2
    missing = run([conda, "env", "create", "--file", tmp_path / "nope.yml"], home)
    assert missing.returncode == 1 and "EnvironmentFileNotFound" in missing.stderr
    # Miniforge ships no Terms of Service plugin.
    tos = run([conda, "tos", "--json"], home)
    assert tos.returncode == 1 and "CommandNotFoundError" in tos.stderr
    assert (miniforge / ".condarc").read_text() == "channels:\n  - conda-forge\n"


def test_conda_init_bash_is_idempotent(miniforge, home):
    conda = miniforge / "bin" / "conda"
    first = run([conda, "init", "bash"], home)
    assert f"modified      {home}/.bashrc" in first.stdout
    second = run([conda, "init", "bash"], home)
    assert second.stdout.strip().endswith("No action taken.")
    assert (home / ".bashrc").read_text().count("# >>> conda initialize >>>") == 1
    assert run([conda, "init", "zsh"], home).returncode == 1
    (home / ".condarc").write_text("auto_activate_base: false\n")
    shell = run(
        [
            "bash",
            "-c",
            f'. {home}/.bashrc; echo "${{CONDA_DEFAULT_ENV:-none}}"; conda activate base; '
            'echo "$CONDA_DEFAULT_ENV"; command -v python',
        ],
        home,
    )
    assert shell.stdout.split() == ["none", "base", f"{miniforge}/bin/python"]


def test_environment_python_is_relocated(miniforge, home, tmp_path):
    """The interpreter runs from wherever the prefix is: it finds its libpython through $ORIGIN."""
    moved = tmp_path / "elsewhere"
    subprocess.run(["cp", "-a", str(miniforge), str(moved)], check=True)
    out = run([moved / "bin" / "python", "-c", "import sys; print(sys.prefix)"], home)
    assert out.stdout.strip() == str(moved)
