"""The hooks (interrupt_dir's on a spot notice, on_stop_dir's before a power-off): which files of a directory run
(executables, sorted; not group- or world-writable, owned by root or this agent's user; dotfiles and package-manager
leftovers skipped), and running each with a timeout that kills everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import time

from .util import Log, clean, describe_error, fmt_duration

HOOK_SKIP_SUFFIXES = ("~", ".dpkg-old", ".dpkg-dist", ".dpkg-new", ".dpkg-tmp", ".ucf-old", ".disabled")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def list_hooks(directory: str, log: Log, label: str = "spot") -> list[str]:
    """Executables in directory, sorted; unsafe or leftover files are skipped, and said so."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log(f"{label}: hooks in {directory} unreadable: {describe_error(exc)}")
        return []
    hooks = []
    for name in names:
        if name.startswith(".") or name.endswith(HOOK_SKIP_SUFFIXES):
            continue
        path = os.path.join(directory, name)
        try:
            info = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
            continue
        why = None
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            why = "group- or world-writable"
        elif info.st_uid not in (0, os.geteuid()):
            why = f"owned by uid {info.st_uid}"
        if why:
            log(f"{label}: hook {clean(name, 60)} skipped: {why}")
            continue
        hooks.append(path)
    return hooks


def run_hook(path: str, env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """(exit status or None on timeout, output). A hook that hangs is killed with everything it started."""
    try:
        proc = subprocess.Popen(
            [path],
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return 127, describe_error(exc)
    try:
        out, _unused = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _unused = proc.communicate()
        return None, out.decode("utf-8", "replace")


def run_hooks(directory: str, env_extra: dict[str, str], timeout: float, log: Log, label: str = "spot") -> None:
    """Each hook of directory in name order, one at a time, each killed after timeout; each result logged."""
    hooks = list_hooks(directory, log, label)
    if not hooks:
        log(f"{label}: no hooks in {directory}")
    env = dict(os.environ)
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(env_extra)
    for path in hooks:
        started = time.monotonic()
        rc, out = run_hook(path, env, timeout)
        took = f"{time.monotonic() - started:.1f} s"
        result = f"killed after {fmt_duration(timeout)}" if rc is None else f"exit {rc} in {took}"
        tail = clean(out, 200)
        log(f"{label}: hook {os.path.basename(path)}: {result}" + (f": {tail}" if tail else ""))
