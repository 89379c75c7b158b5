"""The job helper (roles/job/files/gpubox_job.py) as its unit runs it: `exec` runs the command in the conda
environment with the job's variables and copies its output to the log, `end` tells an end from an interruption and
keeps or drops the job's `pending` file accordingly (which decides a start at boot), `log` prints the last run and
follows a running job until it ends. The conda here is a stand-in for `conda shell.bash hook` (this machine has no
conda); on a box of the EC2 twin the stand-in Miniconda's conda runs (tests/e2e)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, load_module

gj = load_module(ROOT / "roles" / "job" / "files" / "gpubox_job.py")

# `conda shell.bash hook` defines a conda function; `conda activate ENV` then sets the environment's variables.
HOOK = """#!/bin/sh
[ "$1 $2" = "shell.bash hook" ] || { echo "conda stand-in: unexpected $*" >&2; exit 2; }
echo 'conda() { [ "$1" = activate ] && export CONDA_DEFAULT_ENV="$2" PATH="/envs/$2/bin:$PATH"; }'
"""


@pytest.fixture
def job(tmp_path, monkeypatch):
    """A job as run.yml leaves it: its folder with code/, command and pending, its registry entry, its unit's
    environment."""
    conda = tmp_path / "conda"
    conda.write_text(HOOK)
    conda.chmod(0o755)
    directory = tmp_path / "jobs" / "train"
    (directory / "code").mkdir(parents=True)
    (directory / "checkpoints").mkdir()
    (directory / "pending").write_text("new\n")
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "train.json").write_text(json.dumps({"name": "train", "dir": str(directory), "restart": "never"}))
    monkeypatch.setattr(gj, "REGISTRY", registry)
    monkeypatch.setattr(gj, "RUN_DIR", tmp_path / "run")
    monkeypatch.setattr(gj, "NOTICE", tmp_path / "notice")
    monkeypatch.setattr(gj, "SHUTDOWN", tmp_path / "shutting-down")
    for key, value in {
        "GPUBOX_JOB": "train",
        "GPUBOX_JOB_DIR": str(directory),
        "GPUBOX_RESTART": "never",
        "GPUBOX_CONDA": str(conda),
        "GPUBOX_CONDA_ENV": "d2l",
    }.items():
        monkeypatch.setenv(key, value)
    return directory


def command(directory: Path, text: str) -> None:
    (directory / "command").write_text(text + "\n")


def test_exec_runs_the_command_in_the_environment_and_logs_its_output(job, capfd):
    command(job, 'echo "env $CONDA_DEFAULT_ENV resume $GPUBOX_RESUME in $(basename "$PWD")"; echo oops >&2; exit 3')
    assert gj.main(["exec"]) == 3
    log = (job / "log").read_text().splitlines()
    assert log[0].startswith("gpubox: job train started at ")
    assert log[1:] == ["env d2l resume 0 in code", "oops"]  # stderr too, in order
    assert capfd.readouterr().out.splitlines()[1:] == log[1:]  # the journal gets the same
    assert (job / "pending").read_text() == "resume\n"  # a later start of this run would be a resume
    status = json.loads((job / "status").read_text())
    assert status["state"] == "running" and status["outcome"] == "exit 3" and status["exit"] == 3


def test_end_of_the_job_itself_is_final(job, monkeypatch):
    command(job, "exit 0")
    gj.main(["exec"])
    monkeypatch.setenv("EXIT_CODE", "exited")
    monkeypatch.setenv("EXIT_STATUS", "0")
    assert gj.main(["end"]) == 0
    assert not (job / "pending").exists()  # its unit's condition: never again at boot
    assert (job / "log").read_text().splitlines()[-1].startswith("gpubox: job train ended: exit 0 after ")
    assert json.loads((job / "status").read_text())["state"] == "ended"
    assert gj.main(["end"]) == 0  # told once
    assert (job / "log").read_text().count("ended:") == 1


def test_an_interruption_notice_makes_the_end_an_interruption_and_the_next_start_a_resume(job, monkeypatch):
    monkeypatch.setenv("GPUBOX_RESTART", "on-interruption")
    command(job, 'echo "resume=$GPUBOX_RESUME checkpoints=$GPUBOX_CHECKPOINT_DIR"')
    gj.main(["exec"])
    gj.NOTICE.write_text("1\n")  # the job role's hook: AWS will stop this box
    gj.main(["end"])  # the job saved its checkpoint and exited 0 before the stop
    last = (job / "log").read_text().splitlines()[-1]
    assert "interrupted by a spot interruption notice (exit 0)" in last and "starts again at the next boot" in last
    assert (job / "pending").read_text() == "resume\n"
    gj.NOTICE.unlink()  # /run is empty after the boot
    gj.main(["exec"])
    log = (job / "log").read_text().splitlines()
    assert "started again after an interruption (GPUBOX_RESUME=1)" in log[-2]
    assert log[-1] == f"resume=1 checkpoints={job / 'checkpoints'}"


def test_an_old_notice_does_not_count_and_restart_never_is_final(job):
    gj.NOTICE.write_text("1\n")
    os.utime(gj.NOTICE, (time.time() - 3600, time.time() - 3600))  # before this run started
    command(job, "true")
    gj.main(["exec"])
    gj.main(["end"])
    assert " ended: exit 0 " in (job / "log").read_text() and not (job / "pending").exists()

    (job / "pending").write_text("new\n")  # run.yml again; this time AWS interrupts it
    gj.main(["exec"])
    gj.NOTICE.touch()
    gj.main(["end"])
    assert "its restart is `never`, so it stays stopped" in (job / "log").read_text()
    assert not (job / "pending").exists()


def test_a_job_killed_at_a_stop_is_described_by_its_signal(job):
    command(job, "kill -TERM $$")
    assert gj.main(["exec"]) == 128 + 15
    gj.main(["end"])
    assert " ended: killed by SIGTERM after " in (job / "log").read_text()  # a stop by hand: its end


def test_a_shutdown_under_the_job_is_an_interruption_as_root_marks_it(job, monkeypatch):
    monkeypatch.setenv("GPUBOX_RESTART", "on-interruption")
    command(job, "kill -TERM $$")
    gj.main(["exec"])
    monkeypatch.setattr(gj, "system_state", lambda: "running")
    assert gj.main(["mark"]) == 0 and not gj.SHUTDOWN.exists()  # a stop by hand: nothing to note
    monkeypatch.setattr(gj, "system_state", lambda: "stopping")
    assert gj.main(["mark"]) == 0 and gj.SHUTDOWN.exists()
    gj.main(["end"])
    last = (job / "log").read_text().splitlines()[-1]
    assert "interrupted by the box shutting down (killed by SIGTERM)" in last and "at the next boot" in last
    assert (job / "pending").read_text() == "resume\n"


def test_log_prints_the_last_run_and_list_says_each_jobs_state(job, capsys):
    command(job, "echo first run")
    gj.main(["exec"])
    gj.main(["end"])
    (job / "pending").write_text("new\n")
    command(job, "echo second run")
    gj.main(["exec"])
    gj.main(["end"])
    capsys.readouterr()
    assert gj.main(["log", "train"]) == 0
    out = capsys.readouterr().out
    assert "second run" in out and "first run" not in out and out.rstrip().splitlines()[-1].startswith("gpubox: job")
    assert gj.main(["log"]) == 0  # no name: the list, then the newest job
    out = capsys.readouterr().out
    assert out.startswith("train  ended ") and "(restart: never; log " in out and "second run" in out
    assert gj.main(["log", "nope"]) == 2
    assert "no job 'nope' on this box (its jobs: train)" in capsys.readouterr().err


def test_follow_prints_what_comes_and_ends_with_the_job(job):
    (job / "log").write_text("gpubox: job train started at now\nepoch 0\n")
    (job / "status").write_text('{"state": "running", "started": 1}')
    running = gj.RUN_DIR / "train"
    running.mkdir(parents=True)  # systemd's RuntimeDirectory while the job runs
    out = io.StringIO()
    follower = threading.Thread(target=gj.cmd_log, args=("train", True, out))
    follower.start()
    time.sleep(1.2)
    assert follower.is_alive() and out.getvalue().endswith("epoch 0\n")
    with open(job / "log", "a") as log:
        log.write("epoch 1\ngpubox: job train ended: exit 0 after 2 s\n")
    running.rmdir()  # the job is over
    follower.join(timeout=5)
    assert not follower.is_alive()
    assert out.getvalue().splitlines()[-2:] == ["epoch 1", "gpubox: job train ended: exit 0 after 2 s"]


def test_garbage_is_refused(job, capsys):
    assert gj.main(["log", "../etc"]) == 2
    assert gj.main(["frobnicate"]) == 2
    os.environ.pop("GPUBOX_JOB")
    assert gj.main(["exec"]) == 2
    assert "GPUBOX_JOB is not set" in capsys.readouterr().err
