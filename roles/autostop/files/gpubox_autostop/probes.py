"""The probes, each small, each returning a Reading: Jupyter (its REST API, with the token), the GPU (nvidia-smi),
SSH sessions in use (sessions.py: terminals typed into or busy, remote editors connected), the CPU (the box's
cgroup, or /proc/stat, between two polls), holds (hold.py reads the files) and running
jobs; and Probes, which runs the enabled ones, with backoff for Jupyter and nvidia-smi, and never lets one crash
the agent."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from . import sessions
from .decisions import Reading
from .hold import read_holds
from .settings import Settings
from .util import (
    Backoff,
    Runner,
    clean,
    describe_error,
    fmt_clock,
    fmt_duration,
    http_request,
    parse_utc,
    read_small_file,
    run_command,
)

PROBE_BACKOFF_CAP_S = 600.0


def read_token(path: str) -> str:
    data, _unused = read_small_file(path, 4096)
    token = data.decode("ascii", "replace").strip()
    if not re.fullmatch(r"[A-Za-z0-9._~+/=-]{1,4096}", token):
        raise ValueError("does not hold a token (one line of letters, digits and ._~+/=-)")
    return token


def _get_json(base: str, path: str, token: str, timeout: float) -> object:
    # no_track_activity: without it, these requests would be Jupyter activity themselves
    status, body = http_request(
        f"{base}{path}?no_track_activity=1", headers={"Authorization": f"token {token}"}, timeout=timeout
    )
    if status in (401, 403):
        raise PermissionError(f"token refused (HTTP {status})")
    if status != 200:
        raise http.client.HTTPException(f"{path} answered HTTP {status}")
    return json.loads(body)


def probe_jupyter(
    url: str, token_file: str, now_wall: float, server_activity: bool = True, timeout: float = 5.0
) -> Reading:
    """A busy kernel is activity now; otherwise the newest last_activity says when Jupyter last saw some."""
    base = url.rstrip("/")
    try:
        token = read_token(token_file) if token_file else ""
    except ValueError as exc:
        return Reading("jupyter", error=f"jupyter token file {token_file}: {exc}")
    try:
        status = _get_json(base, "/api/status", token, timeout)
        kernels = _get_json(base, "/api/kernels", token, timeout)
        try:
            terminals = _get_json(base, "/api/terminals", token, timeout)
        except http.client.HTTPException:
            terminals = []  # terminals disabled: 404
    except PermissionError as exc:
        return Reading("jupyter", error=f"jupyter {exc}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Reading("jupyter", error=f"jupyter not answering: {describe_error(exc)}")
    kernels = [k for k in kernels if isinstance(k, dict)] if isinstance(kernels, list) else []
    terminals = [t for t in terminals if isinstance(t, dict)] if isinstance(terminals, list) else []
    busy = sum(1 for k in kernels if k.get("execution_state") == "busy")
    if busy:
        return Reading("jupyter", True, f"jupyter kernel busy ({busy} of {len(kernels)})")
    stamps = [k.get("last_activity") for k in kernels] + [t.get("last_activity") for t in terminals]
    if server_activity and isinstance(status, dict):
        stamps.append(status.get("last_activity"))
    times = [t for t in (parse_utc(s) for s in stamps if s) if t is not None]
    if not times:
        return Reading("jupyter", detail=f"jupyter: {len(kernels)} kernels, no activity")
    ago = max(0.0, now_wall - max(times))
    return Reading("jupyter", detail=f"jupyter: last activity {fmt_duration(ago)} ago", activity_ago=ago)


def probe_gpu(threshold: float, timeout: float = 20.0, runner: Runner = run_command) -> Reading:
    """The busiest GPU's utilisation from nvidia-smi; no nvidia-smi = no GPU = no signal (not an error)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return Reading("gpu", detail="gpu: no nvidia-smi")
    rc, out = runner([exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"], timeout=timeout)
    values = [int(v) for v in (line.strip() for line in out.splitlines()) if v.isdigit()]
    if rc != 0 or not values:
        if rc == 0 and out.strip():  # e.g. "[N/A]" on every GPU: it cannot tell, so no signal
            return Reading("gpu", detail=f"gpu: utilisation not reported ({clean(out, 60)})")
        return Reading("gpu", error=f"nvidia-smi failed (exit {rc}): {clean(out, 120)}")
    top = max(values)
    of = f" (busiest of {len(values)} GPUs)" if len(values) > 1 else ""
    return Reading("gpu", top > threshold, f"gpu {top}%{of}")


@dataclass(frozen=True)
class CpuTimes:
    busy: int
    total: int
    cpus: int


def read_cpu_times(path: str = "/proc/stat") -> CpuTimes:
    with open(path, encoding="ascii") as handle:
        lines = handle.read().splitlines()
    # user nice system idle iowait irq softirq steal: iowait counts as busy (a job reading its data set)
    ticks = [int(v) for v in lines[0].split()[1:9]]
    ticks += [0] * (8 - len(ticks))
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    cpus = sum(1 for line in lines if re.match(r"cpu\d+ ", line))
    busy = user + nice + system + iowait + irq + softirq
    return CpuTimes(busy, busy + idle + steal, max(1, cpus))


def read_cgroup_usage(cgroup_root: str) -> tuple[float, str] | None:
    """CPU seconds used by the processes of the cgroup mounted at cgroup_root (the box's own: a container's, or the
    whole machine's at the root), and the file read; None where no cgroup tells."""
    v2 = os.path.join(cgroup_root, "cpu.stat")  # cgroup v2: usage_usec
    try:
        with open(v2, encoding="ascii") as handle:
            for line in handle:
                key, _unused, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6, v2
    except OSError:
        pass
    for folder in ("cpuacct", "cpu,cpuacct"):  # cgroup v1: cpuacct.usage, nanoseconds
        v1 = os.path.join(cgroup_root, folder, "cpuacct.usage")
        try:
            with open(v1, encoding="ascii") as handle:
                return int(handle.read().strip()) / 1e9, v1
        except OSError:
            continue
    return None


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class CpuProbe:
    """CPU busy share of all CPUs between two calls (the first call has nothing to compare with), less the agent's
    own. What the box's processes used is read from its cgroup (the container's own in a container, where
    /proc/stat is the host's; the root cgroup on a machine); /proc/stat where no cgroup tells."""

    def __init__(
        self,
        threshold: float,
        path: str = "/proc/stat",
        cgroup_root: str = "/sys/fs/cgroup",
        clock: Callable[[], float] = time.monotonic,
        own_cpu: Callable[[], float] = own_cpu_seconds,
        cpus: Callable[[], int] = usable_cpus,
    ):
        self.threshold, self.path, self.cgroup_root = threshold, path, cgroup_root
        self.clock, self.own_cpu, self.cpus = clock, own_cpu, cpus
        self.previous: tuple[str, float, float, float] | None = None  # source, used s, of s, own s

    def _sample(self) -> tuple[str, float, float, int]:
        """(source, CPU seconds used, CPU seconds there were, CPUs) now."""
        cgroup = read_cgroup_usage(self.cgroup_root)
        if cgroup is not None:
            cpus = self.cpus()
            return cgroup[1], cgroup[0], self.clock() * cpus, cpus
        times = read_cpu_times(self.path)
        tick = os.sysconf("SC_CLK_TCK")
        return self.path, times.busy / tick, times.total / tick, times.cpus

    def __call__(self) -> Reading:
        try:
            source, used, there, cpus = self._sample()
        except (OSError, ValueError, IndexError) as exc:
            return Reading("cpu", error=f"cpu: {self.path} unreadable: {describe_error(exc)}")
        own = self.own_cpu()
        before, self.previous = self.previous, (source, used, there, own)
        if before is None or before[0] != source or there <= before[2]:
            return Reading("cpu", detail=f"cpu: first sample ({source})")
        share = 100.0 * max(0.0, (used - before[1]) - (own - before[3])) / (there - before[2])
        return Reading("cpu", share > self.threshold, f"cpu {share:.0f}% of {cpus} CPUs")


def probe_job(jobs_dir: str) -> Reading:
    try:
        names = sorted(n for n in os.listdir(jobs_dir) if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", n))
    except FileNotFoundError:
        names = []
    except OSError as exc:
        return Reading("job", detail="job: none", error=f"jobs dir {jobs_dir}: {describe_error(exc)}")
    if not names:
        return Reading("job", detail="job: none running")
    shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
    return Reading("job", True, f"job {shown} running" if len(names) == 1 else f"jobs {shown} running")


def probe_hold(hold_dir: str, now_wall: float, max_hold_s: float) -> Reading:
    holds, problems = read_holds(hold_dir, now_wall, max_hold_s)
    error = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
    if not holds:
        return Reading("hold", detail="hold: none", error=error or None)
    last = max(holds, key=lambda h: h.until)
    users = ", ".join(sorted({h.user for h in holds}))
    detail = f"hold by {users} until {fmt_clock(last.until)} ({fmt_duration(last.until - now_wall)} left)"
    return Reading("hold", True, detail, error=error or None)


class Probes:
    """Every enabled probe, with backoff for the ones that ask another program (Jupyter, nvidia-smi)."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        proc_root: str = "/proc",
        dev_root: str = "/dev",
        cgroup_root: str = "/sys/fs/cgroup",
    ):
        self.settings, self.clock, self.wall_clock, self.proc_root = settings, clock, wall_clock, proc_root
        self.cpu = CpuProbe(settings.cpu_threshold, os.path.join(proc_root, "stat"), cgroup_root, clock)
        self.ssh = sessions.SessionProbe(proc_root, dev_root, settings.poll_seconds, clock, wall_clock)
        self.backoff = {name: Backoff(settings.poll_seconds, PROBE_BACKOFF_CAP_S) for name in ("jupyter", "gpu")}
        self.last_error: dict[str, str] = {}

    def collect(self) -> list[Reading]:
        s, enabled = self.settings, self.settings.enabled
        probes: list[tuple[str, Callable[[], Reading]]] = []
        if "jupyter" in enabled and s.jupyter_url:
            args = (s.jupyter_url, s.jupyter_token_file, self.wall_clock(), s.jupyter_server_activity)
            probes.append(("jupyter", partial(self._with_backoff, "jupyter", partial(probe_jupyter, *args))))
        if "gpu" in enabled:
            probes.append(("gpu", partial(self._with_backoff, "gpu", partial(probe_gpu, s.gpu_threshold))))
        if "ssh" in enabled:
            probes.append(("ssh", self.ssh))
        if "cpu" in enabled:
            probes.append(("cpu", self.cpu))
        if "hold" in enabled:
            probes.append(("hold", partial(probe_hold, s.hold_dir, self.wall_clock(), s.max_hold_hours * 3600)))
        if "job" in enabled:
            probes.append(("job", partial(probe_job, s.jobs_dir)))
        return [self._safely(name, probe) for name, probe in probes]

    @staticmethod
    def _safely(name: str, probe: Callable[[], Reading]) -> Reading:
        # Why: an agent that crashes is restarted by systemd, and a restart re-arms the idle clock: a probe
        # that always crashed would keep the box up for ever. A surprise is a failed probe, named in the log.
        try:
            return probe()
        except Exception as exc:
            return Reading(name, error=f"{name} probe failed: {type(exc).__name__}: {clean(str(exc), 120)}")

    def _with_backoff(self, name: str, probe: Callable[[], Reading]) -> Reading:
        now, backoff = self.clock(), self.backoff[name]
        if not backoff.ready(now):
            wait = fmt_duration(backoff.next_at - now)
            return Reading(name, error=f"{self.last_error.get(name, name + ' failing')}; next try in {wait}")
        reading = probe()
        if reading.error:
            backoff.failure(now)
            self.last_error[name] = reading.error
        else:
            backoff.success()
        return reading
