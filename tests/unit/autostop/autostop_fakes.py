"""What the agent's tests share: the package's place and its zipapp builder, settings for a test, quiet readings, a
fake clock, a fake /proc, hold folders."""

from __future__ import annotations

import os
from pathlib import Path

from gpubox_autostop.decisions import Reading
from gpubox_autostop.settings import Settings

from tests.conftest import ROOT

AGENT_FILES = ROOT / "roles" / "autostop" / "files"


def build_program(folder: Path, dest: Path) -> Path:
    """The zipapp of the package `folder` as the role builds it (same builder, same interpreter line), at dest."""
    from ansible_collections.gpubox.gpubox.plugins.lookup import zipapp

    dest.write_bytes(zipapp.build(str(folder), "/usr/bin/python3 -I"))
    dest.chmod(0o755)
    return dest


SOURCES = ("jupyter", "gpu", "ssh", "cpu", "hold", "job")
MIN = 60.0


def settings(**overrides) -> Settings:
    base = {"idle_minutes": 60.0, "grace_minutes": 5.0, "poll_seconds": 60.0, "log_every_minutes": 10.0}
    return Settings(**{**base, **overrides})


def quiet(**replace: Reading) -> list:
    """One reading per source, none active, with some replaced."""
    return [replace.get(s, Reading(s, detail=f"{s}: quiet")) for s in SOURCES]


class FakeTime:
    def __init__(self, mono: float = 100.0, wall: float = 1_700_000_000.0):
        self.mono, self.wall0, self.mono0 = mono, wall, mono

    def clock(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall0 + (self.mono - self.mono0)


def make_proc(root: Path, processes: list[tuple]) -> Path:
    """A fake /proc: one stat file per (pid, comm, ppid, tty_nr[, CPU ticks[, command line]]), as the kernel writes
    them (the ticks as utime; a process written again gets its new ticks)."""
    for pid, comm, ppid, tty, *more in processes:
        ticks, argv = (more[0] if more else 0), (more[1] if len(more) > 1 else None)
        (root / str(pid)).mkdir(parents=True, exist_ok=True)
        fields = ["S", str(ppid), str(pid), str(pid), str(tty), "-1", "4194560", "0", "0", "0", "0", str(ticks)]
        fields += ["0"] * 40
        (root / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
        if argv is not None:
            (root / str(pid) / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    return root


def make_pts(dev: Path, n: int, typed_at: float) -> Path:
    """A fake /dev/pts/N whose input time (atime) is typed_at."""
    (dev / "pts").mkdir(parents=True, exist_ok=True)
    path = dev / "pts" / str(n)
    path.touch()
    os.utime(path, (typed_at, typed_at))
    return path


def pts(n: int) -> int:
    major, minor = 136 + n // 256, n % 256
    return (major << 8) | (minor & 0xFF) | ((minor & ~0xFF) << 12)


NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def hold_env(tmp_path: Path, **overrides):
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir(mode=0o1777, exist_ok=True)
    return settings(hold_dir=str(hold_dir), status_file=str(tmp_path / "status.json"), **overrides)
