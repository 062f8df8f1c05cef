"""Each framework's per-row pattern (a new model object per row, a few
hundred rows, sync and async in several asyncio.run() batches) against the
mock server over HTTPS, with the recipe's one line, esp.install(http2=True):
a handful of connections, no ResourceWarning, no "Event loop is closed",
descriptors flat. Each run is its own process (scenarios.py), so no state
leaks between frameworks."""

from __future__ import annotations

import pytest
from descriptors import LIBESP_OWN
from runner import run_scenario
from scenarios import FRAMEWORKS

ROWS = 200


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_per_row_pattern_on_libesp(mock, framework, mode):
    seen, server = run_scenario(mock, framework, mode, on_libesp=True, rows=ROWS)
    assert seen["ok"] == ROWS, seen["failures"]
    assert server["requests"] == ROWS
    assert server["connections"] <= 2, server
    assert seen["resource_warnings"] == 0
    assert seen["event_loop_closed"] == 0
    # Flat: libesp's threads' own and the two connections, whatever the rows.
    assert seen["fds_peak"] <= seen["fds_before"] + LIBESP_OWN + 6, seen
    assert seen["fds_after"] <= seen["fds_before"] + LIBESP_OWN + 2, seen
