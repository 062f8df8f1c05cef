"""Runs one framework scenario (scenarios.py) in a process of its own against
the mock server, after resetting the server's counters: the preamble the
framework tests (test_frameworks.py) and the table (measure.py) share."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from descriptors import ENV as IO_THREADS_ENV  # tests/ is on the path (conftest.py, measure.py)

HERE = Path(__file__).resolve().parent
#: A run still going after this long is reported as hung.
RUN_TIMEOUT_S = 300


class ScenarioFailed(Exception):
    """The scenario's process failed or hung; the message says how."""


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def run_scenario(
    mock: Any, framework: str, mode: str, *, on_libesp: bool, rows: int, limit_fds: bool = False
) -> tuple[dict, dict]:
    """(what the program saw, what the server saw) for `rows` rows, 50 in
    flight in 4 asyncio.run() batches, over HTTPS; with esp.install() when
    `on_libesp`, under `ulimit -n 256` when `limit_fds`."""
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
    ] + (["--esp"] if on_libesp else [])
    try:
        result = subprocess.run(
            command,
            env=dict(os.environ, SSL_CERT_FILE=mock.ca_file, **IO_THREADS_ENV),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
            preexec_fn=_limit_fds if limit_fds else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise ScenarioFailed(f"still running after {RUN_TIMEOUT_S} s (hung)") from exc
    if result.returncode != 0:
        raise ScenarioFailed(result.stderr[-3000:] if result.stderr.strip() else f"exit status {result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1]), mock.stats()
