"""Fault-injecting HTTP proxy in front of the local EC2 API: makes EC2 fail the way it does when a zone has no GPUs.

    client (Ansible modules, aws_ec2 inventory, boto3)
        -> AWS_ENDPOINT_URL=http://127.0.0.1:PROXYPORT -> this proxy -> moto server (upstream)

Every request passes through unchanged (method, path, query, headers with Host and the SigV4 ones, body) unless a
rule matches it; a matching request is answered here with EC2's XML error document and is never forwarded, so
nothing is half-created upstream. EC2's query protocol: POST form bodies, Action=RunInstances&InstanceType=...

What a request is, for matching and for the log:
  action         the Action parameter
  instance_type  InstanceType (RunInstances), LaunchSpecification.InstanceType (RequestSpotInstances)
  zone           Placement.AvailabilityZone, else the zone of SubnetId / NetworkInterface.1.SubnetId, asked of
                 upstream with DescribeSubnets (marked as the tests' own call, see ec2api.TEST_AGENT); the same
                 under LaunchSpecification. for RequestSpotInstances. None when the request names neither
                 (EC2 would pick a zone); a launch template's type and subnet are not looked into.
  market         'spot' for InstanceMarketOptions.MarketType=spot and for RequestSpotInstances, else 'on-demand'
For StartInstances (a stopped box started again, which EC2 refuses like a launch when the zone has no capacity)
the three are the first instance's (InstanceId.1), asked of upstream with DescribeInstances (the tests' own call).

A rule: action (required), instance_type (fnmatch pattern: 'g4dn.*'), zone, market (each None = any), code,
message (default: EC2's wording for the code; {instance_type} {zone} {action} are filled in), status (default
DEFAULT_STATUS[code], else 400), times (None = always). The first rule in order that matches and has times left
answers; a rule with times=N answers N requests, then is spent. Every request seen is logged:
{"action", "instance_type", "zone", "market", "outcome": "passed" | the error code, "status"}. botocore's own
retries are separate requests: each attempt is one log entry and uses up one of a rule's times.

Python:
    with FaultProxy(api.endpoint) as proxy:              # or FaultProxy(...).start() / .stop()
        proxy.add_rule("RunInstances", "InsufficientInstanceCapacity", instance_type="g4dn.xlarge",
                       zone="us-west-2a", times=2)
        env = proxy.env                                  # AWS_ENDPOINT_URL points at the proxy
        ...; proxy.requests / proxy.outcomes("RunInstances"); proxy.clear()

Shell:  python -m tests.ground.ec2faults --upstream http://127.0.0.1:MOTO [--port P] [--rule JSON]...
        prints `export AWS_ENDPOINT_URL=...`, serves until interrupted. Control endpoints (under /_faults/, a path
        no EC2 request uses; EC2 requests go to /):
  POST   /_faults/rules   a JSON rule or list of rules (keys as add_rule's)  -> {"rules": [...]}
  GET    /_faults/rules   the rules, with times left
  DELETE /_faults/rules   no rules
  GET    /_faults/log     the request log
  DELETE /_faults/log     empty log
  e.g. curl -X POST localhost:P/_faults/rules \
         -d '{"action": "RunInstances", "code": "InsufficientInstanceCapacity", "zone": "us-west-2a"}'

HTTP statuses (DEFAULT_STATUS): AWS answers InsufficientInstanceCapacity with 500 (a server error in EC2's error
code list; seen on the wire) and RequestLimitExceeded with 503 (botocore's data/_retry.json matches it on 503);
client errors (Unsupported, VcpuLimitExceeded, InstanceLimitExceeded, MaxSpotInstanceCountExceeded,
SpotMaxPriceTooLow, ...) with 400. botocore's standard retry mode (the default: 3 attempts) retries every
500/502/503/504 and the throttling codes, so a 500 InsufficientInstanceCapacity is retried by botocore itself.
"""

from __future__ import annotations

import argparse
import fnmatch
import http.client
import http.server
import json
import re
import signal
import sys
import threading
import urllib.parse
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from tests.ground.ec2api import REGION, TEST_AGENT
from tests.ground.net import BackgroundServer

CONTROL = "/_faults/"

# Statuses AWS answers these codes with; any other code gets 400 (EC2's client errors).
DEFAULT_STATUS: dict[str, int] = {
    "InsufficientInstanceCapacity": 500,
    "InsufficientHostCapacity": 500,
    "InsufficientReservedInstanceCapacity": 500,
    "InternalError": 500,
    "Unavailable": 503,
    "RequestLimitExceeded": 503,
    "EC2ThrottledException": 503,
}

# EC2's wording, so that what a playbook prints looks like the real thing.
DEFAULT_MESSAGE: dict[str, str] = {
    "InsufficientInstanceCapacity": (
        "We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested "
        "({zone}). Our system will be working on provisioning additional capacity. You can currently get "
        "{instance_type} capacity by not specifying an Availability Zone in your request or choosing other zones."
    ),
    "Unsupported": (
        "Your requested instance type ({instance_type}) is not supported in your requested Availability Zone "
        "({zone}). Please retry your request by not specifying an Availability Zone or choosing other zones."
    ),
    "VcpuLimitExceeded": (
        "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket "
        "that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request "
        "to request an adjustment to this limit."
    ),
    "MaxSpotInstanceCountExceeded": "Max spot instance count exceeded",
    "SpotMaxPriceTooLow": "Your Spot request price is lower than the minimum required Spot request fulfillment price.",
    "RequestLimitExceeded": "Request limit exceeded.",
    "InternalError": "An internal error has occurred",
    "Unavailable": "The server is overloaded and can't handle the request.",
}

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}

_LAUNCH_ACTIONS = {"RunInstances": "", "RequestSpotInstances": "LaunchSpecification."}


@dataclass
class Rule:
    action: str
    code: str
    instance_type: str | None = None
    zone: str | None = None
    market: str | None = None
    message: str | None = None
    status: int | None = None
    times: int | None = None  # None: always

    def __post_init__(self) -> None:
        if self.market not in (None, "spot", "on-demand"):
            raise ValueError(f"market must be 'spot' or 'on-demand', not {self.market!r}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be 1 or more (None: always)")
        if self.status is None:
            self.status = DEFAULT_STATUS.get(self.code, 400)

    def matches(self, seen: dict[str, Any]) -> bool:
        if self.times == 0 or seen["action"] != self.action:
            return False
        if self.instance_type is not None and not fnmatch.fnmatchcase(seen["instance_type"] or "", self.instance_type):
            return False
        if self.zone is not None and seen["zone"] != self.zone:
            return False
        return self.market is None or seen["market"] == self.market

    def text(self, seen: dict[str, Any]) -> str:
        template = self.message if self.message is not None else DEFAULT_MESSAGE.get(self.code, self.code)
        values = {key: seen.get(key) or "" for key in ("action", "instance_type", "zone", "market")}
        return template.format_map(values)


def error_body(code: str, message: str) -> bytes:
    """EC2's error document, as botocore's query/ec2 parser reads it into ClientError."""
    from xml.sax.saxutils import escape

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


def _scope(headers: http.client.HTTPMessage) -> tuple[str, str]:
    """(access key, region) of a SigV4 Authorization header; the test defaults without one."""
    found = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/", headers.get("Authorization", ""))
    return (found.group(1), found.group(2)) if found else ("testing", REGION)


class FaultProxy(BackgroundServer):
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0):
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._upstream_addr = (parts.hostname, parts.port or 80)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._log: list[dict[str, Any]] = []
        self._zones: dict[str, str | None] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._serve(handler, host, port, "ec2-faults")

    # --- life ------------------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        from tests.ground.ec2api import client_env

        return client_env(self.url)

    # --- rules and log ---------------------------------------------------------------------------------

    def add_rule(
        self,
        action: str,
        code: str,
        *,
        instance_type: str | None = None,
        zone: str | None = None,
        market: str | None = None,
        message: str | None = None,
        status: int | None = None,
        times: int | None = None,
    ) -> Rule:
        rule = Rule(action, code, instance_type, zone, market, message, status, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def clear(self) -> None:
        """No rules, empty log, subnet zones forgotten."""
        with self._lock:
            self._rules.clear()
            self._log.clear()
            self._zones.clear()

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request seen so far, oldest first (copies)."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def outcomes(self, action: str | None = None) -> list[str]:
        """'passed' or the error code of each request seen (of one action)."""
        return [e["outcome"] for e in self.requests if action is None or e["action"] == action]

    # --- what the handler asks -------------------------------------------------------------------------

    def _decide(self, seen: dict[str, Any]) -> tuple[Rule, str] | None:
        """The rule that answers this request (one of its times used up) and its message, or None (pass it on).
        The request is logged either way."""
        with self._lock:
            rule = next((r for r in self._rules if r.matches(seen)), None)
            if rule is not None and rule.times is not None:
                rule.times -= 1
            outcome = {"outcome": rule.code, "status": rule.status} if rule else {"outcome": "passed", "status": None}
            self._log.append({**seen, **outcome})
            return (rule, rule.text(seen)) if rule else None

    def _describe(self, params: dict[str, str], headers: http.client.HTTPMessage) -> dict[str, Any]:
        action = params.get("Action", "")
        seen: dict[str, Any] = {"action": action, "instance_type": None, "zone": None, "market": None}
        if action == "StartInstances" and params.get("InstanceId.1"):
            return seen | self._instance(params["InstanceId.1"], *_scope(headers))
        if action not in _LAUNCH_ACTIONS:
            return seen
        p = _LAUNCH_ACTIONS[action]
        seen["instance_type"] = params.get(p + "InstanceType")
        spot = action == "RequestSpotInstances" or params.get("InstanceMarketOptions.MarketType") == "spot"
        seen["market"] = "spot" if spot else "on-demand"
        subnet = params.get(p + "SubnetId") or params.get(p + "NetworkInterface.1.SubnetId")
        seen["zone"] = params.get(p + "Placement.AvailabilityZone") or (
            self._subnet_zone(subnet, *_scope(headers)) if subnet else None
        )
        return seen

    def _client(self, access_key: str, region: str):
        """A boto3 client of upstream for the proxy's own questions (marked as the tests' own, no retries)."""
        with self._lock:
            client = self._clients.get((access_key, region))
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "ec2",
                endpoint_url=self.upstream,
                region_name=region,
                aws_access_key_id=access_key,
                aws_secret_access_key="testing",
                config=Config(user_agent_extra=TEST_AGENT, retries={"total_max_attempts": 1}),
            )
            with self._lock:
                self._clients[(access_key, region)] = client
        return client

    def _subnet_zone(self, subnet: str, access_key: str, region: str) -> str | None:
        with self._lock:
            if subnet in self._zones:
                return self._zones[subnet]
        try:
            found = self._client(access_key, region).describe_subnets(
                Filters=[{"Name": "subnet-id", "Values": [subnet]}]
            )["Subnets"]
        except Exception:  # the launch itself will tell the client what is wrong with its subnet
            found = []
        zone = found[0]["AvailabilityZone"] if found else None
        if zone:
            with self._lock:
                self._zones[subnet] = zone
        return zone

    def _instance(self, instance_id: str, access_key: str, region: str) -> dict[str, Any]:
        """Type, zone and market of an instance, as upstream describes it (nothing known: the start itself will
        tell the client what is wrong with its instance id)."""
        try:
            reservations = self._client(access_key, region).describe_instances(
                Filters=[{"Name": "instance-id", "Values": [instance_id]}]
            )["Reservations"]
            instance = reservations[0]["Instances"][0]
        except Exception:
            return {}
        return {
            "instance_type": instance.get("InstanceType"),
            "zone": instance.get("Placement", {}).get("AvailabilityZone"),
            "market": "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
        }

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes):
        conn = http.client.HTTPConnection(*self._upstream_addr, timeout=120)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            conn.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet; FaultProxy.requests is the log
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]], reason: str | None = None) -> None:
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() not in ("content-length", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), [("Content-Type", "application/json")])

    def _control(self, path: str, body: bytes) -> None:
        proxy = self.proxy
        if path == CONTROL + "rules":
            if self.command == "POST":
                try:
                    value = json.loads(body or b"null")
                    for spec in value if isinstance(value, list) else [value]:
                        proxy.add_rule(**spec)
                except (TypeError, ValueError) as exc:
                    return self._json(400, {"error": str(exc)})
                return self._json(200, {"rules": proxy.rules()})
            if self.command == "GET":
                return self._json(200, {"rules": proxy.rules()})
            if self.command == "DELETE":
                proxy.clear_rules()
                return self._json(200, {"rules": []})
        if path == CONTROL + "log":
            if self.command == "GET":
                return self._json(200, {"requests": proxy.requests})
            if self.command == "DELETE":
                proxy.clear_log()
                return self._json(200, {"requests": []})
        return self._json(404, {"error": f"no {self.command} {path}"})

    def _handle(self) -> None:
        body = self._read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(CONTROL):
            return self._control(path, body)
        query = urllib.parse.urlsplit(self.path).query
        form = body.decode("utf-8", "replace") if "form-urlencoded" in self.headers.get("Content-Type", "") else ""
        params = dict(urllib.parse.parse_qsl(form or query, keep_blank_values=True))
        refusal = self.proxy._decide(self.proxy._describe(params, self.headers)) if params.get("Action") else None
        if refusal is not None:
            rule, message = refusal
            data = error_body(rule.code, message)
            return self._send(rule.status or 400, data, [("Content-Type", "text/xml;charset=UTF-8")])
        dropped = _HOP_BY_HOP | {"content-length", "expect"}
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in dropped]
        try:
            status, reason, out_headers, data = self.proxy._forward(self.command, self.path, headers, body)
        except OSError as exc:
            return self._send(502, f"ec2faults: upstream {self.proxy.upstream}: {exc}".encode(), [], "Bad Gateway")
        self._send(status, data, out_headers, reason)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle  # noqa: N815


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the local EC2 API, e.g. http://127.0.0.1:5000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rule", action="append", default=[], help="a rule as JSON (keys as add_rule's)")
    args = parser.parse_args(argv)
    proxy = FaultProxy(args.upstream, args.host, args.port)
    for spec in args.rule:
        proxy.add_rule(**json.loads(spec))
    proxy.start()
    print(f"export AWS_ENDPOINT_URL={proxy.url}")
    print(f"# ec2 fault proxy on {proxy.url} -> {proxy.upstream}; rules and log under {proxy.url}{CONTROL}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass
    proxy.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
