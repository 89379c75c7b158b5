"""The miniconda role's real effects (converged by configure.yml in this scenario): an installation owned by the
user, conda in the user's bash, the D2L environment with d2l's pinned stack on Python 3.11, its Jupyter kernel
running a notebook, the notebooks."""

import json

import pytest

PREFIX = "/home/ubuntu/miniconda3"
ENV = f"{PREFIX}/envs/d2l"


def as_ubuntu(host, command: str):
    """Run in the user's interactive bash, as after an SSH login."""
    return host.run(f"runuser -u ubuntu -- bash -ic {json.dumps(command)} 2>/dev/null")


def distribution(host) -> str:
    return "miniconda" if host.system_info.release.startswith("12") else "miniforge"


def test_installation_owned_by_the_user(host):
    conda = host.file(f"{PREFIX}/bin/conda")
    assert conda.is_file and conda.user == "ubuntu"
    assert host.file(PREFIX).user == "ubuntu"
    version = host.run(f"runuser -u ubuntu -- {PREFIX}/bin/conda --version")
    assert version.rc == 0 and version.stdout.startswith("conda 25.")
    record = host.file(f"{PREFIX}/.gpubox/installer").content_string
    assert record.startswith("Miniconda3-" if distribution(host) == "miniconda" else "Miniforge3-")
    # The installer does not stay on the box.
    assert host.run("ls /var/tmp/gpubox").stdout.strip() == ""


def test_conda_in_the_users_bash_without_base_active(host):
    rc = host.file("/home/ubuntu/.condarc").content_string
    assert "auto_activate_base: false" in rc
    assert "ssl_verify: /etc/ssl/certs/ca-certificates.crt" in rc
    assert "# >>> conda initialize >>>" in host.file("/home/ubuntu/.bashrc").content_string
    shell = as_ubuntu(host, 'type -t conda; echo "env=${CONDA_DEFAULT_ENV:-none}"')
    assert shell.stdout.split() == ["function", "env=none"]


def test_d2l_environment(host):
    out = as_ubuntu(
        host,
        "conda activate d2l && python -c 'import sys, d2l, numpy, pandas, scipy, matplotlib; "
        "print(sys.prefix, sys.version.split()[0], numpy.__version__, pandas.__version__, scipy.__version__)'",
    )
    assert out.rc == 0, out.stderr
    prefix, python, numpy, pandas, scipy = out.stdout.split()
    assert prefix == ENV
    assert python.startswith("3.11.")
    assert (numpy, pandas, scipy) == ("1.23.5", "2.0.3", "1.10.1")  # d2l 1.0.3's pins
    assert host.file(f"{ENV}/conda-meta/history").is_file
    spec = host.file(f"{PREFIX}/.gpubox/d2l.yml").content_string
    assert "python=3.11" in spec and "d2l==1.0.3" in spec
    # The probe decides from the environment itself, not from a record of the last run.
    assert not host.file(f"{PREFIX}/.gpubox/d2l.applied.yml").exists


def test_channels_and_terms_of_service(host):
    spec = host.file(f"{PREFIX}/.gpubox/d2l.yml").content_string
    tos = host.run(
        f"runuser -u ubuntu -- {PREFIX}/bin/conda tos --json --override-channels "
        "--channel https://repo.anaconda.com/pkgs/main --channel https://repo.anaconda.com/pkgs/r"
    )
    if distribution(host) == "miniconda":
        assert "  - defaults" in spec
        assert all(entry["tos_accepted"] for entry in json.loads(tos.stdout).values())
    else:
        assert "  - conda-forge" in spec
        assert tos.rc == 1  # Miniforge has no ToS plugin: the role must not call it


def test_kernel_registered_and_runs_a_notebook(host, tmp_path):
    kernel = json.loads(host.file("/home/ubuntu/.local/share/jupyter/kernels/d2l/kernel.json").content_string)
    assert kernel["argv"][0] == f"{ENV}/bin/python"
    assert kernel["display_name"] == "Python (d2l)"
    run = host.run(
        f"runuser -u ubuntu -- {ENV}/bin/jupyter nbconvert --to notebook --execute "
        "--ExecutePreprocessor.kernel_name=d2l --output-dir /tmp/executed "
        "/home/ubuntu/d2l-en/pytorch/chapter_preliminaries/ndarray.ipynb"
    )
    assert run.rc == 0, run.stderr
    executed = json.loads(host.file("/tmp/executed/ndarray.ipynb").content_string)
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    text = outputs[0]["data"]["text/plain"]  # a string, or a list of lines
    assert "".join(text) == "array([12., 15., 18., 21.], dtype=float32)"


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow", "jax", "mxnet"])
def test_notebooks_unpacked(host, framework):
    nb = host.file(f"/home/ubuntu/d2l-en/{framework}/chapter_preliminaries/pandas.ipynb")
    assert nb.is_file and nb.user == "ubuntu"
    assert json.loads(nb.content_string)["nbformat"] == 4


def test_notebooks_archive_kept_as_their_manifest(host):
    """The archive stays next to the installation: the role restores missing notebooks from it."""
    archive = host.file(f"{PREFIX}/.gpubox/downloads/d2l-en-1.0.3.zip")
    assert archive.is_file and archive.user == "ubuntu"
    listed = host.run(f"unzip -Z1 {PREFIX}/.gpubox/downloads/d2l-en-1.0.3.zip").stdout.split()
    assert "pytorch/chapter_preliminaries/ndarray.ipynb" in listed
    assert all(host.file(f"/home/ubuntu/d2l-en/{name}").is_file for name in listed if not name.endswith("/"))
