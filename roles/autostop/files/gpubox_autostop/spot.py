"""Spot interruption notices: an IMDSv2 client (a session token, renewed before it expires) and the watcher that
polls spot/instance-action and the rebalance recommendation, backs off while the metadata service does not answer,
and on each notice, once, logs, warns with wall and runs the hooks (hooks.py) in a thread of their own."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections.abc import Callable

from .hooks import run_hooks
from .util import Backoff, Log, clean, describe_error, fmt_duration, http_request

IMDS_BACKOFF_CAP_S = 60.0
IMDS_TOKEN_TTL_S = 21600
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
SPOT_PATHS = {
    "instance-action": "/latest/meta-data/spot/instance-action",
    "rebalance": "/latest/meta-data/events/recommendations/rebalance",
}


class ImdsError(Exception):
    """The metadata service answered, but not as IMDSv2 should."""


class ImdsClient:
    """IMDSv2: a session token from PUT /latest/api/token, renewed before it expires, on every GET."""

    def __init__(
        self,
        base_url: str,
        ttl: int = IMDS_TOKEN_TTL_S,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        request: Callable[..., tuple[int, bytes]] = http_request,
    ):
        self.base, self.ttl, self.timeout, self.clock, self.request = base_url.rstrip("/"), ttl, timeout, clock, request
        self.token: str | None = None
        self.token_at = -math.inf

    def _token(self) -> str:
        now = self.clock()
        margin = min(60.0, self.ttl * 0.2)  # renew early: a token must not expire between check and use
        if self.token is None or now - self.token_at >= self.ttl - margin:
            status, body = self.request(
                f"{self.base}/latest/api/token", "PUT", {TTL_HEADER: str(self.ttl)}, self.timeout, 4096
            )
            token = body.decode("ascii", "replace").strip()
            if status != 200 or not token:
                raise ImdsError(f"token request answered HTTP {status}")
            self.token, self.token_at = token, now
        return self.token

    def get(self, path: str) -> tuple[int, bytes]:
        status, body = self._get(path)
        if status == 401:  # the token was refused (IMDS restarted, clock jump): a new one, once
            self.token = None
            status, body = self._get(path)
        return status, body

    def _get(self, path: str) -> tuple[int, bytes]:
        return self.request(f"{self.base}{path}", "GET", {TOKEN_HEADER: self._token()}, self.timeout)


class SpotWatcher:
    """Polls IMDS for the spot interruption notice and the rebalance recommendation; acts once on each."""

    def __init__(
        self,
        client: ImdsClient,
        *,
        interval: float,
        hooks_dir: str,
        hook_timeout: float,
        log: Log,
        wall: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        max_interval: float = IMDS_BACKOFF_CAP_S,
        log_every: float = 600.0,
    ):
        self.client, self.interval, self.hooks_dir, self.hook_timeout = client, interval, hooks_dir, hook_timeout
        self.log, self.wall, self.clock, self.log_every = log, wall, clock, log_every
        self.backoff = Backoff(interval, max_interval)
        self.seen: set[str] = set()
        self.hook_threads: list[threading.Thread] = []
        self._failing_logged_at: float | None = None

    @property
    def done(self) -> bool:
        return self.seen >= set(SPOT_PATHS)

    def poll_once(self) -> float:
        """Ask once; the seconds to wait before the next time (longer while IMDS does not answer)."""
        now = self.clock()
        try:
            for kind, path in SPOT_PATHS.items():
                if kind in self.seen:
                    continue
                status, body = self.client.get(path)
                if status == 200:
                    self._notice(kind, body)
                elif status != 404:
                    raise ImdsError(f"{path} answered HTTP {status}")
        except (OSError, http.client.HTTPException, ImdsError) as exc:
            delay = self.backoff.failure(now)
            if self._failing_logged_at is None or now - self._failing_logged_at >= self.log_every:
                self._failing_logged_at = now
                why, wait = describe_error(exc), fmt_duration(delay)
                self.log(f"spot: metadata service not answering ({why}); next try in {wait}")
            return delay
        if self._failing_logged_at is not None:
            self.log("spot: metadata service answers again")
            self._failing_logged_at = None
        self.backoff.success()
        return self.interval

    def run(self, stop: threading.Event) -> None:
        self.log(f"spot: watching {self.client.base} every {fmt_duration(self.interval)}")
        while not stop.is_set() and not self.done:
            try:
                delay = self.poll_once()
            except Exception as exc:  # a surprise must not end the watching for good
                delay = self.backoff.failure(self.clock())
                self.log(
                    f"spot: unexpected {type(exc).__name__}: {clean(str(exc), 120)}; next try in {fmt_duration(delay)}"
                )
            stop.wait(delay)
        if self.done:
            self.log("spot: both notices seen; the watcher stops")

    def _notice(self, kind: str, body: bytes) -> None:
        self.seen.add(kind)
        try:
            info = json.loads(body)
        except ValueError:
            info = {}
        info = info if isinstance(info, dict) else {}
        if kind == "instance-action":
            action, when = clean(str(info.get("action", "?")), 20), clean(str(info.get("time", "?")), 40)
            self.log(f"spot: interruption notice: AWS will {action} this box at {when}")
            self.wall(f"gpubox: AWS will {action} this spot box at {when} (about 2 minutes). Save your work now.")
        else:
            action, when = "", clean(str(info.get("noticeTime", "?")), 40)
            self.log(f"spot: rebalance recommendation at {when}: AWS may interrupt this box soon")
            self.wall("gpubox: AWS says this spot box is at elevated risk of interruption. Save your work.")
        env = {
            "GPUBOX_NOTICE_KIND": kind,
            "GPUBOX_NOTICE_ACTION": action,
            "GPUBOX_NOTICE_TIME": when,
            "GPUBOX_NOTICE_JSON": clean(body.decode("utf-8", "replace"), 2000),
        }
        # a thread: the watcher goes on polling (a rebalance's hooks must not delay the interruption notice)
        thread = threading.Thread(
            target=run_hooks, args=(self.hooks_dir, env, self.hook_timeout, self.log), name=f"hooks-{kind}", daemon=True
        )
        self.hook_threads.append(thread)
        thread.start()
