"""Shared fixtures: one mock server per test session, clients configured for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import esp
from mockserver import MockServer, start


@pytest.fixture(scope="session")
def mock() -> Iterator[MockServer]:
    server = start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def config(mock: MockServer) -> dict[str, Any]:
    """A client config for the mock server over plain HTTP, without retries
    so that fault tests see the first failure, and without the circuit
    breaker, which the fault tests would otherwise open for later tests."""
    return {"base_url": mock.base_url, "api_key": "sk-test", "max_retries": 0, "breaker_failures": 0}


@pytest.fixture
def client(config: dict[str, Any]) -> Iterator[esp.Client]:
    with esp.Client(config) as c:
        yield c
