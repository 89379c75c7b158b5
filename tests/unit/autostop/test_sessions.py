"""The ssh signal (sessions.py) against a fake /proc, a fake /dev/pts and fake clocks: which processes are SSH
sessions, a terminal typed into or busy and one left untouched, a remote editor connected and one left behind."""

from __future__ import annotations

import pytest
from autostop_fakes import NOW, FakeTime, make_proc, make_pts, pts
from gpubox_autostop.decisions import Reading
from gpubox_autostop.sessions import SessionProbe, editor_of, ssh_terminals

TICKS = 100  # clock ticks per second, as on Linux

SSHD = [(1, "systemd", 0, 0), (100, "sshd", 1, 0)]


def probe_at(tmp_path, fake: FakeTime, window_s: float = 60.0) -> SessionProbe:
    return SessionProbe(
        str(tmp_path / "proc"), str(tmp_path / "dev"), window_s, fake.clock, fake.wall, ticks_per_s=TICKS
    )


@pytest.fixture
def fake():
    return FakeTime(mono=1000.0, wall=NOW)


# --- which terminals are SSH sessions (unchanged rules) ---


def test_ssh_terminal_under_sshd_counts_and_a_tunnel_does_not(tmp_path):
    proc = make_proc(
        tmp_path / "proc",
        [
            *SSHD,  # 100: the listener
            (200, "sshd", 100, 0),  # a session: privileged monitor
            (201, "sshd", 200, 0),  # its user process
            (202, "bash", 201, pts(0)),  # the login shell on pts/0
            (203, "python", 202, pts(0)),
            (300, "sshd", 100, 0),  # ssh -N: a session with no terminal and no children
            (301, "sshd", 300, 0),
        ],
    )
    assert ssh_terminals(str(proc)) == ["pts/0"]


def test_openssh_98_sessions_and_other_terminals(tmp_path):
    proc = make_proc(
        tmp_path / "proc",
        [
            *SSHD,
            (400, "sshd-session", 100, 0),  # OpenSSH 9.8+ (Debian 13)
            (401, "sshd-session", 400, 0),
            (402, "tmux: client", 401, pts(300)),  # pts/300: the second pts major
            (500, "conmon", 1, 0),
            (501, "bash", 500, pts(5)),  # podman exec -t: a terminal, not SSH
            (600, "tmux: server", 1, pts(7)),  # a detached tmux: not under sshd
            (601, "bash", 600, pts(8)),
            (700, "getty", 1, (4 << 8) | 1),  # tty1: not a pts
            (800, "weird) (name", 401, pts(9)),  # a comm with parentheses and spaces
        ],
    )
    assert ssh_terminals(str(proc)) == ["pts/9", "pts/300"]


def test_ssh_scan_survives_garbage_and_vanished_processes(tmp_path):
    proc = make_proc(tmp_path / "proc", [*SSHD, (101, "bash", 100, pts(2))])
    (proc / "102").mkdir()  # vanished: no stat
    (proc / "103").mkdir()
    (proc / "103" / "stat").write_text("garbage")
    (proc / "self").mkdir()
    (proc / "104").mkdir()
    (proc / "104" / "stat").write_text("104 (loop) S 105 0 0 34816\n")  # a parent loop: 104 <-> 105
    (proc / "105").mkdir()
    (proc / "105" / "stat").write_text("105 (loop) S 104 0 0 0\n")
    assert ssh_terminals(str(proc)) == ["pts/2"]
    assert ssh_terminals(str(tmp_path / "missing")) == []
    assert isinstance(ssh_terminals("/proc"), list)  # the real one reads
    assert isinstance(SessionProbe()(), Reading)


# --- a terminal: typed into, busy, or untouched ---


def test_a_terminal_counts_while_typed_into_and_not_once_left_untouched(tmp_path, fake):
    make_proc(tmp_path / "proc", [*SSHD, (200, "sshd", 100, 0), (201, "bash", 200, pts(0))])
    make_pts(tmp_path / "dev", 0, NOW - 5)  # a key pressed 5 s ago
    probe = probe_at(tmp_path, fake)
    assert probe() == Reading("ssh", True, "ssh terminal pts/0 typed 5 s ago", activity_ago=5.0)
    fake.mono += 60  # nothing typed since
    assert probe() == Reading("ssh", True, "ssh terminal pts/0 typed 1 min ago", activity_ago=65.0)
    fake.mono += 60  # past the window (a look, and the tty's 8 s steps): open, untouched, not use
    assert probe() == Reading("ssh", detail="ssh: terminal pts/0 untouched 2 min", activity_ago=125.0)
    make_pts(tmp_path / "dev", 0, fake.wall() - 1)  # typed again
    assert probe().active


def test_an_untouched_terminal_reports_its_last_input_for_the_idle_clock(tmp_path, fake):
    make_proc(tmp_path / "proc", [*SSHD, (201, "bash", 100, pts(3)), (301, "bash", 100, pts(4))])
    make_pts(tmp_path / "dev", 3, NOW - 3600)
    make_pts(tmp_path / "dev", 4, NOW - 600)  # the newer of the two counts
    reading = probe_at(tmp_path, fake)()
    assert reading == Reading(
        "ssh", detail="ssh: terminal pts/3 untouched 1 h, pts/4 untouched 10 min", activity_ago=600.0
    )


def test_a_terminal_counts_while_a_process_in_it_uses_cpu(tmp_path, fake):
    def at(shell_ticks: int, job_ticks: int, other_ticks: int = 0):
        make_proc(
            tmp_path / "proc",
            [
                *SSHD,
                (201, "bash", 100, pts(1), shell_ticks),
                (202, "python", 201, pts(1), job_ticks),  # started in the terminal
                (900, "stress", 1, 0, other_ticks),  # no terminal: the cpu signal's business, not this one's
            ],
        )

    make_pts(tmp_path / "dev", 1, NOW - 3600)  # typed into an hour ago
    probe = probe_at(tmp_path, fake)
    at(10, 0)
    assert not probe().active  # the first look has nothing to compare with
    fake.mono += 60
    at(10, 3000, other_ticks=6000)  # 30 s of CPU in 60 s: half a core
    assert probe() == Reading("ssh", True, "ssh terminal pts/1 busy (50% of a core)", activity_ago=3660.0)
    fake.mono += 60
    at(11, 3030)  # 0.31 s in 60 s: 0.5 %, below the threshold (a prompt, a clock in the corner)
    assert not probe().active
    fake.mono += 60
    make_proc(tmp_path / "proc", [(203, "make", 201, pts(1), 9000)])  # new since the last look: measured next
    assert not probe().active
    fake.mono += 60
    make_proc(tmp_path / "proc", [(203, "make", 201, pts(1), 12000)])
    assert probe().detail == "ssh terminal pts/1 busy (50% of a core)"


def test_a_terminal_without_a_readable_device_is_not_use(tmp_path, fake):
    make_proc(tmp_path / "proc", [*SSHD, (201, "bash", 100, pts(6))])
    assert probe_at(tmp_path, fake)() == Reading("ssh", detail="ssh: terminal pts/6 untouched")


def test_no_session(tmp_path, fake):
    make_proc(tmp_path / "proc", [*SSHD, (300, "sshd", 100, 0), (301, "sshd", 300, 0)])  # a tunnel
    assert probe_at(tmp_path, fake)() == Reading("ssh", detail="ssh: no session in use")


# --- remote editors ---

VSCODE_CLI = "/home/ubuntu/.vscode-server/code-e170252f762678dec6ca2cc69aba1570769a5d39"
VSCODE_NODE = "/home/ubuntu/.vscode-server/cli/servers/Stable-e170252f76/server/node"
LEGACY_NODE = "/home/ubuntu/.vscode-server/bin/e170252f762678dec6ca2cc69aba1570769a5d39/node"


@pytest.mark.parametrize(
    ("argv", "editor"),
    [
        ([VSCODE_CLI, "command-shell", "--cli-data-dir", "/home/ubuntu/.vscode-server/cli"], "vscode"),
        ([LEGACY_NODE, LEGACY_NODE.replace("node", "out/server-main.js"), "--start-server"], "vscode"),
        (["sh", "/home/u/.vscode-server-insiders/bin/abc/bin/code-server-insiders", "--start-server"], "vscode"),
        (["/home/u/.cursor-server/bin/abc/node", "/home/u/.cursor-server/bin/abc/out/server-main.js"], "cursor"),
        (["/home/u/.windsurf-server/bin/abc/node"], "windsurf"),
        (["/home/u/.vscodium-server/bin/abc/node"], "vscodium"),
        (
            ["/bin/sh", "/home/u/.cache/JetBrains/RemoteDev/dist/abc_ideaIU/bin/remote-dev-server.sh", "run"],
            "jetbrains",
        ),
        (["/opt/idea/jbr/bin/java", "-cp", "x", "com.intellij.idea.Main", "remoteDevHost"], None),
        (["/opt/pycharm/bin/remote-dev-server.sh", "run", "/home/u/project"], "jetbrains"),
        (["bash"], None),
        (["python", "train.py", "--out", "/home/u/.vscode-server/notes"], None),  # a path as an argument only
        ([], None),
    ],
)
def test_editor_servers_by_their_paths(argv, editor):
    assert editor_of(argv) == editor


def test_a_connected_remote_editor_counts_and_one_left_behind_does_not(tmp_path, fake):
    processes = [
        *SSHD,
        (200, "sshd", 100, 0),
        (201, "sshd", 200, 0),  # sshd: ubuntu@notty, the editor's connection
        (202, "bash", 201, 0),
        (203, "code-e170252f76", 202, 0, 0, [VSCODE_CLI, "command-shell"]),
        (204, "node", 203, 0, 0, [VSCODE_NODE, "--start-server"]),
        (500, "node", 1, 0, 0, [LEGACY_NODE, "--start-server"]),  # an older server, its client long gone
    ]
    make_proc(tmp_path / "proc", processes)
    probe = probe_at(tmp_path, fake)
    assert probe() == Reading("ssh", True, "ssh vscode remote session (pid 203)")
    # The client disconnects: sshd's session ends, the server stays (for a reconnect) under PID 1.
    for pid in (200, 201, 202, 203):
        for name in ("stat", "cmdline"):
            (tmp_path / "proc" / str(pid) / name).unlink(missing_ok=True)
        (tmp_path / "proc" / str(pid)).rmdir()
    make_proc(tmp_path / "proc", [(204, "node", 1, 0, 0, [VSCODE_NODE, "--start-server"])])
    assert probe() == Reading("ssh", detail="ssh: no session in use")


def test_a_jetbrains_gateway_backend_counts_with_a_terminal_beside_it(tmp_path, fake):
    gateway = "/home/u/.cache/JetBrains/RemoteDev/dist/4a3c_ideaIU-2024.1/bin/remote-dev-server.sh"
    make_proc(
        tmp_path / "proc",
        [
            *SSHD,
            (400, "sshd-session", 100, 0),
            (401, "sshd-session", 400, 0),
            (402, "remote-dev-serv", 401, 0, 0, ["/bin/sh", gateway, "run", "/home/u/project"]),
            (403, "java", 402, 0, 0, ["/home/u/.cache/JetBrains/RemoteDev/dist/4a3c/jbr/bin/java", "-Xmx2g"]),
            (404, "bash", 401, pts(2)),
        ],
    )
    make_pts(tmp_path / "dev", 2, NOW - 7200)
    assert probe_at(tmp_path, fake)() == Reading(
        "ssh", True, "ssh jetbrains remote session (pid 402)", activity_ago=7200.0
    )
