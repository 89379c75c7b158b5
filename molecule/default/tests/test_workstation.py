"""The whole configured box, as its user meets it: a login shell with CUDA and conda, the d2l environment,
Jupyter behind a token on the loopback address, and sshd that accepts keys only."""

import json


def login(host, command: str):
    """An interactive login shell of the user, like an SSH session (conda init hooks into ~/.bashrc)."""
    return host.run("sudo -u ubuntu -i bash -ic %s", command)


def test_login_shell_has_cuda_and_the_d2l_environment(host):
    out = login(
        host, "command -v nvcc && conda activate d2l && python -c 'import d2l, numpy; print(numpy.__version__)'"
    )
    assert out.rc == 0, out.stderr
    nvcc, numpy_version = out.stdout.split()
    assert nvcc.startswith("/usr/local/cuda-") and nvcc.endswith("/bin/nvcc")
    assert numpy_version == "1.23.5"  # d2l 1.0.3's pin, installed for real


def test_roles_applied_in_order_leave_their_state(host):
    assert host.file("/etc/profile.d/00-gpubox.sh").exists  # base
    assert host.file("/etc/profile.d/cuda.sh").exists  # cuda
    assert host.file("/home/ubuntu/miniconda3/envs/d2l/bin/python").exists  # miniconda
    assert host.service("jupyter").is_running and host.service("jupyter").is_enabled  # jupyter


def test_jupyter_answers_only_on_loopback_and_only_with_the_token(host):
    sockets = [s for s in host.socket.get_listening_sockets() if s.endswith(":8888")]
    assert sockets == ["tcp://127.0.0.1:8888"]
    token = host.file("/home/ubuntu/.jupyter/gpubox-token").content_string.strip()
    probe = (
        "import sys, urllib.request as u, urllib.error as e\n"
        "req = u.Request('http://127.0.0.1:8888/api/status', headers=dict(a.split('=', 1) for a in sys.argv[1:]))\n"
        "try: print(u.urlopen(req, timeout=10).status)\n"
        "except e.HTTPError as x: print(x.code)\n"
    )
    host.run("cat > /tmp/probe.py << 'EOF'\n" + probe + "EOF")
    assert host.run("python3 /tmp/probe.py").stdout.strip() == "403"
    assert host.run(f"python3 /tmp/probe.py 'Authorization=token {token}'").stdout.strip() == "200"


def test_sshd_takes_keys_only(host):
    effective = host.run("sshd -T -C user=ubuntu,host=box,addr=192.0.2.1").stdout
    assert "passwordauthentication no" in effective
    assert "permitrootlogin no" in effective
    assert (
        json.loads(
            host.run("python3 -c 'import json,pwd; print(json.dumps(pwd.getpwnam(\"ubuntu\").pw_shell))'").stdout
        )
        == "/bin/bash"
    )
