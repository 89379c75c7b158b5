"""A test network's host address exists as soon as the proving ground hands it out, before any box joins: podman
creates the bridge only when a first container attaches, so a server bound to the address would otherwise fail
with errno 99 on a machine that never ran the suite."""

import os
import socket
import subprocess

from tests.ground import hosts


def test_a_new_network_can_be_bound_to_before_any_box_joins():
    name = f"gpubox-fresh-probe-{os.getpid()}"
    subprocess.run(["podman", "network", "rm", "-f", name], capture_output=True)
    try:
        gateway = hosts.ensure_free_network(name)  # the rehearsal's, molecule's and the twin's path
        with socket.socket() as server:
            server.bind((gateway, 0))  # errno 99 without the fix
            server.listen()
            port = server.getsockname()[1]
            socket.create_connection((gateway, port), timeout=5).close()
        # nothing of the project's is left running on it, and asking again is a no-op
        on_it = subprocess.run(["podman", "ps", "-aq", "--filter", f"network={name}"], capture_output=True, text=True)
        assert on_it.stdout.split() == []
        assert hosts.ensure_network(name) == gateway
    finally:
        subprocess.run(["podman", "network", "rm", "-f", name], capture_output=True)
    # removing the network takes the bridge with it: tests/ground/fresh.sh relies on this for a new machine's state
    assert not hosts.is_local_address(gateway)
