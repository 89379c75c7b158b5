"""SSH sessions in use, from /proc and /dev/pts: a terminal typed into (its input time) or running something that
uses CPU, and a remote editor (VS Code and its kin, JetBrains Gateway) connected over SSH. A terminal left open and
untouched, or an editor server left running after its client went away, is not use."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from .decisions import Reading
from .util import fmt_duration

SSHD_NAMES = frozenset({"sshd", "sshd-session"})
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR .. +7 (Documentation/admin-guide/devices.txt)
TTY_TIME_GRAIN_S = 8.0  # the kernel moves a tty's times in 8 s steps (tty_update_time): keystroke timing stays private
TERMINAL_BUSY_SHARE = 0.01  # of one core, between two looks: a shell at its prompt uses none, a running command more
# The folders the remote editors install their servers in (in the user's home), and the name the log gives them.
EDITOR_DIRS = {
    ".vscode-server": "vscode",
    ".vscode-server-insiders": "vscode",
    ".vscode-server-oss": "vscode",
    ".vscodium-server": "vscodium",
    ".cursor-server": "cursor",
    ".windsurf-server": "windsurf",
    ".positron-server": "positron",
}
EDITOR_PATH = re.compile(r"/(" + "|".join(re.escape(d) for d in EDITOR_DIRS) + r")/")
# JetBrains Gateway starts its backend with remote-dev-server.sh (the IDE's bin/), which runs the IDE with
# com.intellij.idea.Main and the remote-dev-server verb; its distributions live in ~/.cache/JetBrains/RemoteDev/.
JETBRAINS = re.compile(r"remote-dev-server|RemoteDevServer|/\.cache/JetBrains/RemoteDev/")


@dataclass(frozen=True)
class Proc:
    comm: str
    ppid: int
    tty: int
    ticks: int  # CPU time in clock ticks: its own, and its children's that it waited for (a build's compilers)


def read_processes(proc_root: str = "/proc") -> dict[int, Proc]:
    """pid -> Proc from /proc/*/stat; processes that vanish meanwhile are skipped."""
    table: dict[int, Proc] = {}
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
            ticks = sum(int(v) for v in rest[11:15]) if len(rest) >= 15 else 0  # utime stime cutime cstime
            table[int(name)] = Proc(comm, int(rest[1]), int(rest[4]), ticks)
        except ValueError:
            continue
    return table


def pts_name(tty_nr: int) -> str | None:
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if major not in PTS_MAJORS:
        return None
    return f"pts/{(major - PTS_MAJORS.start) * 256 + minor}"


def under_sshd(table: dict[int, Proc], pid: int) -> bool:
    parent, hops = table[pid].ppid, 0
    while parent > 1 and parent in table and hops < 64:  # hops: a loop in a changing table cannot hang us
        if table[parent].comm in SSHD_NAMES:
            return True
        parent, hops = table[parent].ppid, hops + 1
    return False


def ssh_terminals(proc_root: str = "/proc", table: dict[int, Proc] | None = None) -> list[str]:
    """Terminals (pts/N) of processes that descend from sshd: interactive SSH sessions, not -N tunnels."""
    table = read_processes(proc_root) if table is None else table
    found = {name for pid, p in table.items() if (name := pts_name(p.tty)) and under_sshd(table, pid)}
    return sorted(found, key=lambda n: int(n.partition("/")[2]))


def editor_of(argv: list[str]) -> str | None:
    """The remote editor whose server this command line runs, if any (the program and its script)."""
    for word in argv[:2]:
        match = EDITOR_PATH.search(word)
        if match:
            return EDITOR_DIRS[match.group(1)]
    if any(JETBRAINS.search(word) for word in argv[:8]):
        return "jetbrains"
    return None


def read_cmdline(proc_root: str, pid: int) -> list[str]:
    try:
        with open(os.path.join(proc_root, str(pid), "cmdline"), "rb") as handle:
            data = handle.read(16384)
    except OSError:
        return []
    return data.decode("utf-8", "replace").rstrip("\0").split("\0")


class SessionProbe:
    """The ssh signal. Use is: a remote editor's server that descends from an sshd session (connected now); a
    terminal of an SSH session typed into since the last look (its input time, as `w` shows it), or whose
    processes used more than TERMINAL_BUSY_SHARE of a core since the last look. The newest input on any SSH
    terminal is reported as the last activity, so the idle clock counts from the last key pressed."""

    def __init__(
        self,
        proc_root: str = "/proc",
        dev_root: str = "/dev",
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        ticks_per_s: int = 0,
    ):
        self.proc_root, self.dev_root, self.window_s = proc_root, dev_root, window_s
        self.clock, self.wall_clock = clock, wall_clock
        self.ticks_per_s = ticks_per_s or os.sysconf("SC_CLK_TCK")
        self.previous: dict[int, int] = {}  # pid -> ticks at the last look
        self.previous_at: float | None = None

    def _input_ago(self, name: str, wall: float) -> float | None:
        try:
            return max(0.0, wall - os.stat(os.path.join(self.dev_root, name)).st_atime)
        except OSError:
            return None

    def __call__(self) -> Reading:
        table = read_processes(self.proc_root)
        now, wall = self.clock(), self.wall_clock()
        ssh_ttys: dict[int, str] = {}
        editors: dict[str, int] = {}
        for pid, proc in table.items():
            name = pts_name(proc.tty)
            if (name is None and proc.comm in SSHD_NAMES) or not under_sshd(table, pid):
                continue
            if name is not None:
                ssh_ttys[proc.tty] = name
            elif (editor := editor_of(read_cmdline(self.proc_root, pid))) is not None:
                editors[editor] = min(pid, editors.get(editor, pid))  # the first: the session's own
        busy = self._busy_terminals(table, ssh_ttys, now)
        parts = [f"{e} remote session (pid {pid})" for e, pid in sorted(editors.items())]
        newest: float | None = None
        idle_parts = []
        for name in sorted(set(ssh_ttys.values()), key=lambda n: int(n.partition("/")[2])):
            ago = self._input_ago(name, wall)
            if ago is not None:
                newest = ago if newest is None else min(newest, ago)
            if name in busy:
                parts.append(f"terminal {name} busy ({busy[name]:.0%} of a core)")
            elif ago is not None and ago <= self.window_s + TTY_TIME_GRAIN_S:
                parts.append(f"terminal {name} typed {fmt_duration(ago)} ago")
            else:
                idle_parts.append(f"{name} untouched" + (f" {fmt_duration(ago)}" if ago is not None else ""))
        if parts:
            return Reading("ssh", True, "ssh " + ", ".join(parts), activity_ago=newest)
        if idle_parts:
            return Reading("ssh", detail="ssh: terminal " + ", ".join(idle_parts), activity_ago=newest)
        return Reading("ssh", detail="ssh: no session in use")

    def _busy_terminals(self, table: dict[int, Proc], ssh_ttys: dict[int, str], now: float) -> dict[str, float]:
        """Terminal -> share of one core its processes used since the last look, where above the threshold."""
        ticks = {pid: p.ticks for pid, p in table.items() if p.tty in ssh_ttys}
        before, before_at = self.previous, self.previous_at
        self.previous, self.previous_at = ticks, now
        if before_at is None or now <= before_at:
            return {}
        used: dict[str, int] = {}
        for pid, count in ticks.items():
            if pid in before:  # a process new since the last look is measured from the next one
                name = ssh_ttys[table[pid].tty]
                used[name] = used.get(name, 0) + max(0, count - before[pid])
        elapsed = (now - before_at) * self.ticks_per_s
        shares = {name: count / elapsed for name, count in used.items()}
        return {name: share for name, share in shares.items() if share > TERMINAL_BUSY_SHARE}
