"""The jupyter role's real effects: a systemd service of the user, listening on the loopback address only,
token auth, the D2L notebooks as its folder, and kernels of the d2l environment that run code and are shut
down when idle."""

import json
import shlex
import time

ENV = "/home/ubuntu/miniconda3/envs/d2l"
URL = "http://127.0.0.1:8888"

# Runs inside the box with the environment's Python: talks to the server like JupyterLab does (REST to start
# a kernel, the kernel's websocket to execute a cell) and prints what the cell printed.
KERNEL_ROUNDTRIP = r"""
import asyncio, json, sys, uuid, urllib.request
from tornado.websocket import websocket_connect

URL, TOKEN, CODE = sys.argv[1], sys.argv[2], sys.argv[3]

def api(method, path, body=None):
    req = urllib.request.Request(URL + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": "token " + TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")

async def main():
    kernel = api("POST", "/api/kernels", {"name": "d2l"})
    ws = await websocket_connect(URL.replace("http", "ws") + f"/api/kernels/{kernel['id']}/channels?token={TOKEN}")
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": CODE, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    out, status = [], None
    while status is None:
        msg = json.loads(await asyncio.wait_for(ws.read_message(), 120))
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("ERROR " + msg["content"]["ename"])
        elif msg["msg_type"] == "execute_reply":
            status = msg["content"]["status"]
    print(json.dumps({"kernel": kernel["id"], "status": status, "output": "".join(out)}))

asyncio.run(main())
"""


def token(host) -> str:
    return host.file("/home/ubuntu/.jupyter/gpubox-token").content_string.strip()


def http_status(host, path: str, tok: str | None = None) -> int:
    headers = f"{{'Authorization': 'token {tok}'}}" if tok else "{}"
    script = (
        "import urllib.request as u, urllib.error as e\n"
        f"r = u.Request('{URL}{path}', headers={headers})\n"
        "try: print(u.urlopen(r, timeout=10).status)\n"
        "except e.HTTPError as x: print(x.code)\n"
    )
    return int(host.check_output(f"python3 -c {shlex.quote(script)}"))


def test_service_active_and_enabled_as_the_user(host):
    service = host.service("jupyter")
    assert service.is_running and service.is_enabled
    pid = host.check_output("systemctl show -p MainPID --value jupyter")
    assert host.check_output(f"ps -o user= -p {pid}") == "ubuntu"


def test_listens_on_loopback_only(host):
    listeners = host.check_output("ss -Hltn 'sport = :8888'").splitlines()
    assert listeners, "nothing listens on port 8888"
    assert all(line.split()[3] == "127.0.0.1:8888" for line in listeners), listeners
    # The container's own network address refuses the port.
    addr = host.check_output("hostname -I").split()[0]
    probe = host.run(f"python3 -c \"import socket; socket.create_connection(('{addr}', 8888), timeout=5)\"")
    assert probe.rc != 0 and "Connection refused" in probe.stderr


def test_only_the_roles_unit_no_drop_in_it_did_not_write(host):
    """prepare.yml left a drop-in (`systemctl edit`) that makes the server listen on every address: the converge
    removed it (the notes beside it, which systemd does not read, stay: the drop-in was there)."""
    folder = "/etc/systemd/system/jupyter.service.d"
    assert host.check_output(f"ls -A {folder}").split() == ["notes.txt"]
    assert "jupyter.service.d" not in host.check_output("systemctl show -p DropInPaths --value jupyter")
    assert "0.0.0.0" not in host.check_output("systemctl show -p ExecStart --value jupyter")


def test_token_required(host):
    tok = token(host)
    assert len(tok) >= 32
    assert http_status(host, "/api/status") == 403
    assert http_status(host, "/api/status", "wrong-token-0123456789") == 403
    assert http_status(host, "/api/status", tok) == 200
    kept = host.file("/home/ubuntu/.jupyter/gpubox-token")
    assert kept.user == "ubuntu" and kept.mode == 0o600


def test_configuration(host):
    config = host.file("/home/ubuntu/.jupyter/gpubox_server_config.py")
    assert config.mode == 0o600 and config.user == "ubuntu"
    text = config.content_string
    assert "c.IdentityProvider.token" in text and "ServerApp.token" not in text
    assert 'c.ServerApp.ip = "127.0.0.1"' in text


def test_opens_the_d2l_notebooks(host):
    script = (
        "import json, urllib.request as u\n"
        f"r = u.Request('{URL}/api/contents', headers={{'Authorization': 'token {token(host)}'}})\n"
        "print(json.dumps(sorted(c['name'] for c in json.load(u.urlopen(r))['content'])))\n"
    )
    names = json.loads(host.check_output(f"python3 -c {shlex.quote(script)}"))
    assert names == ["jax", "mxnet", "pytorch", "tensorflow"]


def run_cell(host, code: str) -> dict:
    host.run(f"cat > /tmp/kernel_roundtrip.py <<'EOF'\n{KERNEL_ROUNDTRIP}\nEOF")
    out = host.run(
        f"runuser -u ubuntu -- {ENV}/bin/python /tmp/kernel_roundtrip.py {URL} {token(host)} {shlex.quote(code)}"
    )
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def test_cell_runs_in_the_d2l_environment(host):
    result = run_cell(host, "import sys, numpy, d2l; print(sys.prefix, numpy.__version__)")
    assert result["status"] == "ok", result
    assert result["output"].split() == [ENV, "1.23.5"]


def test_idle_kernels_are_shut_down(host):
    result = run_cell(host, "x = 1")
    kernel = result["kernel"]
    script = (
        "import json, urllib.request as u\n"
        f"r = u.Request('{URL}/api/kernels', headers={{'Authorization': 'token {token(host)}'}})\n"
        "print(json.dumps([k['id'] for k in json.load(u.urlopen(r))]))\n"
    )
    deadline = time.monotonic() + 60  # converge set a 20 s idle timeout, checked every 5 s
    while kernel in json.loads(host.check_output(f"python3 -c {shlex.quote(script)}")):
        assert time.monotonic() < deadline, "idle kernel still running after 60 s"
        time.sleep(3)
