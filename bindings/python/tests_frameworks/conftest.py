"""The mock LLM server (HTTPS with its private CA) for the framework tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mockserver import MockServer, start  # noqa: E402


@pytest.fixture(scope="session")
def mock() -> Iterator[MockServer]:
    server = start()
    try:
        yield server
    finally:
        server.stop()
