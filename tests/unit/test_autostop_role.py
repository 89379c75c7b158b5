"""The autostop role refuses bad input with a message naming the value and the fix, renders settings the agent
itself accepts (the `check-config` of the zipapp the role installs), and ships a default interrupt hook that signals
only the processes that asked, as their owner, and a default on-stop hook that checkpoints the open notebooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.conftest import ROOT, refusal, run_local_play

ROLE = ROOT / "roles" / "autostop"


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> Path:
    """The agent as the role installs it: the zipapp of files/gpubox_autostop/ (the lookup gpubox.gpubox.zipapp)."""
    from ansible_collections.gpubox.gpubox.plugins.lookup import zipapp

    program = tmp_path_factory.mktemp("agent") / "gpubox-autostop"
    program.write_bytes(zipapp.build(str(ROLE / "files" / "gpubox_autostop"), "/usr/bin/python3 -I"))
    return program


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ({"autostop_idle_minutes": -5}, ["autostop_idle_minutes (-5)", "gpubox_autostop_minutes"]),
        ({"autostop_idle_minutes": "an hour"}, ["autostop_idle_minutes", "float"]),
        # as a hostile Autostop tag would give them
        ({"autostop_idle_minutes": "nan"}, ["autostop_idle_minutes (nan)"]),
        ({"autostop_max_hours": "inf"}, ["autostop_max_hours (inf)"]),
        ({"autostop_max_hours": 10000}, ["autostop_max_hours (10000)", "gpubox_max_hours"]),
        ({"autostop_grace_minutes": 2000}, ["autostop_grace_minutes (2000)"]),
        ({"autostop_poll_seconds": 0}, ["autostop_poll_seconds (0)"]),
        ({"autostop_signals": []}, ["autostop_signals ([])", "autostop_idle_minutes: 0"]),
        ({"autostop_signals": ["jupyter", "mouse"]}, ["autostop_signals", "mouse"]),
        ({"autostop_cpu_threshold": 150}, ["autostop_cpu_threshold (150)"]),
        ({"autostop_imds_url": "169.254.169.254"}, ["'169.254.169.254'", "http://169.254.169.254"]),
        ({"autostop_spot_poll_seconds": 0}, ["autostop_spot_poll_seconds (0)"]),
        ({"autostop_interrupt_pid_dir": "run/x"}, ["'run/x'", "absolute path"]),
        ({"autostop_jupyter_url": "localhost:8888"}, ["'localhost:8888'", "or empty"]),
        ({"autostop_user": "nosuchuser"}, ["autostop_user nosuchuser has no home", "autostop_jupyter_token_file"]),
        ({"autostop_stop_at": "8pm"}, ['autostop_stop_at "8pm"', '"20:00 Europe/Berlin"', "gpubox_stop_at"]),
        ({"autostop_stop_at": "20:00 Mars/Olympus"}, ['autostop_stop_at "20:00 Mars/Olympus"', "time zone"]),
        ({"autostop_on_stop_timeout": 0}, ["autostop_on_stop_timeout (0)"]),
    ],
)
def test_bad_input_refused_with_its_value(tmp_path, extra, needles):
    out = refusal(tmp_path, "autostop", extra)
    for needle in needles:
        assert needle in out, out[-3000:]


def render(tmp_path, template: str, extra: dict) -> str:
    """A template of the role with its defaults, the test's values and its fixed names (as on a box)."""
    dest = tmp_path / "rendered"
    (tmp_path / "extra.yml").write_text(yaml.safe_dump({"autostop_home": "/home/ubuntu", **extra}))
    play = [
        {
            "name": "Render",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults/main.yml"), str(tmp_path / "extra.yml"), str(ROLE / "vars/main.yml")],
            "tasks": [
                {
                    "name": "Render",
                    "ansible.builtin.template": {"src": str(ROLE / "templates" / template), "dest": str(dest)},
                }
            ],
        }
    ]
    run_local_play(tmp_path / "render.yml", play, check=True)
    return dest.read_text()


def effective(config: str, tmp_path, agent: Path) -> dict[str, str]:
    """What the agent makes of a settings file: `check-config`, one `key = value` per setting."""
    path = tmp_path / "autostop.conf"
    path.write_text(config)
    out = subprocess.run(
        [sys.executable, str(agent), "check-config", "--config", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return dict(line.split(" = ", 1) for line in out.stdout.splitlines())


def test_settings_from_the_project_defaults(tmp_path, agent):
    found = effective(render(tmp_path, "autostop.conf.j2", {}), tmp_path, agent)
    assert found["idle_minutes"] == "60" and found["max_hours"] == "0" and found["grace_minutes"] == "5"
    assert found["jupyter_url"] == "http://127.0.0.1:8888"
    assert found["jupyter_token_file"] == "/home/ubuntu/.jupyter/gpubox-token"
    assert found["signals"] == "jupyter,gpu,ssh,cpu,hold,job"
    assert found["spot"] == "false"  # no instance_lifecycle: not a spot box
    assert found["metadata_url"] == "http://169.254.169.254"
    assert found["jobs_dir"] == "/run/gpubox-jobs"
    assert (found["hold_dir"], found["interrupt_dir"]) == ("/var/lib/gpubox/hold", "/etc/gpubox/on-interrupt.d")


def test_settings_of_a_spot_box_with_autostop_off(tmp_path, agent):
    extra = {
        "instance_lifecycle": "spot",
        "gpubox_autostop_minutes": False,
        "autostop_grace_minutes": 0.1,
        "autostop_jupyter_url": "",
        "autostop_signals": ["ssh", "hold"],
    }
    found = effective(render(tmp_path, "autostop.conf.j2", extra), tmp_path, agent)
    assert found["spot"] == "true" and found["idle_minutes"] == "0" and found["grace_minutes"] == "0.1"
    assert found["jupyter_url"] == "" and found["jupyter_token_file"] == ""
    assert found["signals"] == "ssh,hold"


def test_stop_at_and_the_on_stop_hooks_reach_the_agent(tmp_path, agent):
    found = effective(render(tmp_path, "autostop.conf.j2", {}), tmp_path, agent)
    assert (found["stop_at"], found["on_stop_dir"], found["on_stop_timeout"]) == ("", "/etc/gpubox/on-stop.d", "30")
    extra = {"gpubox_stop_at": "20:00 Europe/Berlin", "autostop_on_stop_timeout": 90}
    found = effective(render(tmp_path, "autostop.conf.j2", extra), tmp_path, agent)
    assert (found["stop_at"], found["on_stop_timeout"]) == ("20:00 Europe/Berlin", "90")


class FakeJupyter(BaseHTTPRequestHandler):
    """Jupyter's sessions and checkpoints API, as much as the on-stop hook uses; it records what it was asked."""

    asked: ClassVar[list[tuple[str, str, str]]] = []

    def _answer(self, code: int, body: object) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def do_GET(self):
        self.asked.append(("GET", self.path, self.headers.get("Authorization", "")))
        sessions = [
            {"path": "work/train me.ipynb", "type": "notebook"},
            {"path": "console-1", "type": "console"},
            {"path": "d2l-en/ch1.ipynb", "type": "notebook"},
        ]
        self._answer(200, sessions)

    def do_POST(self):
        self.asked.append(("POST", self.path, self.headers.get("Authorization", "")))
        self._answer(201, {"id": "checkpoint", "last_modified": "2026-01-01T00:00:00Z"})

    def log_message(self, *args):
        pass


def test_default_on_stop_hook_checkpoints_the_open_notebooks_then_syncs(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJupyter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    extra = {
        "autostop_jupyter_url": f"http://127.0.0.1:{server.server_port}",
        "autostop_jupyter_token_file": str(token),
    }
    hook = tmp_path / "50-gpubox-jupyter"
    hook.write_text(render(tmp_path, "on-stop-hook.py.j2", extra))
    try:
        out = subprocess.run([sys.executable, "-I", str(hook)], capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["checkpoint: d2l-en/ch1.ipynb", "checkpoint: work/train me.ipynb", "synced"]
    assert FakeJupyter.asked == [
        ("GET", "/api/sessions?no_track_activity=1", "token s3cret"),
        ("POST", "/api/contents/d2l-en/ch1.ipynb/checkpoints", "token s3cret"),
        ("POST", "/api/contents/work/train%20me.ipynb/checkpoints", "token s3cret"),
    ]
    # Jupyter down: it says so, syncs all the same, and does not fail the power-off
    out = subprocess.run([sys.executable, "-I", str(hook)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("jupyter: not reached") and "synced" in out.stdout
    # a link where the token file was is not followed (the hook runs as root)
    token.unlink()
    token.symlink_to(tmp_path / "50-gpubox-jupyter")
    out = subprocess.run([sys.executable, "-I", str(hook)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "jupyter: not reached (OSError" in out.stdout


def test_unit_starts_the_agent_at_boot(tmp_path):
    lines = render(tmp_path, "gpubox-autostop.service.j2", {}).splitlines()
    assert "ExecStart=/usr/local/sbin/gpubox-autostop run --config /etc/gpubox/autostop.conf" in lines
    assert "Restart=on-failure" in lines and "WantedBy=multi-user.target" in lines


LISTENER = """
import os, signal, sys, time
def noted(signum, frame):
    open(sys.argv[1], "w").write("SIGUSR1")
    sys.exit(0)
signal.signal(signal.SIGUSR1, noted)
open(sys.argv[2], "w").close()
time.sleep(30)
"""


def start_listener(tmp_path, name: str) -> tuple[subprocess.Popen, object]:
    """A process that notes a SIGUSR1 in a file and exits; returned once its handler is set."""
    got, ready = tmp_path / f"{name}.got", tmp_path / f"{name}.ready"
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(got), str(ready)])
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the listener did not start"
        time.sleep(0.05)
    return proc, got


@pytest.mark.skipif(os.geteuid() != 0, reason="the hook signals as the registration's owner: runuser needs root")
def test_default_hook_signals_registered_processes_as_their_owner(tmp_path):
    pids = tmp_path / "interrupt"
    pids.mkdir()
    hook = tmp_path / "hook"
    hook.write_text(render(tmp_path, "interrupt-hook.sh.j2", {"autostop_interrupt_pid_dir": str(pids)}))
    hook.chmod(0o755)
    mine, mine_got = start_listener(tmp_path, "mine")
    other, other_got = start_listener(tmp_path, "other")
    try:
        (pids / str(mine.pid)).touch()
        # Someone else's file naming a process they do not own (root's): the signal is theirs to send, so it fails.
        (pids / str(other.pid)).touch()
        os.chown(pids / str(other.pid), 65534, 65534)
        gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
        (pids / gone).touch()  # a process that has ended
        (pids / "notes.txt").touch()  # not a PID: left alone
        env = {"PATH": os.environ["PATH"], "GPUBOX_NOTICE_KIND": "rebalance"}
        out = subprocess.run([str(hook)], capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 0 and out.stdout.strip() == "synced", out
        assert mine.poll() is None and not mine_got.exists(), "a rebalance recommendation signalled the process"

        env["GPUBOX_NOTICE_KIND"] = "instance-action"
        out = subprocess.run([str(hook)], capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 0, out
        assert f"SIGUSR1 to {mine.pid} (root)" in out.stdout
        assert mine.wait(timeout=10) == 0 and mine_got.read_text() == "SIGUSR1"
        assert f"could not signal {other.pid} as nobody" in out.stdout
        assert other.poll() is None and not other_got.exists()
        assert not (pids / gone).exists() and (pids / "notes.txt").exists()
    finally:
        for proc in (mine, other):
            proc.kill()
            proc.wait()
