"""`make demo`, second act: the per-row workload through the openai SDK (a
new client per row, nothing closed), run unchanged three ways:

    python per_row.py                                       httpx's own pools
    python -m esp.run per_row.py                            esp.install()
    ESP_INSTALL_CONFIG='{"http2":true}' python -m esp.run   ... multiplexed

and printed side by side: connections the server accepted, descriptors,
time and memory. Needs the mock server's variables (tests/mockserver.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

PER_ROW = Path(__file__).resolve().parent / "per_row.py"
ROWS = 100
RUNS = [
    ("httpx (no libesp)", [], {}),
    ("esp.install()", ["-m", "esp.run"], {}),
    ("esp.install(http2=True)", ["-m", "esp.run"], {"ESP_INSTALL_CONFIG": '{"http2": true}'}),
]


def server(path: str, method: str = "GET") -> dict:
    http = os.environ["ESP_MOCK_BASE_URL"].removesuffix("/v1")
    request = urllib.request.Request(http + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def run(mode: str, runner: list[str], extra_env: dict[str, str]) -> dict:
    server("/_mock/reset", "POST")
    env = dict(os.environ, SSL_CERT_FILE=os.environ["ESP_MOCK_CA_FILE"], **extra_env)
    command = [
        sys.executable,
        *runner,
        str(PER_ROW),
        "--base-url",
        os.environ["ESP_MOCK_HTTPS_BASE_URL"],
        "--rows",
        str(ROWS),
        "--mode",
        mode,
        "--concurrency",
        "50",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    seen["connections"] = server("/_mock/stats")["connections"]
    return seen


def main() -> int:
    print(f"\nAct 2: the openai SDK, a new client per row, {ROWS} rows over HTTPS, the same program three ways")
    width = 26
    for mode, title in (("sync", "sync, one row after another"), ("async", "async, 50 rows in flight")):
        results = [run(mode, runner, env) for _, runner, env in RUNS]
        print(f"\n{title:<30}" + "".join(f"{name:>{width}}" for name, _, _ in RUNS))
        lines = [
            ("rows ok", lambda r: f"{r['ok']}/{r['rows']}"),
            ("TCP connections opened", lambda r: str(r["connections"])),
            ("peak open descriptors", lambda r: str(r["fds_peak"])),
            ("wall time", lambda r: f"{r['seconds']:.2f} s"),
            ("memory growth", lambda r: f"{r['rss_growth_mib']:+.1f} MiB"),
            ("ResourceWarnings", lambda r: str(r["resource_warnings"])),
        ]
        for label, show in lines:
            print(f"{label:<30}" + "".join(f"{show(r):>{width}}" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
