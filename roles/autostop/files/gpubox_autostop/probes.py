"""The probes, each small, each returning a Reading: Jupyter (its REST API, with the token), the GPU (nvidia-smi),
SSH terminals (from /proc), the CPU (/proc/stat between two polls), holds (hold.py reads the files) and running
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

SSHD_NAMES = frozenset({"sshd", "sshd-session"})
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR .. +7 (Documentation/admin-guide/devices.txt)
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


class CpuProbe:
    """CPU busy share of all CPUs between two calls (the first call has nothing to compare with)."""

    def __init__(self, threshold: float, path: str = "/proc/stat"):
        self.threshold, self.path = threshold, path
        self.previous: CpuTimes | None = None

    def __call__(self) -> Reading:
        try:
            now = read_cpu_times(self.path)
        except (OSError, ValueError, IndexError) as exc:
            return Reading("cpu", error=f"cpu: {self.path} unreadable: {describe_error(exc)}")
        before, self.previous = self.previous, now
        if before is None or now.total <= before.total:
            return Reading("cpu", detail="cpu: first sample")
        share = 100.0 * (now.busy - before.busy) / (now.total - before.total)
        return Reading("cpu", share > self.threshold, f"cpu {share:.0f}% of {now.cpus} CPUs")


def _proc_table(proc_root: str) -> dict[int, tuple[str, int, int]]:
    """pid -> (comm, ppid, tty_nr) from /proc/*/stat; processes that vanish meanwhile are skipped."""
    table: dict[int, tuple[str, int, int]] = {}
    try:
        names = os.listdir(proc_root)
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, name, "stat"), encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: it ends at the last ')'
        head, _unused, tail = text.rpartition(")")
        comm = head.partition("(")[2]
        rest = tail.split()
        if len(rest) < 5:
            continue
        try:
            table[int(name)] = (comm, int(rest[1]), int(rest[4]))
        except ValueError:
            continue
    return table


def pts_name(tty_nr: int) -> str | None:
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if major not in PTS_MAJORS:
        return None
    return f"pts/{(major - PTS_MAJORS.start) * 256 + minor}"


def ssh_terminals(proc_root: str = "/proc") -> list[str]:
    """Terminals (pts/N) of processes that descend from sshd: interactive SSH sessions, not -N tunnels."""
    table = _proc_table(proc_root)
    found: set[str] = set()
    for _pid, (_comm, ppid, tty) in table.items():
        name = pts_name(tty)
        if name is None or name in found:
            continue
        parent, hops = ppid, 0
        while parent > 1 and parent in table and hops < 64:  # hops: a loop in a changing table cannot hang us
            if table[parent][0] in SSHD_NAMES:
                found.add(name)
                break
            parent, hops = table[parent][1], hops + 1
    return sorted(found, key=lambda n: int(n.partition("/")[2]))


def probe_ssh(proc_root: str = "/proc") -> Reading:
    terminals = ssh_terminals(proc_root)
    if not terminals:
        return Reading("ssh", detail="ssh: no terminal")
    word = "terminal" if len(terminals) == 1 else "terminals"
    return Reading("ssh", True, f"ssh {word} {', '.join(terminals)}")


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
    ):
        self.settings, self.clock, self.wall_clock, self.proc_root = settings, clock, wall_clock, proc_root
        self.cpu = CpuProbe(settings.cpu_threshold, os.path.join(proc_root, "stat"))
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
            probes.append(("ssh", partial(probe_ssh, self.proc_root)))
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
