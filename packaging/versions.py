"""Every package's version is include/esp.h's. Python's is read from the header
at build time (setup.py); the manifests that must hold a literal (package.json
and its lock, Cargo.toml and the Cargo.lock files) are rewritten from it here.
    python3 packaging/versions.py          write the header's version everywhere
    python3 packaging/versions.py --check  fail, naming the file, if one differs
"""

import json
import pathlib
import re
import sys

repo = pathlib.Path(__file__).resolve().parent.parent
header = (repo / "include" / "esp.h").read_text()
version = ".".join(
    re.search(rf"^#define ESP_VERSION_{part} (\d+)$", header, re.M).group(1) for part in ("MAJOR", "MINOR", "PATCH")
)


def node_package(text: str) -> str:
    data = json.loads(text)
    data["version"] = version
    return json.dumps(data, indent=2) + "\n"


def node_lock(text: str) -> str:
    data = json.loads(text)
    data["version"] = version
    data["packages"][""]["version"] = version
    return json.dumps(data, indent=2) + "\n"


def cargo_toml(text: str) -> str:
    return re.sub(r'(\[package\]\nname = "libesp"\nversion = )"[^"]*"', rf'\g<1>"{version}"', text, count=1)


def cargo_lock(text: str) -> str:
    return re.sub(r'(name = "libesp"\nversion = )"[^"]*"', rf'\g<1>"{version}"', text, count=1)


files = {
    "bindings/node/package.json": node_package,
    "bindings/node/package-lock.json": node_lock,
    "bindings/rust/Cargo.toml": cargo_toml,
    "bindings/rust/Cargo.lock": cargo_lock,
    "examples/rust/Cargo.lock": cargo_lock,
}
stale = []
for name, rewrite in files.items():
    path = repo / name
    old = path.read_text()
    new = rewrite(old)
    if new != old:
        stale.append(name)
        if "--check" not in sys.argv:
            path.write_text(new)
if "--check" in sys.argv and stale:
    sys.exit(f"not at include/esp.h's version {version}: {', '.join(stale)} (run python3 packaging/versions.py)")
print(f"version {version}: " + ("rewrote " + ", ".join(stale) if stale else "every manifest agrees"))
