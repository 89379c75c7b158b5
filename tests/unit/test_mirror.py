"""The download mirror on loopback: files, injected faults, the request log."""

import json
import urllib.error
import urllib.request

import pytest

from tests.ground.mirror import Mirror


@pytest.fixture
def served(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "file.bin").write_bytes(bytes(range(256)))
    m = Mirror(tmp_path).start()
    yield m
    m.stop()


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def test_serves_files_and_404(served):
    assert get(served.url() + "/pkg/file.bin") == bytes(range(256))
    with pytest.raises(urllib.error.HTTPError) as err:
        get(served.url() + "/pkg/missing")
    assert err.value.code == 404


def test_n_times_503_then_success(served):
    served.fault("/pkg/file.bin", count=2, status=503)
    codes = []
    for _ in range(3):
        try:
            get(served.url() + "/pkg/file.bin")
            codes.append(200)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    assert codes == [503, 503, 200]
    assert [r["status"] for r in served.requests("/pkg/file.bin")] == [503, 503, 200]


def test_wrong_bytes_same_length(served):
    served.fault("/pkg/file.bin", corrupt=True)
    bad = get(served.url() + "/pkg/file.bin")
    assert len(bad) == 256 and bad != bytes(range(256))
    assert get(served.url() + "/pkg/file.bin") == bytes(range(256))  # once only


def test_control_api_over_http(served):
    body = json.dumps({"path": "/pkg/file.bin", "status": 500, "count": 1}).encode()
    urllib.request.urlopen(urllib.request.Request(served.url() + "/_mirror/fault", data=body), timeout=5)
    with pytest.raises(urllib.error.HTTPError) as err:
        get(served.url() + "/pkg/file.bin")
    assert err.value.code == 500
    log = json.loads(get(served.url() + "/_mirror/log"))
    assert log[-1]["status"] == 500
    urllib.request.urlopen(urllib.request.Request(served.url() + "/_mirror/reset", data=b""), timeout=5)
    assert json.loads(get(served.url() + "/_mirror/log")) == []


def test_control_api_refuses_bad_spec(served):
    req = urllib.request.Request(served.url() + "/_mirror/fault", data=json.dumps({"path": "x"}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400
