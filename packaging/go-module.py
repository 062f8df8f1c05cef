"""The Go module as a module proxy serves it (a GOPROXY=file:// directory:
@v/list, .info, .mod, .zip), made from the files git tracks at the repository
root minus nested modules, so `make test-packages` can fetch it like a user.
    python3 go-module.py REPO VERSION OUT_DIR
"""

import json
import os
import subprocess
import sys
import zipfile

repo, version, out = sys.argv[1], "v" + sys.argv[2], sys.argv[3]
module = "github.com/libesp/libesp"
files = subprocess.run(
    ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd=repo, check=True, capture_output=True, text=True,
).stdout.split("\0")
files = [f for f in files if f and os.path.isfile(os.path.join(repo, f))]
nested = {os.path.dirname(f) + "/" for f in files if f.endswith("/go.mod")}
files = [f for f in files if not any(f.startswith(d) for d in nested)]

at = os.path.join(out, module, "@v")
os.makedirs(at, exist_ok=True)
with zipfile.ZipFile(os.path.join(at, version + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(files):
        z.write(os.path.join(repo, f), f"{module}@{version}/{f}")
with open(os.path.join(repo, "go.mod"), "rb") as src, open(os.path.join(at, version + ".mod"), "wb") as dst:
    dst.write(src.read())
with open(os.path.join(at, version + ".info"), "w") as f:
    json.dump({"Version": version, "Time": "2026-01-01T00:00:00Z"}, f)
with open(os.path.join(at, "list"), "w") as f:
    f.write(version + "\n")
print(f"{module}@{version}: {len(files)} files, {os.path.getsize(os.path.join(at, version + '.zip'))} bytes zipped")
