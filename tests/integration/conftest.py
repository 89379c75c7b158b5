"""Fixtures of the integration tests that tell one story against a local EC2 API of their own (`api`, module-scoped,
tests/conftest.py) behind the fault proxy, which refuses what a test's rules say exactly as EC2 does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ground.ec2api import EC2Api, api_client
from tests.ground.ec2faults import FaultProxy


@pytest.fixture(scope="module")
def proxy(api: EC2Api) -> Iterator[FaultProxy]:
    """The fault proxy in front of the module's own API; the playbooks reach the API through it (proxy.env)."""
    with FaultProxy(api.endpoint) as p:
        yield p


@pytest.fixture(scope="module")
def ec2m(api: EC2Api):
    """The tests' own EC2 client of the module's API, past the proxy (its calls are not the playbooks')."""
    return api_client("ec2", api.endpoint)
