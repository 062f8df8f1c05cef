"""Re-measures the per-row table of the README: every framework, sync and
async, without libesp and with the recipe's one line, against the mock
server over HTTPS; the async runs once more under `ulimit -n 256`.

    python measure.py [--rows 500] [--frameworks openai,langchain,...]

Prints a Markdown table (connections the server accepted, peak descriptors,
time, memory growth, ResourceWarnings, failed rows, "Event loop is closed").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from runner import ScenarioFailed, run_scenario  # noqa: E402
from scenarios import FRAMEWORKS  # noqa: E402

from mockserver import start  # noqa: E402


def measure(mock, framework: str, mode: str, on_libesp: bool, rows: int, limited: bool = False) -> dict:
    try:
        seen, server = run_scenario(mock, framework, mode, on_libesp=on_libesp, rows=rows, limit_fds=limited)
    except ScenarioFailed as exc:
        lines = str(exc).strip().splitlines()
        return {"error": lines[-1][:120] if lines else "exit"}
    seen["connections"] = server["connections"]
    return seen


def cell(seen: dict, limited: dict | None) -> str:
    if "error" in seen:
        return f"error: {seen['error']}"
    failed = seen["rows"] - seen["ok"]
    text = (
        f"{seen['connections']} conn, {seen['fds_peak']} fds, {seen['seconds']:.1f} s, "
        f"+{seen['rss_growth_mib']:.0f} MiB, {seen['resource_warnings']} ResourceWarnings"
    )
    if failed:
        text += f", {failed} rows failed"
    if seen["event_loop_closed"]:
        text += f", {seen['event_loop_closed']} 'Event loop is closed'"
    if limited is not None:
        text += (
            f"; ulimit -n 256: {limited['rows'] - limited['ok'] if 'rows' in limited else limited['error']} rows fail"
        )
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--frameworks", default=",".join(sorted(FRAMEWORKS)))
    args = parser.parse_args()
    mock = start()
    try:
        print(f"{args.rows} rows, a new model object per row; async: 50 in flight, 4 asyncio.run() batches\n")
        print("| framework | without libesp | with esp.install(http2=True) |")
        print("|---|---|---|")
        for framework in args.frameworks.split(","):
            for mode in ("sync", "async"):
                row = []
                for on_libesp in (False, True):
                    seen = measure(mock, framework, mode, on_libesp, args.rows)
                    limited = (
                        measure(mock, framework, mode, on_libesp, args.rows, limited=True) if mode == "async" else None
                    )
                    row.append(cell(seen, limited))
                print(f"| {framework} {mode} | {row[0]} | {row[1]} |", flush=True)
    finally:
        mock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
