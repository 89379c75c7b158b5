"""The jupyter role refuses bad input with a message naming the value, and renders a server configuration
that binds the loopback address and takes its token through jupyter-server 2's IdentityProvider."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import ROOT, refusal, run_local_play


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"jupyter_port": "eighty"}, "jupyter_port"),
        ({"jupyter_port": 70000}, "(70000)"),
        ({"jupyter_ip": "everywhere"}, "'everywhere'"),
        ({"jupyter_token": "short"}, "at least 16 characters"),
        ({"jupyter_cull_idle_timeout": -5}, "(-5)"),
        ({"jupyter_cull_connected": "sometimes"}, "jupyter_cull_connected"),
        ({"jupyter_service_name": "jupyter lab"}, "'jupyter lab'"),
    ],
)
def test_bad_input_refused_with_its_value(tmp_path, extra, needle):
    out = refusal(tmp_path, "jupyter", extra)
    assert needle in out, out[-3000:]


def test_missing_environment_named_with_the_fix(tmp_path):
    out = refusal(tmp_path, "jupyter", {"jupyter_conda_prefix": str(tmp_path / "nowhere")})
    assert f"no conda environment at {tmp_path}/nowhere/envs/d2l" in out
    assert "--tags miniconda" in out


def render(tmp_path, template: str, extra: dict) -> str:
    dest = tmp_path / "rendered"
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(extra))
    play = [
        {
            "name": "Render",
            "hosts": "localhost",
            "gather_facts": False,
            # Later files win: the role's defaults, the test's values, the role's derived vars.
            "vars_files": [
                str(ROOT / "roles/jupyter/defaults/main.yml"),
                str(tmp_path / "extra.yml"),
                str(ROOT / "roles/jupyter/vars/main.yml"),
            ],
            "tasks": [
                {
                    "name": "Render",
                    "ansible.builtin.template": {
                        "src": str(ROOT / "roles/jupyter/templates" / template),
                        "dest": str(dest),
                        "mode": "0600",
                    },
                }
            ],
        }
    ]
    run_local_play(tmp_path / "render.yml", play, check=True)
    return dest.read_text()


class Config(SimpleNamespace):
    """Stands for traitlets' config object `c`: attribute access creates sections."""

    def __getattr__(self, name):
        section = Config()
        setattr(self, name, section)
        return section


def test_server_configuration(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("a-token-of-enough-length-0123456789\n")
    text = render(
        tmp_path,
        "gpubox_server_config.py.j2",
        {
            "jupyter_root_dir": "/home/ubuntu/d2l-en",
            "jupyter_token_file": str(token_file),
            "jupyter_cull_connected": True,
        },
    )
    c = Config()
    exec(compile(text, "gpubox_server_config.py", "exec"), {"c": c})
    assert (c.ServerApp.ip, c.ServerApp.port, c.ServerApp.port_retries) == ("127.0.0.1", 8888, 0)
    assert c.ServerApp.root_dir == "/home/ubuntu/d2l-en"
    assert c.IdentityProvider.token == "a-token-of-enough-length-0123456789"
    assert "token" not in vars(c.ServerApp)  # not the deprecated ServerApp.token
    assert (c.MappingKernelManager.cull_idle_timeout, c.MappingKernelManager.cull_interval) == (3600, 300)
    assert c.MappingKernelManager.cull_connected is True
    assert c.MappingKernelManager.default_kernel_name == "d2l"


def test_systemd_unit(tmp_path):
    # The home as the role finds it on the box (its own lookup does not run in a bare render).
    unit = render(
        tmp_path, "jupyter.service.j2", {"jupyter_root_dir": "/home/ubuntu/d2l-en", "jupyter_home": "/home/ubuntu"}
    )
    lines = unit.splitlines()
    assert "User=ubuntu" in lines and "WorkingDirectory=/home/ubuntu/d2l-en" in lines
    assert (
        "ExecStart=/home/ubuntu/miniconda3/envs/d2l/bin/jupyter-lab "
        "--config=/home/ubuntu/.jupyter/gpubox_server_config.py --no-browser"
    ) in lines
    assert "WantedBy=multi-user.target" in lines
