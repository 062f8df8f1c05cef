"""Start the project's mock LLM server (test/mock/server.js) as a child process.

Used by the tests (conftest.py) and, as a script, by `make example`:

    python tests/mockserver.py COMMAND ARGS...

runs COMMAND with ESP_MOCK_BASE_URL (http://127.0.0.1:PORT/v1),
ESP_MOCK_HTTPS_BASE_URL and ESP_MOCK_CA_FILE set, and stops the server after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ESP_ROOT = Path(os.environ.get("ESP_ROOT") or Path(__file__).resolve().parents[3])


@dataclass
class MockServer:
    """A running mock server: its ports, test CA and process."""

    http_port: int
    https_port: int
    ca_file: str
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL on plain HTTP/1.1."""
        return f"http://127.0.0.1:{self.http_port}/v1"

    @property
    def https_base_url(self) -> str:
        """The base URL on TLS (HTTP/2 and HTTP/1.1), trusted with ca_file."""
        return f"https://localhost:{self.https_port}/v1"

    def url(self, path: str) -> str:
        """An absolute plain-HTTP URL on the server, e.g. url("/echo")."""
        return f"http://127.0.0.1:{self.http_port}{path}"

    def stats(self) -> dict[str, Any]:
        """The server's own counters (GET /_mock/stats), fetched without libesp."""
        with urllib.request.urlopen(self.url("/_mock/stats"), timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        """Close its stdin (its signal to exit) and wait for it."""
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def start(extra_args: list | None = None) -> MockServer:
    """Start a mock server and wait for its one-line JSON announcement."""
    script = ESP_ROOT / "test" / "mock" / "server.js"
    process = subprocess.Popen(
        ["node", str(script), *(extra_args or [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        raise RuntimeError(f"mock server {script} exited with {process.returncode} before announcing its ports")
    info = json.loads(line)
    return MockServer(info["http_port"], info["https_port"], info["ca_file"], process)


def main(argv: list) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    server = start()
    try:
        env = dict(
            os.environ,
            ESP_MOCK_BASE_URL=server.base_url,
            ESP_MOCK_HTTPS_BASE_URL=server.https_base_url,
            ESP_MOCK_CA_FILE=server.ca_file,
        )
        return subprocess.run(argv, env=env, check=False).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
