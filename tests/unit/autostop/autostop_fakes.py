"""What the agent's tests share: the package's place and its zipapp builder, settings for a test, quiet readings, a
fake clock, a fake /proc, hold folders."""

from __future__ import annotations

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


def make_proc(root: Path, processes: list[tuple[int, str, int, int]]) -> Path:
    """A fake /proc: one stat file per (pid, comm, ppid, tty_nr), as the kernel writes it."""
    for pid, comm, ppid, tty in processes:
        (root / str(pid)).mkdir(parents=True)
        fields = ["S", str(ppid), str(pid), str(pid), str(tty), "-1", "4194560"] + ["0"] * 40
        (root / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
    return root


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
