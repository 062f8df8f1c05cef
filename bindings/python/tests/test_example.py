"""The example under examples/python runs against the mock server."""

from __future__ import annotations

import os
import subprocess
import sys

from mockserver import ESP_ROOT
from test_load import header_version


def test_chat_example_runs(mock):
    env = dict(os.environ, ESP_MOCK_BASE_URL=mock.base_url)
    result = subprocess.run(
        [sys.executable, str(ESP_ROOT / "examples" / "python" / "chat.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"libesp {header_version()}")
    assert "request: 200 echo: Say hello" in lines
    assert "stream: echo: Count to three" in lines
    assert "openai SDK: echo: Hello from the SDK" in lines
