"""The stand-in instance metadata service (tests/ground/imds.py): as strict as IMDSv2 about tokens."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT
from tests.ground.imds import INSTANCE_ACTION, REBALANCE, TOKEN_HEADER, TTL_HEADER, ImdsStandin


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(url: str, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def imds(clock):
    server = ImdsStandin(clock=clock).start()
    yield server
    server.stop()


def token(imds: ImdsStandin, ttl: str = "60") -> str:
    status, body = call(imds.url, "PUT", "/latest/api/token", {TTL_HEADER: ttl})
    assert status == 200
    return body


@pytest.mark.parametrize("ttl", [None, "", "0", "21601", "abc", "-5", "1.5"])
def test_a_token_needs_a_ttl_from_1_to_21600(imds, ttl):
    headers = {} if ttl is None else {TTL_HEADER: ttl}
    assert call(imds.url, "PUT", "/latest/api/token", headers)[0] == 400


@pytest.mark.parametrize("ttl", ["1", "21600"])
def test_a_token_is_issued_for_a_ttl_in_range(imds, ttl):
    assert len(token(imds, ttl)) > 20


def test_a_forwarded_token_request_is_refused(imds):
    headers = {TTL_HEADER: "60", "X-Forwarded-For": "10.0.0.1"}
    assert call(imds.url, "PUT", "/latest/api/token", headers)[0] == 403


def test_imdsv1_gets_without_a_token_are_refused(imds):
    assert call(imds.url, "GET", INSTANCE_ACTION)[0] == 401
    assert call(imds.url, "GET", "/latest/meta-data/instance-id")[0] == 401
    assert call(imds.url, "GET", INSTANCE_ACTION, {TOKEN_HEADER: "made-up"})[0] == 401


def test_a_token_works_until_it_expires(imds, clock):
    good = token(imds, "10")
    assert call(imds.url, "GET", "/latest/meta-data/instance-id", {TOKEN_HEADER: good}) == (200, "i-0123456789abcdef0")
    clock.now += 9.9
    assert call(imds.url, "GET", INSTANCE_ACTION, {TOKEN_HEADER: good})[0] == 404
    clock.now += 0.2
    assert call(imds.url, "GET", INSTANCE_ACTION, {TOKEN_HEADER: good})[0] == 401


def test_notices_are_404_until_set_then_json(imds):
    headers = {TOKEN_HEADER: token(imds)}
    assert call(imds.url, "GET", INSTANCE_ACTION, headers)[0] == 404
    assert call(imds.url, "GET", REBALANCE, headers)[0] == 404
    imds.set_notice("terminate", "2030-01-01T00:02:00Z")
    status, body = call(imds.url, "GET", INSTANCE_ACTION, headers)
    assert status == 200 and json.loads(body) == {"action": "terminate", "time": "2030-01-01T00:02:00Z"}
    assert call(imds.url, "GET", REBALANCE, headers)[0] == 404
    imds.set_rebalance()
    status, body = call(imds.url, "GET", REBALANCE, headers)
    assert status == 200 and json.loads(body)["noticeTime"].endswith("Z")
    imds.clear()
    assert call(imds.url, "GET", INSTANCE_ACTION, headers)[0] == 404


def test_default_notice_is_stop_in_two_minutes(imds):
    notice = imds.set_notice()
    assert notice["action"] == "stop"
    assert len(notice["time"]) == 20 and notice["time"].endswith("Z")


def test_control_endpoints_and_request_counter(imds):
    headers = {TOKEN_HEADER: token(imds)}
    body = json.dumps({"action": "hibernate"}).encode()
    assert call(imds.url, "POST", "/_control/notice", {"Content-Type": "application/json"}, body)[0] == 200
    assert json.loads(call(imds.url, "GET", INSTANCE_ACTION, headers)[1])["action"] == "hibernate"
    assert call(imds.url, "POST", "/_control/rebalance")[0] == 200
    assert call(imds.url, "GET", REBALANCE, headers)[0] == 200
    assert call(imds.url, "POST", "/_control/expire")[0] == 200
    assert call(imds.url, "GET", REBALANCE, headers)[0] == 401
    assert call(imds.url, "POST", "/_control/clear")[0] == 200
    stats = json.loads(call(imds.url, "GET", "/_control/stats")[1])
    assert stats["notice"] is None and stats["rebalance"] is None and stats["tokens"] == 0
    assert stats["requests"]["PUT /latest/api/token"] == 1
    assert stats["requests"][f"GET {INSTANCE_ACTION}"] == 1
    assert stats["requests"][f"GET {REBALANCE}"] == 2
    assert stats["requests"]["status 401"] == 1
    assert imds.count(f"GET {REBALANCE}") == 2


def test_other_methods_and_paths(imds):
    assert call(imds.url, "PUT", "/latest/meta-data/instance-id", {TTL_HEADER: "60"})[0] == 405
    assert call(imds.url, "POST", "/latest/api/token")[0] == 405
    assert call(imds.url, "GET", "/elsewhere")[0] == 404
    assert call(imds.url, "GET", "/latest/meta-data/nothing", {TOKEN_HEADER: token(imds)})[0] == 404


def test_runs_from_the_shell_and_is_programmable_over_http():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.ground.imds", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("imds stand-in on http://127.0.0.1:")
        url = line.split()[-1]
        status, good = call(url, "PUT", "/latest/api/token", {TTL_HEADER: "21600"})
        assert status == 200
        assert call(url, "GET", INSTANCE_ACTION, {TOKEN_HEADER: good})[0] == 404
        assert call(url, "POST", "/_control/notice")[0] == 200
        assert json.loads(call(url, "GET", INSTANCE_ACTION, {TOKEN_HEADER: good})[1])["action"] == "stop"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
