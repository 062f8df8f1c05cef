"""pytest plugin: runs httpx's own test suite with libesp under every default
transport (esp.install(), the path users take), as httpx-aiohttp swaps its
own in. At the end it says how many requests went through libesp, so a run
that silently stayed on httpcore shows."""

from __future__ import annotations

import esp


def pytest_configure(config) -> None:
    esp.install()


def pytest_terminal_summary(terminalreporter) -> None:
    requests = esp.stats()["requests"]
    terminalreporter.write_line(f"libesp: {requests} requests went through esp.HTTPTransport")
