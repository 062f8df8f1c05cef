"""httpx's own test suite, twice: on httpx's transport (the baseline) and
with libesp's swapped in (esp_swap.py). Every test that passes on the
baseline must pass on libesp, or be listed with its reason in
known_differences.txt (listed tests may pass or fail: some are timing
dependent; those that passed are named).

    python compare.py HTTPX_SOURCE_DIR

Runs inside a network namespace of its own when `unshare -n` works (only
loopback up), else deselects the tests httpx marks as needing the network.
Ends with a line "httpx suite: N passed, N failed".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent


def known_differences() -> dict[str, str]:
    listed = {}
    for line in (HERE / "known_differences.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            test, _, reason = line.partition("  ")
            listed[test.strip()] = reason.strip()
    return listed


def isolated(command: list[str]) -> list[str]:
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        script = 'ip link set lo up 2>/dev/null || true; exec "$@"'
        return ["unshare", "-n", "sh", "-c", script, "sh", *command]
    return command


def run(source: Path, with_libesp: bool) -> dict[str, str]:
    """Test id -> passed / failed / skipped."""
    report = source / ("junit-libesp.xml" if with_libesp else "junit-httpx.xml")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not network",
        f"--junitxml={report}",
        "tests",
    ]
    if with_libesp:
        command[3:3] = ["-p", "esp_swap"]
    env = dict(os.environ, PYTHONPATH=str(HERE))
    subprocess.run(isolated(command), cwd=source, env=env, check=False)
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        if case.find("skipped") is not None:
            outcomes[test] = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes[test] = "failed"
        else:
            outcomes[test] = "passed"
    return outcomes


def _counts(outcomes: dict[str, str]) -> str:
    return ", ".join(f"{sum(o == kind for o in outcomes.values())} {kind}" for kind in ("passed", "failed", "skipped"))


def main(argv: list[str]) -> int:
    source = Path(argv[0]).resolve()
    baseline = run(source, with_libesp=False)
    ours = run(source, with_libesp=True)
    listed = known_differences()

    def is_listed(test: str) -> bool:
        return any(test == entry or (entry.endswith("*") and test.startswith(entry[:-1])) for entry in listed)

    regressions = [
        t for t, outcome in baseline.items() if outcome == "passed" and ours.get(t) != "passed" and not is_listed(t)
    ]
    stale = [t for t in ours if is_listed(t) and ours[t] == "passed"]
    compared = [t for t, outcome in baseline.items() if outcome == "passed"]
    print(f"\nbaseline (httpx's transport): {_counts(baseline)}")
    print(f"libesp's transport: {_counts(ours)}; {len(listed)} entries in known_differences.txt")
    for test in regressions:
        print(f"REGRESSION (passes on httpx, not on libesp, not listed): {test}")
    print(f"{len(stale)} of the listed tests passed this time")
    on_both = sum(ours.get(t) == "passed" for t in compared)
    listed_failures = len(compared) - on_both - len(regressions)
    print(f"{listed_failures} tests passing on httpx's transport failed on libesp's, all listed")
    print(f"httpx suite: {on_both} passed, {len(regressions)} failed")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
