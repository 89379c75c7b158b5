"""The collections installed with the pinned `ansible` package satisfy requirements.yml."""

import subprocess
import sys

from tests.conftest import ROOT


def test_installed_collections_satisfy_requirements():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/check-collections.py"), str(ROOT / "requirements.yml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "ok  amazon.aws" in out.stdout


def test_check_refuses_a_floor_not_met(tmp_path):
    req = tmp_path / "requirements.yml"
    req.write_text("collections:\n  - name: amazon.aws\n    version: '>=999.0.0'\n  - name: no.such\n")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/check-collections.py"), str(req)], capture_output=True, text=True
    )
    assert out.returncode == 1
    assert "amazon.aws" in out.stderr and "999" in out.stderr and "no.such: not installed" in out.stderr
