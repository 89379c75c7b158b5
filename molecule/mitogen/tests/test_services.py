"""What Mitogen's run left running: the Jupyter server answering on the loopback address and the autostop agent
(the rest of the box, as its user meets it: test_workstation.py, shared with molecule/default)."""

import shlex


def test_jupyter_answers_on_loopback(host):
    assert host.service("jupyter").is_running and host.service("jupyter").is_enabled
    probe = (
        "import urllib.request as u, urllib.error as e\n"
        "try: print(u.urlopen('http://127.0.0.1:8888/api', timeout=10).status)\n"
        "except e.HTTPError as x: print(x.code)\n"
    )
    assert host.check_output(f"python3 -c {shlex.quote(probe)}") == "200"


def test_autostop_agent_active(host):
    agent = host.service("gpubox-autostop")
    assert agent.is_running and agent.is_enabled
