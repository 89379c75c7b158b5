"""The miniconda role refuses bad input with a message naming the value, and renders the environment file
each framework needs (run locally: nothing here touches a host)."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT, refusal, run_local_play


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"miniconda_distribution": "anaconda"}, "anaconda"),
        ({"miniconda_framework": "caffe"}, "caffe"),
        ({"miniconda_download_retries": "many"}, "miniconda_download_retries"),
        ({"miniconda_accept_tos": "perhaps"}, "miniconda_accept_tos"),
        ({"miniconda_installer_sha256": "1234abcd"}, "'1234abcd'"),
        ({"miniconda_env_python": "python3"}, "'python3'"),
        ({"miniconda_env_name": "base"}, "'base'"),
        ({"miniconda_prefix": "relative/path"}, "'relative/path'"),
    ],
)
def test_bad_input_refused_with_its_value(tmp_path, extra, needle):
    out = refusal(tmp_path, "miniconda", extra)
    assert needle in out, out[-3000:]


def test_default_channels_without_terms_refused(tmp_path):
    out = refusal(tmp_path, "miniconda", {"miniconda_accept_tos": False})
    assert "miniconda_accept_tos: true" in out and "miniforge" in out


def render(tmp_path, extra: dict) -> dict:
    """The environment file as the role renders it, with the role's defaults and vars."""
    dest = tmp_path / "environment.yml"
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(extra))
    play = [
        {
            "name": "Render",
            "hosts": "localhost",
            "gather_facts": False,
            # Later files win: the role's defaults, the test's values, the role's derived vars.
            "vars_files": [
                str(ROOT / "roles/miniconda/defaults/main.yml"),
                str(tmp_path / "extra.yml"),
                str(ROOT / "roles/miniconda/vars/main.yml"),
            ],
            "tasks": [
                {
                    "name": "Render the environment file",
                    "ansible.builtin.template": {
                        "src": str(ROOT / "roles/miniconda/templates/environment.yml.j2"),
                        "dest": str(dest),
                        "mode": "0644",
                    },
                }
            ],
        }
    ]
    run_local_play(tmp_path / "render.yml", play, check=True)
    return yaml.safe_load(dest.read_text())


@pytest.mark.parametrize(
    ("framework", "expected"),
    [
        ("pytorch", ["torch==2.5.1", "torchvision==0.20.1"]),
        ("tensorflow", ["tensorflow[and-cuda]==2.15.1", "tensorflow-probability==0.23.0"]),
        ("jax", ["jax[cuda12]==0.4.30", "flax==0.8.5", "orbax-checkpoint==0.6.4"]),
        ("mxnet", ["mxnet==1.9.1"]),
        ("none", []),
    ],
)
def test_environment_file_per_framework(tmp_path, framework, expected):
    spec = render(tmp_path, {"miniconda_framework": framework})
    assert spec["name"] == "d2l"
    assert spec["channels"] == ["defaults"]
    assert spec["dependencies"][:2] == ["python=3.11", "pip"]
    assert spec["dependencies"][2]["pip"] == ["d2l==1.0.3", "ipykernel", *expected]


def test_miniforge_uses_conda_forge(tmp_path):
    spec = render(tmp_path, {"miniconda_distribution": "miniforge", "miniconda_env_pip_extra": ["seaborn"]})
    assert spec["channels"] == ["conda-forge"]
    assert spec["dependencies"][2]["pip"][-1] == "seaborn"


def test_pinned_installers_are_real_release_names():
    defaults = yaml.safe_load((ROOT / "roles/miniconda/defaults/main.yml").read_text())
    releases = defaults["miniconda_releases"]
    assert releases["miniconda"]["url"] == (
        f"https://repo.anaconda.com/miniconda/Miniconda3-{releases['miniconda']['version']}-Linux-x86_64.sh"
    )
    version = releases["miniforge"]["version"]
    assert releases["miniforge"]["url"] == (
        f"https://github.com/conda-forge/miniforge/releases/download/{version}/Miniforge3-{version}-Linux-x86_64.sh"
    )
    for release in releases.values():
        assert len(release["sha256"]) == 64 and int(release["sha256"], 16) >= 0
