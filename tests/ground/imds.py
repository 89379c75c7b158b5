"""Stand-in EC2 instance metadata service (IMDSv2 only) for the autostop agent's spot-notice watcher.

It is as strict as the real one about what the agent must get right:
  PUT /latest/api/token     needs X-aws-ec2-metadata-token-ttl-seconds, a whole number 1..21600 (else 400),
                            refuses a request with X-Forwarded-For (403, as IMDS does), answers a token
  GET /latest/...           needs X-aws-ec2-metadata-token with a token it issued that has not expired:
                            without one (IMDSv1) or with a bad or expired one -> 401
  GET /latest/meta-data/spot/instance-action               404 until a notice is set, then
                                                            {"action": "stop", "time": "2025-01-01T00:02:00Z"}
  GET /latest/meta-data/events/recommendations/rebalance   404 until set, then {"noticeTime": "...Z"}
  GET /latest/meta-data/instance-id                         i-0123456789abcdef0 (or the asking box's own)

Serving several instances (the EC2 twin, tests/ground/twin.py): with ``resolve`` (client address -> instance id)
each box sees its own instance id and its own notices, and a client that is no known box gets 404 for every
document; with ``on_due`` (instance id, action) the service tells EC2 when a notice's time has come, once per
notice, as the real interruption follows its notice, and then drops the notice (a box started again finds none,
as on EC2). Without them it serves one instance (INSTANCE_ID).

Control, from Python (``ImdsStandin``: set_notice(), set_rebalance(), clear(), expire_tokens(), requests)
or over HTTP, without a token (JSON bodies are optional; "instance" names the box when several are served):
  POST /_control/notice      {"action": "terminate", "time": "...Z", "instance": "i-..."}
                                                                        default: stop, two minutes from now
  POST /_control/rebalance   {"noticeTime": "...Z", "instance": "i-..."}   default: now
  POST /_control/clear       no notice, no rebalance recommendation (for every instance)
  POST /_control/expire      every token issued so far stops working
  GET  /_control/stats       {"requests": {"PUT /latest/api/token": 1, "status 401": 2, ...}, "tokens": 1, ...}

Shell:  python -m tests.ground.imds [--host 127.0.0.1] [--port 0]
        (prints "imds stand-in on http://127.0.0.1:PORT", then serves until interrupted)
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import http.server
import json
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

from tests.ground.net import BackgroundServer

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600
INSTANCE_ACTION = "/latest/meta-data/spot/instance-action"
REBALANCE = "/latest/meta-data/events/recommendations/rebalance"
INSTANCE_ID = "i-0123456789abcdef0"
CONTROL = "/_control/"


def utc_stamp(epoch: float) -> str:
    """IMDS's time format: 2025-01-01T00:02:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def epoch_of(stamp: str) -> float:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


class ImdsStandin(BackgroundServer):
    """The service inside this process. ``clock`` decides token expiry (a fake clock makes it testable)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        resolve: Callable[[str], str | None] | None = None,
        on_due: Callable[[str, str], None] | None = None,
    ):
        self.clock, self.resolve, self.on_due = clock, resolve, on_due
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        # by instance id (None: the one instance served without `resolve`)
        self._notices: dict[str | None, dict] = {}
        self._rebalances: dict[str | None, dict] = {}
        self._due: set[tuple[str | None, str]] = set()  # notices already acted on (instance, time)
        self._ended = threading.Event()
        handler = type("Handler", (_Handler,), {"imds": self})
        self._serve(handler, host, port, "imds-standin")

    def start(self):
        if self.on_due:
            threading.Thread(target=self._watch_due, name="imds-due", daemon=True).start()
        return super().start()

    def stop(self) -> None:
        self._ended.set()
        super().stop()

    def set_notice(self, action: str = "stop", when: str | None = None, instance: str | None = None) -> dict:
        with self._lock:
            self._notices[instance] = {"action": action, "time": when or utc_stamp(time.time() + 120)}
            return dict(self._notices[instance])

    def set_rebalance(self, when: str | None = None, instance: str | None = None) -> dict:
        with self._lock:
            self._rebalances[instance] = {"noticeTime": when or utc_stamp(time.time())}
            return dict(self._rebalances[instance])

    def clear(self) -> None:
        with self._lock:
            self._notices.clear()
            self._rebalances.clear()

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def count(self, key: str) -> int:
        with self._lock:
            return self.requests[key]

    def stats(self) -> dict:
        with self._lock:
            live = sum(1 for expiry in self._tokens.values() if expiry > self.clock())
            return {
                "requests": dict(self.requests),
                "tokens": live,
                "notice": self._notices.get(None),
                "rebalance": self._rebalances.get(None),
                "notices": {str(k): v for k, v in self._notices.items()},
            }

    def instance_of(self, client: str) -> str | None:
        """The instance a client address is (None: the one instance, when not serving several)."""
        return self.resolve(client) if self.resolve else None

    def _watch_due(self) -> None:
        """Tell EC2 (on_due) when a notice's time has come, once per notice."""
        while not self._ended.wait(0.25):
            with self._lock:
                due = [
                    (instance, notice)
                    for instance, notice in self._notices.items()
                    if (instance, notice["time"]) not in self._due and epoch_of(notice["time"]) <= time.time()
                ]
                self._due.update((instance, notice["time"]) for instance, notice in due)
            for instance, notice in due:
                self.on_due(instance, notice["action"])
                # The interruption is done: as on EC2, the box that starts again has no notice to find.
                with self._lock:
                    if self._notices.get(instance) == notice:
                        del self._notices[instance]

    # --- what the handler asks, under the lock -------------------------------------------------------

    def _record(self, key: str, status: int) -> None:
        with self._lock:
            self.requests[key] += 1
            self.requests[f"status {status}"] += 1
            self.requests["total"] += 1

    def _issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(42)
        with self._lock:
            self._tokens[token] = self.clock() + ttl
        return token

    def _valid(self, token: str | None) -> bool:
        with self._lock:
            expiry = self._tokens.get(token or "")
            return expiry is not None and self.clock() < expiry

    def _document(self, path: str, instance: str | None) -> dict | str | None:
        with self._lock:
            if path == INSTANCE_ACTION:
                return dict(self._notices[instance]) if instance in self._notices else None
            if path == REBALANCE:
                return dict(self._rebalances[instance]) if instance in self._rebalances else None
        if path == "/latest/meta-data/instance-id":
            return instance or INSTANCE_ID
        if path in ("/latest/meta-data", "/latest/meta-data/"):
            return "events/\ninstance-id\nspot/"
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    imds: ImdsStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet; ImdsStandin.requests counts instead
        pass

    def _answer(self, status: int, body: str | dict = "", ctype: str = "text/plain", headers: dict | None = None):
        key = f"{self.command} {self.path.split('?', 1)[0]}"
        self.imds._record(key, status)
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict) else ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            value = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def do_PUT(self):
        path = self.path.split("?", 1)[0]
        if path != "/latest/api/token":
            return self._answer(405, "Method Not Allowed")
        if self.headers.get("X-Forwarded-For") is not None:
            return self._answer(403, "Forbidden")
        ttl = (self.headers.get(TTL_HEADER) or "").strip()
        if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL:
            return self._answer(400, "Bad Request")
        token = self.imds._issue(int(ttl))
        return self._answer(200, token, headers={TTL_HEADER: ttl})

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == CONTROL + "stats":
            return self._answer(200, self.imds.stats())
        if not path.startswith("/latest/"):
            return self._answer(404, "Not Found")
        if not self.imds._valid(self.headers.get(TOKEN_HEADER)):
            return self._answer(401, "Unauthorized")
        instance = self.imds.instance_of(self.client_address[0])
        if self.imds.resolve and instance is None:
            return self._answer(404, "Not Found")  # no box of the ones served
        document = self.imds._document(path, instance)
        if document is None:
            return self._answer(404, "Not Found")
        return self._answer(200, document)

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        body = self._body()
        instance = body.get("instance")
        if path == CONTROL + "notice":
            return self._answer(200, self.imds.set_notice(str(body.get("action", "stop")), body.get("time"), instance))
        if path == CONTROL + "rebalance":
            return self._answer(200, self.imds.set_rebalance(body.get("noticeTime"), instance))
        if path == CONTROL + "clear":
            self.imds.clear()
            return self._answer(200, {})
        if path == CONTROL + "expire":
            self.imds.expire_tokens()
            return self._answer(200, {})
        return self._answer(405, "Method Not Allowed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    imds = ImdsStandin(args.host, args.port).start()
    print(f"imds stand-in on {imds.url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    imds.stop()


if __name__ == "__main__":
    main()
