"""Each framework's per-row pattern (a new model object per row, a few
hundred rows, sync and async in several asyncio.run() batches) against the
mock server over HTTPS, with the recipe's one line, esp.install(http2=True):
a handful of connections, no ResourceWarning, no "Event loop is closed",
descriptors flat. Each run is its own process (scenarios.py), so no state
leaks between frameworks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scenarios import FRAMEWORKS

HERE = Path(__file__).resolve().parent
ROWS = 200


def run_scenario(mock, framework: str, mode: str, *, on_libesp: bool, rows: int = ROWS) -> tuple[dict, dict]:
    """(what the program saw, what the server saw)."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(mock.url("/_mock/reset"), method="POST"), timeout=10).read()
    command = [
        sys.executable,
        str(HERE / "scenarios.py"),
        framework,
        mode,
        "--base-url",
        mock.https_base_url,
        "--rows",
        str(rows),
        "--concurrency",
        "50",
        "--batches",
        "4",
    ]
    if on_libesp:
        command.append("--esp")
    result = subprocess.run(
        command,
        env=dict(os.environ, SSL_CERT_FILE=mock.ca_file),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), mock.stats()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_per_row_pattern_on_libesp(mock, framework, mode):
    seen, server = run_scenario(mock, framework, mode, on_libesp=True)
    assert seen["ok"] == ROWS, seen["failures"]
    assert server["requests"] == ROWS
    assert server["connections"] <= 2, server
    assert seen["resource_warnings"] == 0
    assert seen["event_loop_closed"] == 0
    assert seen["fds_peak"] <= seen["fds_before"] + 10, seen
    assert seen["fds_after"] <= seen["fds_before"] + 6, seen
