"""Run a Python program with esp.install() in effect, without changing it:

    python -m esp.run app.py [args...]
    python -m esp.run -m package.module [args...]

Every httpx / httpx2 client the program creates then runs on libesp. libesp
config keys for all of them can be given as JSON in ESP_INSTALL_CONFIG, e.g.
ESP_INSTALL_CONFIG='{"http2": true}'.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

from ._install import install

USAGE = "usage: python -m esp.run (SCRIPT | -m MODULE) [ARGS...]"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(USAGE, file=sys.stderr)
        return 2
    install(json.loads(os.environ.get("ESP_INSTALL_CONFIG") or "{}"))
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
