"""Download mirror for the test hosts: serves a directory over HTTP and injects faults on demand.

It stands in for the downloads that cannot be reached from here (NVIDIA's apt repository, the Miniconda
installer, the D2L notebooks zip). Containers reach it on the address of their podman bridge; the
control API under ``/_mirror/`` answers only on loopback.

Control API (JSON):
  POST /_mirror/fault   {"path": "/x.sh", "status": 503, "count": 2}  -> the next 2 GETs of /x.sh get 503
  POST /_mirror/fault   {"path": "/x.sh", "corrupt": true, "count": 1} -> the next GET gets wrong bytes
  POST /_mirror/reset   -> forget faults and the request log
  GET  /_mirror/log     -> [{"path": ..., "status": ...}, ...] every file request so far

Shell:  python -m tests.ground.mirror --root DIR [--bind ADDR ...] [--port N]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tests.ground.net import send_json

CONTROL = "/_mirror/"


@dataclass
class Fault:
    count: int
    status: int = 503
    corrupt: bool = False


@dataclass
class MirrorState:
    faults: dict[str, Fault] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            fault = self.faults.get(path)
            if fault is None:
                return None
            fault.count -= 1
            if fault.count <= 0:
                del self.faults[path]
            return fault


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    state: MirrorState

    def log_message(self, format, *args):  # noqa: A002 - quiet; the request log is in /_mirror/log
        pass

    def _json(self, status: int, body) -> None:
        send_json(self, status, body)

    def _control(self) -> None:
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            self._json(403, {"error": "control API answers on loopback only"})
            return
        if self.command == "GET" and self.path == CONTROL + "log":
            with self.state.lock:
                self._json(200, list(self.state.log))
            return
        if self.command == "POST" and self.path == CONTROL + "reset":
            with self.state.lock:
                self.state.faults.clear()
                self.state.log.clear()
            self._json(200, {"ok": True})
            return
        if self.command == "POST" and self.path == CONTROL + "fault":
            length = int(self.headers.get("Content-Length", "0"))
            spec = json.loads(self.rfile.read(length) or b"{}")
            path, count = spec.get("path"), int(spec.get("count", 1))
            if not isinstance(path, str) or not path.startswith("/") or count < 1:
                self._json(400, {"error": "need a 'path' starting with / and a 'count' >= 1"})
                return
            fault = Fault(count=count, status=int(spec.get("status", 503)), corrupt=bool(spec.get("corrupt")))
            with self.state.lock:
                self.state.faults[path] = fault
            self._json(200, {"ok": True})
            return
        self._json(404, {"error": f"no control endpoint {self.command} {self.path}"})

    def _record(self, status: int) -> None:
        with self.state.lock:
            self.state.log.append({"path": self.path, "status": status, "client": self.client_address[0]})

    def do_POST(self):
        if self.path.startswith(CONTROL):
            self._control()
        else:
            self.send_error(405)

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        if self.path.startswith(CONTROL):
            self._control()
            return
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        fault = self.state.take_fault(self.path.split("?")[0])
        if fault is not None and not fault.corrupt:
            self._record(fault.status)
            self.send_error(fault.status, "injected fault")
            return
        target = Path(self.translate_path(self.path))
        if not target.is_file():
            self._record(404)
            self.send_error(404)
            return
        data = target.read_bytes()
        if fault is not None:  # same length, wrong bytes: only a checksum notices
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        self._record(200)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(target)))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)


class FreebindHTTPServer(http.server.ThreadingHTTPServer):
    """Binds even to an address that appears later (a podman bridge comes up with its first container)."""

    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        super().server_bind()


class Mirror:
    """The mirror inside this process, on one or more addresses sharing one port and one state."""

    def __init__(self, root: Path, binds: tuple[str, ...] = ("127.0.0.1",), port: int = 0):
        self.root = Path(root)
        self.state = MirrorState()
        handler = type("Handler", (MirrorHandler,), {"state": self.state})
        factory = partial(handler, directory=str(self.root))
        self.servers = []
        for addr in binds:
            server = FreebindHTTPServer((addr, port), factory)
            port = server.server_address[1]  # every address on the same port
            self.servers.append(server)
        self.port = port
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self.servers]

    def url(self, addr: str = "127.0.0.1") -> str:
        return f"http://{addr}:{self.port}"

    def start(self) -> Mirror:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()

    def fault(self, path: str, count: int = 1, status: int = 503, corrupt: bool = False) -> None:
        with self.state.lock:
            self.state.faults[path] = Fault(count=count, status=status, corrupt=corrupt)

    def requests(self, path: str | None = None) -> list[dict]:
        with self.state.lock:
            return [r for r in self.state.log if path is None or r["path"] == path]

    def reset(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.log.clear()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="directory to serve")
    parser.add_argument("--bind", action="append", help="address to listen on (repeatable; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GPUBOX_MIRROR_PORT", "0")))
    args = parser.parse_args(argv)
    mirror = Mirror(args.root, tuple(args.bind or ["127.0.0.1"]), args.port).start()
    for addr in args.bind or ["127.0.0.1"]:
        print(f"serving {args.root} on {mirror.url(addr)}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        mirror.stop()


if __name__ == "__main__":
    main()
