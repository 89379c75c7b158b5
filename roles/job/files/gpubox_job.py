#!/usr/bin/python3 -I
"""gpubox job: run a job of playbooks/run.yml on the box as a systemd unit of its own, and tell how it went.

Installed as /usr/local/bin/gpubox-job by the job role; standard library only, Python 3.10+.

  gpubox-job exec                 a job unit's ExecStart (as the login user): the job's command in the conda
                                  environment, output to the journal and appended to the job's log
  gpubox-job mark                 the unit's first ExecStopPost (as root): notes a shutdown of the box in
                                  /run/gpubox/shutting-down (a user cannot ask systemd once D-Bus has gone)
  gpubox-job end                  the unit's next ExecStopPost (as the login user): logs how the job ended and
                                  whether it starts again at boot
  gpubox-job list                 the box's jobs: name, state, restart policy, log file
  gpubox-job log [NAME] [--follow]  the last run's output of job NAME (the newest job without NAME); --follow: and
                                  what it writes next, until it ends

Each job (unit gpubox-job-NAME.service, registered in /etc/gpubox/jobs/NAME.json by run.yml) has a directory:
  code/         the synced workdir, the command's working directory
  command       the command (run by bash)
  checkpoints/  GPUBOX_CHECKPOINT_DIR: where the job keeps what it needs to resume
  log           the output of every run, each after a `gpubox: job NAME started` line
  pending       there while the job has not finished: run.yml writes `new`; a start turns it into `resume` (so
                any later start, at boot after an interruption, runs with GPUBOX_RESUME=1); an end that is not an
                interruption removes it. The unit's ConditionPathExists names it: a finished job never starts again.
  status        JSON: state (running, ended, interrupted), start and end times, the command's exit

An interruption is the box shutting down under the job (a spot stop, stop.yml, autostop's max_hours cap) or an
interruption notice (the job role's hook records it in /run/gpubox/interruption-notice; a job that saves a
checkpoint on SIGUSR1 and exits is then interrupted too, not finished). A job with restart=on-interruption has its
unit enabled, so it starts again at boot, with GPUBOX_RESUME=1; any other end is final.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REGISTRY = Path("/etc/gpubox/jobs")
RUN_DIR = Path("/run/gpubox-jobs")
NOTICE = Path("/run/gpubox/interruption-notice")
SHUTDOWN = Path("/run/gpubox/shutting-down")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
HEADER = "gpubox: job {name} started"
# The command runs as `conda activate ENV` makes it: the environment's activation scripts included.
ACTIVATE = (
    'eval "$("$GPUBOX_CONDA" shell.bash hook)" && conda activate "$GPUBOX_CONDA_ENV"'
    ' && exec bash "$GPUBOX_JOB_DIR/command"'
)
FOLLOW_POLL_S = 0.5


class JobError(Exception):
    """A job that cannot be found or read: printed, exit status 2."""


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True) + "\n")
    tmp.replace(path)


class Job:
    def __init__(self, name: str, directory: str, restart: str = "never"):
        if not NAME.fullmatch(name):
            raise JobError(f"{name!r} is not a job name")
        if not directory.startswith("/"):
            raise JobError(f"job {name}: its directory {directory!r} is not an absolute path")
        self.name, self.dir, self.restart = name, Path(directory), restart

    @classmethod
    def from_env(cls) -> Job:
        """The job of the unit this runs in (its Environment= lines)."""
        try:
            return cls(os.environ["GPUBOX_JOB"], os.environ["GPUBOX_JOB_DIR"], os.environ.get("GPUBOX_RESTART", ""))
        except KeyError as exc:
            raise JobError(f"{exc.args[0]} is not set: gpubox-job exec/end run in a job's unit") from None

    @classmethod
    def registered(cls, name: str) -> Job:
        entry = read_json(REGISTRY / f"{name}.json") if NAME.fullmatch(name) else {}
        if not entry:
            known = ", ".join(j.name for j in registered_jobs()) or "none"
            raise JobError(f"no job {name!r} on this box (its jobs: {known})")
        return cls(name, str(entry.get("dir", "")), str(entry.get("restart", "never")))

    @property
    def status(self) -> dict:
        return read_json(self.dir / "status")

    @property
    def running(self) -> bool:
        return (RUN_DIR / self.name).is_dir()

    def state(self) -> str:
        status = self.status
        if self.running:
            return f"running since {stamp(status.get('started', 0))}"
        if status.get("state") == "interrupted" and (self.dir / "pending").exists() and self.restart != "never":
            return "interrupted: starts again at the next boot"
        if status.get("state") in ("ended", "interrupted"):
            return f"{status['state']} {stamp(status.get('ended', 0))}: {status.get('outcome', '?')}"
        return "not started"


def registered_jobs() -> list[Job]:
    jobs = []
    for path in sorted(REGISTRY.glob("*.json")):
        try:
            jobs.append(Job.registered(path.stem))
        except JobError:
            continue
    return jobs


def emit(job: Job, line: str) -> None:
    """A line of gpubox's own, to the job's log and the journal."""
    with open(job.dir / "log", "a", encoding="utf-8") as log:
        log.write(line + "\n")
    print(line, flush=True)


def cmd_exec() -> int:
    job = Job.from_env()
    pending = job.dir / "pending"
    try:
        resume = pending.read_text().strip() == "resume"
    except FileNotFoundError:  # the unit's condition checks it; started by hand after the end
        print(f"gpubox: job {job.name} has finished; run it again with playbooks/run.yml", flush=True)
        return 0
    pending.write_text("resume\n")  # any later start of this run is a resume
    started = time.time()
    how = " again after an interruption (GPUBOX_RESUME=1)" if resume else ""
    emit(job, f"{HEADER.format(name=job.name)}{how} at {stamp(started)}")
    # after the header: a follower that sees `running` finds this run's header in the log
    write_json(job.dir / "status", {"state": "running", "started": started, "resume": resume})
    checkpoints = job.dir / "checkpoints"
    env = {**os.environ, "GPUBOX_RESUME": "1" if resume else "0", "GPUBOX_CHECKPOINT_DIR": str(checkpoints)}
    # systemd stops a job by sending SIGTERM to every process of the unit: the command gets its own, and this
    # process keeps copying what it still writes (a handler, not SIG_IGN, which the command would inherit).
    signal.signal(signal.SIGTERM, lambda *_: None)
    proc = subprocess.Popen(
        ["/bin/bash", "-c", ACTIVATE], cwd=job.dir / "code", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    with open(job.dir / "log", "ab") as log:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            log.write(chunk)
            log.flush()
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    rc = proc.wait()
    outcome = f"exit {rc}" if rc >= 0 else f"killed by {signal.Signals(-rc).name}"
    write_json(job.dir / "status", {**job.status, "outcome": outcome, "exit": rc})
    return rc if rc >= 0 else 128 - rc


def system_state() -> str:
    try:
        return subprocess.run(
            ["systemctl", "is-system-running"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def cmd_mark() -> int:
    """As root, while the job's unit stops: if the box is shutting down, say so in SHUTDOWN for `end`."""
    if system_state() == "stopping":
        SHUTDOWN.parent.mkdir(parents=True, exist_ok=True)
        SHUTDOWN.write_text(f"{time.time()}\n")
    return 0


def seen_since(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since - 1
    except OSError:
        return False


def interruption(since: float) -> str | None:
    """Why the job is ending, if it is an interruption rather than the job's own end or a stop by hand."""
    if seen_since(NOTICE, since):
        return "a spot interruption notice"
    return "the box shutting down" if seen_since(SHUTDOWN, since) else None


def cmd_end() -> int:
    job = Job.from_env()
    status = job.status
    if status.get("state") != "running":  # never started (its condition failed), or already told
        return 0
    ended = time.time()
    started = float(status.get("started", ended))
    outcome = status.get("outcome") or describe_exit(os.environ.get("EXIT_CODE", ""), os.environ.get("EXIT_STATUS"))
    took = duration(ended - started)
    why = interruption(started)
    if why and job.restart == "on-interruption":
        state = "interrupted"
        line = (
            f"gpubox: job {job.name} interrupted by {why} ({outcome}) after {took}: it starts again at the next boot,"
            " with GPUBOX_RESUME=1"
        )
    else:
        (job.dir / "pending").unlink(missing_ok=True)
        state = "interrupted" if why else "ended"
        line = f"gpubox: job {job.name} ended: {outcome} after {took}"
        if why:
            line = (
                f"gpubox: job {job.name} interrupted by {why} ({outcome}) after {took}; its restart is `never`, so it"
                " stays stopped (run it again with playbooks/run.yml, or use restart on-interruption)"
            )
    write_json(job.dir / "status", {**status, "state": state, "ended": ended, "outcome": outcome})
    emit(job, line)
    return 0


def describe_exit(code: str, value: str | None) -> str:
    if code == "exited":
        return f"exit {value}"
    if code in ("killed", "dumped"):
        return f"killed by SIG{value}" if value and not value.startswith("SIG") else f"killed by {value}"
    return "did not start"


def last_run_offset(path: Path, name: str) -> int:
    """Where the last run's output starts in the log: its `started` line."""
    data = path.read_bytes()
    at = data.rfind(("\n" + HEADER.format(name=name)).encode())
    return 0 if at < 0 else at + 1


def cmd_log(name: str | None, follow: bool, out=None) -> int:
    out = out or sys.stdout
    jobs = registered_jobs()
    if name is None:
        if not jobs:
            print("No jobs on this box yet: playbooks/run.yml starts one.", file=out)
            return 0
        cmd_list(out)
        job = max(jobs, key=lambda j: j.status.get("started", 0))
        print(f"\nThe newest job, {job.name}:", file=out)
    else:
        job = Job.registered(name)
    if follow:
        wait_for_this_run(job)
    log = job.dir / "log"
    if not log.exists():
        print(f"job {job.name} has written nothing yet", file=out)
        return 0
    with open(log, "rb") as handle:
        handle.seek(last_run_offset(log, job.name))
        while True:
            chunk = handle.read(65536)
            if chunk:
                out.write(chunk.decode("utf-8", "replace"))
                out.flush()
                continue
            if not follow or not job.running:
                # the end line is written after the unit's last process is gone: read once more
                rest = handle.read()
                out.write(rest.decode("utf-8", "replace"))
                out.flush()
                return 0
            time.sleep(FOLLOW_POLL_S)


def wait_for_this_run(job: Job, timeout: float = 300.0) -> None:
    """Before following: a job that is starting (its unit up, its header not yet written), or that the box is
    about to start again at boot, is waited for, so that the follow shows this run, not the one before."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.running:
            if job.status.get("state") == "running":
                return
        elif not (job.dir / "pending").exists() or system_state() not in ("initializing", "starting"):
            return
        time.sleep(FOLLOW_POLL_S)


def cmd_list(out=None) -> int:
    out = out or sys.stdout
    jobs = registered_jobs()
    if not jobs:
        print("No jobs on this box yet: playbooks/run.yml starts one.", file=out)
        return 0
    width = max(len(j.name) for j in jobs)
    for job in jobs:
        print(f"{job.name:<{width}}  {job.state()}  (restart: {job.restart}; log {job.dir / 'log'})", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["exec"]:
            return cmd_exec()
        if args == ["end"]:
            return cmd_end()
        if args == ["mark"]:
            return cmd_mark()
        if args == ["list"]:
            return cmd_list()
        if args and args[0] == "log":
            rest = args[1:]
            follow = "--follow" in rest
            names = [a for a in rest if a != "--follow"]
            if len(names) <= 1:
                return cmd_log(names[0] if names else None, follow)
    except JobError as exc:
        print(f"gpubox-job: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
