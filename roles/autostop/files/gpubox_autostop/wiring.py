"""The agent's loop (run_agent): probe, decide, log, warn with wall, power off, keep the status file; with what it
needs around it: the time since the system started, its own memory and CPU use, the hold directory, the start line,
and the spot watcher's thread."""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from .decisions import Autostop
from .hooks import run_hooks
from .probes import Probes
from .settings import SIGNALS, Settings
from .spot import ImdsClient, SpotWatcher
from .util import Log, Runner, clean, describe_error, fmt_duration, fmt_number, run_command


def seconds_since_system_start(proc_root: str = "/proc") -> float:
    """Seconds since PID 1 started (the boot on a VM, the container's start in a container); 0 if unknown."""
    try:
        with open(os.path.join(proc_root, "uptime"), encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    try:
        with open(os.path.join(proc_root, "1", "stat"), encoding="utf-8", errors="replace") as handle:
            start_ticks = int(handle.read().rpartition(")")[2].split()[19])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return uptime


def self_usage() -> dict[str, float]:
    """This process's resident memory (KiB, from /proc/self/status) and CPU time (s)."""
    usage: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    usage[line.split(":")[0].lower() + "_kib"] = float(line.split()[1])
    except OSError:
        pass
    times = os.times()
    usage["cpu_s"] = round(times.user + times.system, 3)
    return usage


def write_status(path: str, payload: dict) -> None:
    """Atomically, so gpubox-hold never reads half a file."""
    if not path:
        return
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".autostop.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        pass  # the status file is a convenience; the journal has every decision


def prepare_hold_dir(path: str, log: Log) -> None:
    """Make the hold directory world-writable and sticky when it is missing (as root, at start)."""
    if os.path.isdir(path):
        mode = os.stat(path).st_mode
        if mode & 0o1777 != 0o1777:
            log(f"note: {path} is mode {stat.S_IMODE(mode):o}, not 1777: users may be unable to set holds")
        return
    try:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o1777)
    except OSError as exc:
        log(f"note: cannot create {path}: {describe_error(exc)}; holds are off")


def describe_settings(s: Settings) -> str:
    """The start line: what this agent watches, and its limits."""
    names = {
        "jupyter": f"jupyter ({s.jupyter_url})" if s.jupyter_url else "",
        "gpu": f"gpu>{fmt_number(s.gpu_threshold)}%",
        "ssh": "ssh",
        "cpu": f"cpu>{fmt_number(s.cpu_threshold)}%",
        "hold": f"hold ({s.hold_dir})",
        "job": f"job ({s.jobs_dir})",
    }
    watched = [names[n] for n in SIGNALS if n in s.enabled and names[n]]
    idle = f"idle_minutes {fmt_number(s.idle_minutes)}" if s.idle_minutes > 0 else "idle stop off"
    cap = f"max_hours {fmt_number(s.max_hours)}" if s.max_hours > 0 else "max_hours off"
    spot = f", spot notices every {fmt_duration(s.spot_poll_seconds)}" if s.spot else ""
    daily = f", stop_at {s.stop_at}" if s.stop_at else ""
    return (
        f"start: {idle}, grace {fmt_duration(s.grace_minutes * 60)}, {cap}, poll {fmt_duration(s.poll_seconds)},"
        f" signals: {', '.join(watched) or 'none'}{spot}{daily}"
    )


def make_logger(stream=None) -> Log:
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            print(line, file=stream or sys.stdout, flush=True)

    return log


def make_wall(settings: Settings, log: Log, runner: Runner = run_command) -> Callable[[str], None]:
    def wall(message: str) -> None:
        if not settings.wall_command.strip():
            return
        rc, out = runner(shlex.split(settings.wall_command), stdin_text=message + "\n", timeout=15)
        if rc != 0:
            log(f"note: wall failed (exit {rc}): {clean(out, 120)}")

    return wall


def run_agent(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    wait: Callable[[float], object] | None = None,
    log: Log | None = None,
    probes: Probes | None = None,
    runner: Runner = run_command,
    since_boot: float | None = None,
) -> int:
    """The agent's loop until stop is set: probe, decide, log, warn, power off, keep the status file."""
    stop = stop or threading.Event()
    wait = wait or stop.wait
    log = log or make_logger()
    wall = make_wall(settings, log, runner)
    started = clock()
    boot = seconds_since_system_start() if since_boot is None else since_boot
    decider = Autostop(settings, started, boot, wall_start=wall_clock())
    log(describe_settings(settings))
    if "hold" in settings.enabled:
        prepare_hold_dir(settings.hold_dir, log)
    if settings.spot:
        watcher = SpotWatcher(
            ImdsClient(settings.metadata_url),
            interval=settings.spot_poll_seconds,
            hooks_dir=settings.interrupt_dir,
            hook_timeout=settings.interrupt_timeout,
            log=log,
            wall=wall,
        )
        threading.Thread(target=watcher.run, args=(stop,), name="spot", daemon=True).start()
    probes = probes or Probes(settings, clock, wall_clock)
    last_line = ""
    hooks_ran = False
    while not stop.is_set():
        now = clock()
        readings = probes.collect() if decider.wants_readings else []
        decision = decider.step(now, readings, wall=wall_clock())
        last_line = decision.line or last_line
        if decision.log:
            log(decision.line)
        if decision.wall:
            wall(decision.wall)
        if decision.poweroff and not hooks_ran:
            # before the first power-off command only: a retry does not run them again
            hooks_ran = True
            run_hooks(
                settings.on_stop_dir,
                {"GPUBOX_STOP_REASON": decision.reason},
                settings.on_stop_timeout,
                log,
                label="on-stop",
            )
        if decision.poweroff:
            rc, out = runner(shlex.split(settings.poweroff_command), timeout=60)
            if rc != 0:
                log(f"poweroff command failed (exit {rc}): {clean(out, 160)}; trying again in 5 min")
        deadline = wall_clock() + (decider.deadline - now) if decider.phase == "warning" else None
        write_status(
            settings.status_file,
            {"time": wall_clock(), "phase": decider.phase, "line": last_line, "poweroff_at": deadline}
            | {"idle_minutes": settings.idle_minutes, "max_hours": settings.max_hours}
            | {"signals": {r.source: r.error or r.detail for r in readings}}
            | self_usage(),
        )
        wait(decider.next_wait(clock()))
    log("stop: agent exits")
    return 0
