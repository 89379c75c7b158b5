"""The roles' probes (roles/*/files/*_probe.py) report the drift the roles repair, run here on real files: a real
Python environment (a venv standing for the conda environment), a real zip of notebooks, real apt source files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, load_module

miniconda = load_module(ROOT / "roles" / "miniconda" / "files" / "miniconda_probe.py", "miniconda_probe")
cuda = load_module(ROOT / "roles" / "cuda" / "files" / "cuda_probe.py", "cuda_probe")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Path:
    """A Python environment with pip and a package `fakepkg` 1.0 that requires `pip` and `missingdep`, a module
    `brokenmod` (of package `brokenpkg` 2.0) that fails to import, and an egg-info package `eggpkg` 1.0 that
    requires `missingegg`; marked as a conda environment."""
    prefix = tmp_path_factory.mktemp("env") / "d2l"
    subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True)
    site = next(prefix.glob("lib/python*/site-packages"))
    for name, version, requires, module in (
        ("fakepkg", "1.0", ["pip", "missingdep>=1", "testonly; extra == 'test'"], "fakepkg"),
        ("brokenpkg", "2.0", [], "brokenmod"),
    ):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        meta += [f"Requires-Dist: {r}" for r in requires]
        # the description, after the headers, is no requirement even where it reads like one
        meta += ["", "A package for tests.", "Requires-Dist: notreal"]
        (info / "METADATA").write_text("\n".join(meta) + "\n")
        (info / "top_level.txt").write_text(module + "\n")
        (info / "RECORD").write_text(f"{module}/__init__.py,,\n")
        (site / module).mkdir()
    # an egg-info distribution (as some conda packages install) keeps its requirements in requires.txt
    egg = site / "eggpkg-1.0-py3.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: eggpkg\nVersion: 1.0\n")
    (egg / "requires.txt").write_text("missingegg\n")
    (site / "fakepkg" / "__init__.py").write_text("")
    (site / "brokenmod" / "__init__.py").write_text("raise ImportError('damaged')\n")
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "history").write_text("")
    return prefix


def want(prefix: Path, **over) -> dict:
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return {
        "env_prefix": str(prefix),
        "python": minor,
        "requirements": ["pip"],
        "imports": ["json"],
        "kernel_json": str(prefix / "kernel.json"),
        "kernel_display_name": "Python (d2l)",
        "notebooks_zip": "",
        "notebooks_dir": "",
        "notebooks_sha256": "",
    } | over


def test_a_met_environment_reports_nothing(env):
    state = miniconda.probe(want(env))
    assert state["env"] == "present" and state["python_ok"]
    assert (state["unmet"], state["import_errors"], state["reinstall"]) == ([], [], [])
    assert state["kernel"] == "missing"


def test_missing_and_changed_requirements_down_the_tree(env):
    state = miniconda.probe(want(env, requirements=["fakepkg==1.0", "pip==0.1", "absent"]))
    unmet = " | ".join(state["unmet"])
    assert "missingdep>=1 (required by fakepkg 1.0): not installed" in unmet
    assert "pip==0.1 (required by the environment file): " in unmet and " installed" in unmet
    assert "absent (required by the environment file): not installed" in unmet
    assert "testonly" not in unmet  # an extra nobody asked for
    assert len(state["unmet"]) == 3


def test_requirements_of_an_egg_info_package(env):
    state = miniconda.probe(want(env, requirements=["eggpkg==1.0"]))
    assert state["unmet"] == ["missingegg (required by eggpkg 1.0): not installed"]


def test_a_module_that_does_not_import_names_its_package(env):
    state = miniconda.probe(want(env, requirements=["brokenpkg==2.0"], imports=["json", "brokenmod"]))
    assert state["import_errors"] == ["brokenmod: ImportError: damaged"]
    assert state["reinstall"] == ["brokenpkg==2.0"]
    # not in the file: reinstalled at the version installed
    assert miniconda.probe(want(env, imports=["brokenmod"]))["reinstall"] == ["brokenpkg==2.0"]


def test_another_python_or_none(env, tmp_path):
    assert not miniconda.probe(want(env, python="2.7"))["python_ok"]
    assert miniconda.probe(want(tmp_path / "nowhere"))["env"] == "missing"
    fake = tmp_path / "fake"
    (fake / "conda-meta").mkdir(parents=True)
    (fake / "conda-meta" / "history").write_text("")
    assert miniconda.probe(want(fake))["env"] == "broken"  # no bin/python


def test_kernel_spec(env, tmp_path):
    kernel = tmp_path / "kernel.json"
    spec = {"argv": [f"{env}/bin/python", "-m", "ipykernel_launcher"], "display_name": "Python (d2l)"}
    kernel.write_text(json.dumps(spec))
    assert miniconda.kernel_state(want(env, kernel_json=str(kernel))) == "ok"
    kernel.write_text(json.dumps(spec | {"argv": ["/usr/bin/python3"]}))
    assert miniconda.kernel_state(want(env, kernel_json=str(kernel))) == "wrong"
    kernel.write_text("{not json")
    assert miniconda.kernel_state(want(env, kernel_json=str(kernel))) == "wrong"


def test_notebooks_missing_and_edited(tmp_path):
    archive = tmp_path / "d2l-en.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("pytorch/a.ipynb", "pytorch/b.ipynb", "jax/a.ipynb"):
            zf.writestr(name, f"notebook {name}\n")
        zf.writestr("jax/", "")
    root = tmp_path / "d2l-en"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(root)
    settings = {"notebooks_zip": str(archive), "notebooks_dir": str(root), "notebooks_sha256": ""}
    assert miniconda.notebooks_state(settings) == {"zip_ok": True, "missing": [], "edited": 0, "shipped": 3}
    (root / "pytorch" / "b.ipynb").unlink()
    (root / "jax" / "a.ipynb").write_text("notebook jax/a.ipynb\nmy own cell\n")
    state = miniconda.notebooks_state(settings)
    assert state["missing"] == ["pytorch/b.ipynb"] and state["edited"] == 1
    # Same size, other bytes: still an edit.
    (root / "pytorch" / "a.ipynb").write_text("notebook pytorch/A.ipynb\n")
    assert miniconda.notebooks_state(settings)["edited"] == 2
    assert not miniconda.notebooks_state(settings | {"notebooks_sha256": "0" * 64})["zip_ok"]
    archive.write_bytes(b"not a zip")
    assert not miniconda.notebooks_state(settings)["zip_ok"]


def repo_want(tmp_path: Path) -> dict:
    return {
        "repo_url": "http://mirror.invalid/nvidia/debian12/x86_64/",
        "keyring": str(tmp_path / "nvidia-cuda.asc"),
        "key_fingerprint": "0" * 40,
        "pin_file": str(tmp_path / "cuda-repository-pin-600"),
        "pin_priority": 600,
        "sources_dir": str(tmp_path / "sources.list.d"),
    }


def test_cuda_repository_source_pin_and_other_sources(tmp_path):
    settings = repo_want(tmp_path)
    sources = Path(settings["sources_dir"])
    sources.mkdir()
    assert cuda.repo_state(settings) | {"others": None} == {
        "source": "missing",
        "keyring": "missing",
        "pin": "missing",
        "others": None,
        "ok": False,
    }
    (sources / "cuda.sources").write_text(
        "X-Repolib-Name: cuda\nTypes: deb\nURIs: http://mirror.invalid/nvidia/debian12/x86_64/\nSuites: /\n"
        f"Signed-By: {settings['keyring']}\n"
    )
    Path(settings["pin_file"]).write_text("# managed\nPackage: *\nPin: release l=NVIDIA CUDA\nPin-Priority: 600\n")
    state = cuda.repo_state(settings)
    assert (state["source"], state["pin"], state["others"]) == ("ok", "ok", [])
    (sources / "cuda.sources").write_text((sources / "cuda.sources").read_text() + "Enabled: no\n")
    assert cuda.repo_state(settings)["source"] == "wrong"
    Path(settings["pin_file"]).write_text("Package: *\nPin: release l=NVIDIA CUDA\nPin-Priority: 100\n")
    assert cuda.repo_state(settings)["pin"] == "wrong"
    keyring_list = sources / "cuda-debian12-x86_64.list"
    keyring_list.write_text(
        "deb [signed-by=/usr/share/keyrings/x.gpg] http://mirror.invalid/nvidia/debian12/x86_64/ /\n"
    )
    (sources / "other.list").write_text("deb http://mirror.invalid/nvidia/debian12/x86_64-extra/ /\n")
    assert cuda.repo_state(settings)["others"] == [str(keyring_list)]


def test_cuda_keyring_fingerprint(tmp_path):
    keys = sorted((ROOT / ".cache" / "mirror" / "nvidia").glob("debian12/x86_64/*.pub"))
    fingerprint = ROOT / ".cache" / "mirror" / "nvidia" / "signing-key.fingerprint"
    if not keys or not fingerprint.is_file():
        pytest.skip("the stand-in NVIDIA repository is not built (tests/standins/build.sh .cache/mirror)")
    settings = repo_want(tmp_path) | {"keyring": str(keys[0])}
    Path(settings["sources_dir"]).mkdir()
    assert cuda.repo_state(settings)["keyring"] == "wrong"
    settings["key_fingerprint"] = fingerprint.read_text().strip()
    assert cuda.repo_state(settings)["keyring"] == "ok"


def test_conda_init_block_in_bashrc(tmp_path):
    bashrc = tmp_path / ".bashrc"
    conda = "/home/ubuntu/miniconda3/bin/conda"
    settings = {"bashrc": str(bashrc), "conda": conda}
    assert not miniconda.conda_init_state(settings)  # no ~/.bashrc
    bashrc.write_text("alias ll='ls -l'\n")
    assert not miniconda.conda_init_state(settings)
    block = (
        "# >>> conda initialize >>>\n# !! Contents within this block are managed by 'conda init' !!\n"
        f"__conda_setup=\"$('{conda}' 'shell.bash' 'hook' 2> /dev/null)\"\nunset __conda_setup\n"
        "# <<< conda initialize <<<\n"
    )
    bashrc.write_text("alias ll='ls -l'\n" + block)
    assert miniconda.conda_init_state(settings)
    assert not miniconda.conda_init_state(settings | {"conda": "/opt/miniforge3/bin/conda"})  # another prefix
    bashrc.write_text(block.replace("# <<< conda initialize <<<\n", ""))  # a block cut short
    assert not miniconda.conda_init_state(settings)
    assert miniconda.conda_init_state({"bashrc": "", "conda": conda})  # miniconda_conda_init: false


def test_cuda_files_written_whole(tmp_path):
    profile = tmp_path / "cuda.sh"
    missing = tmp_path / "gpubox-cuda.conf"
    profile.write_text("export PATH=/usr/local/cuda/bin:$PATH\n")
    profile.chmod(0o644)
    content = {str(profile): "export PATH=/usr/local/cuda/bin:$PATH\n", str(missing): "/usr/local/cuda/lib64\n"}
    as_root = os.getuid() == 0
    assert cuda.files_ok(content) == {str(profile): as_root, str(missing): False}
    if as_root:
        profile.chmod(0o600)
        assert not cuda.files_ok(content)[str(profile)]
        profile.chmod(0o644)
        profile.write_text("edited\n")
        assert not cuda.files_ok(content)[str(profile)]


def test_cuda_probe_reads_the_dmi_product_name(tmp_path, monkeypatch):
    """The instance type comes from the DMI product name (the play gathers only the minimal facts, which lack it)."""
    real_read = cuda.read
    monkeypatch.setattr(
        cuda, "read", lambda path: "g5.xlarge\n" if path == "/sys/class/dmi/id/product_name" else real_read(path)
    )
    want = {
        "cuda_home": str(tmp_path / "cuda"),
        "packages": [],
        "repo_url": "http://mirror.invalid/cuda/",
        "keyring": str(tmp_path / "k.asc"),
        "key_fingerprint": "0" * 40,
        "pin_file": str(tmp_path / "pin"),
        "pin_priority": 600,
        "sources_dir": str(tmp_path),
        "dropin": str(tmp_path / "gpubox.conf"),
        "dropin_content": "",
    }
    assert cuda.probe(want)["product_name"] == "g5.xlarge"
    monkeypatch.setattr(cuda, "read", lambda path: None)  # no DMI (a container, another hypervisor)
    assert cuda.probe(want)["product_name"] == ""


def test_cuda_probe_lists_the_daemons_drop_in_folders(tmp_path):
    """What the persistence daemon's drop-in folders hold, in path_state's shape (foreign_paths reads it); a
    missing folder holds nothing."""
    folder = tmp_path / "nvidia-persistenced.service.d"
    folder.mkdir()
    (folder / "gpubox.conf").write_text("[Service]\n")
    (folder / "override.conf").write_text("[Service]\n")
    want = {"dropin": str(folder / "gpubox.conf"), "dropin_content": "[Service]\n"}
    state = cuda.persistenced_state({**want, "dropin_dirs": [str(folder), str(tmp_path / "missing.d")]})
    assert state["dropin_ok"]
    assert state["dropins"] == {
        "files": [{"path": str(folder / "gpubox.conf")}, {"path": str(folder / "override.conf")}]
    }
    assert cuda.persistenced_state(want)["dropins"] == {"files": []}
