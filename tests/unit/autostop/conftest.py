"""The autostop agent's tests import its package from the role's files (gpubox_autostop), and run the program as
the role installs it: the zipapp the lookup gpubox.gpubox.zipapp builds (`autostop_program`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The package, importable by its name as on the box (before autostop_fakes, which imports it).
sys.path.insert(0, str(ROOT / "roles" / "autostop" / "files"))

from autostop_fakes import AGENT_FILES, build_program


@pytest.fixture(scope="session")
def autostop_program(tmp_path_factory) -> Path:
    return build_program(AGENT_FILES / "gpubox_autostop", tmp_path_factory.mktemp("program") / "gpubox-autostop")
