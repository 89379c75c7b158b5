"""The spot watcher and its IMDSv2 client against the stand-in metadata service (tests/ground/imds.py), and the
interrupt hooks: which files run, and a hung one is killed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from autostop_fakes import Clock
from gpubox_autostop.hooks import list_hooks, run_hooks
from gpubox_autostop.spot import ImdsClient, SpotWatcher

from tests.ground.imds import INSTANCE_ACTION, REBALANCE, ImdsStandin


@pytest.fixture
def imds_fake_clock():
    clock = Clock()
    server = ImdsStandin(clock=clock).start()
    yield server, clock
    server.stop()


def test_the_imds_token_is_renewed_before_it_expires(imds_fake_clock):
    server, clock = imds_fake_clock
    client = ImdsClient(server.url, ttl=100, clock=clock)
    for t in range(0, 400, 5):
        clock.now = float(t)
        assert client.get(INSTANCE_ACTION)[0] == 404
    assert server.count("status 401") == 0
    assert server.count("PUT /latest/api/token") == 5  # at 0, 80, 160, 240, 320: 20 s before each expiry
    assert server.count(f"GET {INSTANCE_ACTION}") == 80


def test_a_refused_token_is_replaced_once(imds_fake_clock):
    server, clock = imds_fake_clock
    client = ImdsClient(server.url, ttl=21600, clock=clock)
    assert client.get(REBALANCE)[0] == 404
    server.expire_tokens()
    assert client.get(REBALANCE)[0] == 404
    assert server.count("status 401") == 1 and server.count("PUT /latest/api/token") == 2


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_watcher_backs_off_while_imds_does_not_answer_and_never_spins(tmp_path):
    clock, lines = Clock(), []
    port = free_port()
    client = ImdsClient(f"http://127.0.0.1:{port}", clock=clock, timeout=0.5)
    watcher = SpotWatcher(
        client, interval=5.0, hooks_dir=str(tmp_path), hook_timeout=5, log=lines.append, wall=lines.append, clock=clock
    )
    delays = []
    for _ in range(8):
        delays.append(watcher.poll_once())
        clock.now += delays[-1]
    assert delays == [5, 10, 20, 40, 60, 60, 60, 60]
    assert len(lines) == 1 and lines[0].startswith("spot: metadata service not answering (")
    assert lines[0].endswith("next try in 5 s")
    clock.now += 600
    watcher.poll_once()
    assert len(lines) == 2  # reminded at most every 10 min
    server = ImdsStandin(port=port, clock=clock).start()
    try:
        assert watcher.poll_once() == 5.0
        assert lines[-1] == "spot: metadata service answers again"
    finally:
        server.stop()


def write_hook(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    hook = directory / name
    hook.write_text(f"#!/bin/sh\n{body}\n")
    hook.chmod(mode)
    return hook


def test_a_notice_runs_the_hooks_within_seconds_and_not_before(tmp_path):
    hooks = tmp_path / "on-interrupt.d"
    hooks.mkdir()
    record = tmp_path / "record"
    write_hook(
        hooks,
        "10-save",
        f'echo "$GPUBOX_NOTICE_KIND $GPUBOX_NOTICE_ACTION $GPUBOX_NOTICE_TIME $(date +%s.%N)" >> {record}\necho saved',
    )
    write_hook(hooks, "20-second", f'echo "second $GPUBOX_NOTICE_KIND" >> {record}')
    lines, walls = [], []
    server = ImdsStandin().start()
    stop = threading.Event()
    watcher = SpotWatcher(
        ImdsClient(server.url),
        interval=0.1,
        hooks_dir=str(hooks),
        hook_timeout=5,
        log=lines.append,
        wall=walls.append,
    )
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.6)
        assert not record.exists()  # polled, but nothing to act on
        assert server.count(f"GET {INSTANCE_ACTION}") >= 3
        noticed_at = time.time()
        server.set_notice("stop", "2030-01-01T00:02:00Z")
        wait_for(lambda: record.exists() and "second" in record.read_text(), 10)
        first_line, second_line = record.read_text().splitlines()
        kind, action, when, ran_at = first_line.split()
        assert (kind, action, when) == ("instance-action", "stop", "2030-01-01T00:02:00Z")
        assert noticed_at <= float(ran_at) <= noticed_at + 10
        assert second_line == "second instance-action"
        assert walls == [
            "gpubox: AWS will stop this spot box at 2030-01-01T00:02:00Z (about 2 minutes). Save your work now."
        ]
        assert "spot: interruption notice: AWS will stop this box at 2030-01-01T00:02:00Z" in lines
        wait_for(lambda: any(line.startswith("spot: hook 20-second: exit 0") for line in lines), 5)
        assert any(line.startswith("spot: hook 10-save: exit 0 in ") and line.endswith(": saved") for line in lines)
        # once: the notice stays up, the hooks do not run again; the rebalance recommendation is its own notice
        time.sleep(0.3)
        assert len(record.read_text().splitlines()) == 2
        server.set_rebalance("2030-01-01T00:00:00Z")
        wait_for(lambda: record.read_text().count("rebalance") == 2, 10)
        thread.join(5)
        assert not thread.is_alive()  # both seen: nothing more to watch
        assert server.count("status 401") == 0 and server.count("PUT /latest/api/token") == 1
    finally:
        stop.set()
        server.stop()


def wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_only_safe_executables_are_hooks_and_a_hung_hook_is_killed(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    write_hook(hooks, "30-slow", "sleep 30 & wait")
    write_hook(hooks, "10-fast", "echo fast; exit 3")
    write_hook(hooks, "20-not-executable", "echo no", mode=0o644)
    write_hook(hooks, "25-world-writable", "echo no", mode=0o777)
    write_hook(hooks, ".hidden", "echo no")
    write_hook(hooks, "40-old.dpkg-old", "echo no")
    write_hook(hooks, "50-backup~", "echo no")
    (hooks / "60-dir").mkdir()
    lines: list[str] = []
    assert [Path(h).name for h in list_hooks(str(hooks), lines.append)] == ["10-fast", "30-slow"]
    assert lines == ["spot: hook 25-world-writable skipped: group- or world-writable"]
    lines.clear()
    started = time.monotonic()
    run_hooks(str(hooks), {"GPUBOX_NOTICE_KIND": "instance-action"}, 0.5, lines.append)
    assert time.monotonic() - started < 5
    assert lines[1].startswith("spot: hook 10-fast: exit 3 in ") and lines[1].endswith(": fast")
    assert lines[2] == "spot: hook 30-slow: killed after 0.5 s"
    assert list_hooks(str(tmp_path / "missing"), lines.append) == []
