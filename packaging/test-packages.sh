#!/usr/bin/env bash
# make test-packages: every artifact in build/packages is installed the way its
# ecosystem installs it, into a throwaway directory outside this tree, and run
# with a scrubbed environment (env -i: PATH and HOME only; no ESP_LIBRARY,
# PKG_CONFIG_PATH, LD_LIBRARY_PATH or ESP_ROOT; nothing points back here):
# per language a chat completion and a streamed one against the mock server.
#   packaging/test-packages.sh [c python node rust go]   (default: all)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
pkgs=$repo/build/packages
smoke=$repo/packaging/smoke
work=$(mktemp -d /tmp/esp-packages.XXXXXX)
trap 'rm -rf "$work"' EXIT
langs=${*:-c python node rust go}

# The tools' own directories, not whatever PATH held (a venv, the build tree).
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
for tool in python3 node npm cargo go; do
  bin=$(command -v "$tool" 2>/dev/null) || continue
  [ "$tool" = python3 ] && bin=$(python3 -c 'import sys; print(sys.executable)')
  path=$(dirname "$bin"):$path
done
scrubbed() { env -i PATH="$path" HOME="$HOME" "$@"; }

# Runs a smoke program (in a scrubbed environment but for ESP_MOCK_HTTP) and
# checks it printed the completion and the streamed completion.
smoke_run() {
  local name=$1; shift
  local out=$work/$name.out
  local rc=0
  "$repo/test/mock/with-mock.sh" sh -c 'p=$0 h=$1; shift; exec env -i PATH="$p" HOME="$h" ESP_MOCK_HTTP="$ESP_MOCK_HTTP" "$@"' \
    "$path" "$HOME" "$@" > "$out" 2>&1 || rc=$?
  [ "$rc" = 0 ] || { cat "$out"; echo "FAIL $name: exited $rc"; return 1; }
  grep -qx 'chat: echo: Hello' "$out" && grep -qx 'stream: echo: Hello' "$out" ||
    { cat "$out"; echo "FAIL $name: no completion and streamed completion in the output"; return 1; }
  ! grep -q "$repo" "$out" || { cat "$out"; echo "FAIL $name: used the build tree"; return 1; }
  echo "PASS $name: $(grep -v '^chat:\|^stream:' "$out" | tail -n 1)"
}

timed() {  # timed LABEL cmd...: runs cmd, prints how long it took
  local label=$1 start; shift
  start=$(date +%s.%N)
  "$@"
  awk -v label="$label" -v start="$start" -v end="$(date +%s.%N)" 'BEGIN { printf "  %s: %.1f s\n", label, end - start }' >&2
}

size() { printf '  %s: %s\n' "${1##*/}" "$(du -h "$1" | cut -f1)"; }

test_c() {
  echo "== C: make install from the source tarball"
  local tarball=("$pkgs"/c/libesp-*.tar.gz) prefix=$work/c/prefix
  size "${tarball[0]}"
  mkdir -p "$work/c" && tar xzf "${tarball[0]}" -C "$work/c"
  timed "make install" scrubbed make -s -C "$work"/c/libesp-*/ -j2 install PREFIX="$prefix" >/dev/null
  cp "$repo/examples/c/chat.c" "$work/c/"
  local pc="pkg-config --with-path=$prefix/lib/pkgconfig"
  scrubbed sh -c "cc -std=c99 -Wall -Werror $work/c/chat.c \$($pc --cflags --libs esp) -Wl,-rpath,$prefix/lib -o $work/c/chat"
  # Static: libesp.a with what esp.pc says it needs (Libs.private, Requires.private).
  scrubbed sh -c "cc -std=c99 $work/c/chat.c \$($pc --cflags esp) $prefix/lib/libesp.a \
    \$($pc --libs \$($pc --print-requires-private esp)) \$(sed -n 's/^Libs.private: //p' $prefix/lib/pkgconfig/esp.pc) \
    -o $work/c/chat-static"
  ! ldd "$work/c/chat-static" | grep -q libesp
  for bin in chat chat-static; do
    "$repo/test/mock/with-mock.sh" sh -c 'exec env -i PATH="$0" OPENAI_API_KEY=sk-test OPENAI_BASE_URL="$ESP_MOCK_HTTP/v1" "$1"' \
      "$path" "$work/c/$bin" > "$work/c/$bin.out" 2>&1 || { cat "$work/c/$bin.out"; return 1; }
    grep -q '^HTTP 200: .*echo: Hello' "$work/c/$bin.out" || { cat "$work/c/$bin.out"; return 1; }
    echo "PASS c $bin"
  done
}

test_python() {
  echo "== Python: pip install of the wheel, then of the sdist"
  local wheel=("$pkgs"/python/*.whl) sdist=("$pkgs"/python/*.tar.gz)
  size "${wheel[0]}"; size "${sdist[0]}"
  scrubbed python3 -m venv "$work/py-wheel"
  timed "pip install (wheel)" scrubbed "$work/py-wheel/bin/pip" install -q --disable-pip-version-check "${wheel[0]}"
  cp "$smoke/chat.py" "$smoke/shared_pool.py" "$work/"
  (cd "$work" && smoke_run python-wheel "$work/py-wheel/bin/python" chat.py)
  grep -q "loaded from $work/py-wheel/.*/esp/_lib/libesp.so.0" "$work/python-wheel.out"
  # One pool per process: a libesp another component loaded first is the one used.
  if [ -d "$work/c/prefix/lib" ]; then
    (cd "$work" && scrubbed "$work/py-wheel/bin/python" shared_pool.py "$work/c/prefix/lib/libesp.so.0")
    echo "PASS python shared pool with a libesp loaded by ctypes"
  fi
  # The trust store: with no ca_file, SSL_CERT_FILE names the CA bundle.
  "$repo/test/mock/with-mock.sh" sh -c 'exec env -i PATH="$0" HOME="$1" SSL_CERT_FILE="$ESP_MOCK_CA" ESP_MOCK_HTTPS="$ESP_MOCK_HTTPS" \
    "$2" -c "import esp, os; print(esp.Client(base_url=os.environ[\"ESP_MOCK_HTTPS\"] + \"/v1\").request(\"models\").status)"' \
    "$path" "$HOME" "$work/py-wheel/bin/python" | grep -qx 200
  echo "PASS python SSL_CERT_FILE is the trust store when no ca_file is set"
  scrubbed python3 -m venv "$work/py-sdist"
  timed "pip install (sdist, compiles libesp)" scrubbed "$work/py-sdist/bin/pip" install -q --disable-pip-version-check \
    --no-binary libesp "${sdist[0]}"
  (cd "$work" && smoke_run python-sdist "$work/py-sdist/bin/python" chat.py)
}

test_node() {
  echo "== Node: npm install of the tarball (prebuild, --ignore-scripts, then the from-source fallback)"
  local tarball=("$pkgs"/node/libesp-*.tgz)
  size "${tarball[0]}"
  for mode in plain ignore-scripts fallback; do
    local app=$work/node-$mode flags=()
    mkdir -p "$app" && cp "$smoke/chat.mjs" "$app/" && echo '{"name":"app","private":true}' > "$app/package.json"
    [ "$mode" = ignore-scripts ] && flags=(--ignore-scripts)
    (cd "$app" && timed "npm install ($mode)" scrubbed npm install --no-audit --no-fund --silent "${flags[@]}" "${tarball[0]}")
    if [ "$mode" = fallback ]; then
      # No prebuild fits: `npm rebuild` compiles libesp and the addon from the bundled sources.
      rm -rf "$app/node_modules/libesp/prebuilds"
      (cd "$app" && timed "npm rebuild (from source)" scrubbed sh -c "npm rebuild --silent libesp >/dev/null 2>&1")
      [ -f "$app/node_modules/libesp/build/esp_node.node" ]
    else
      [ ! -e "$app/node_modules/libesp/build" ]  # the prebuild was enough
    fi
    (cd "$app" && smoke_run "node-$mode" node chat.mjs)
  done
  # One pool per process: a libesp.so.0 already loaded is the one the addon gets.
  if [ -d "$work/c/prefix/lib" ]; then
    cp "$smoke/shared_node.cjs" "$work/node-plain/"
    (cd "$work/node-plain" && scrubbed node shared_node.cjs "$work/c/prefix/lib/libesp.so.0")
    echo "PASS node shares a libesp.so.0 loaded before the addon"
  fi
}

test_rust() {
  echo "== Rust: a fresh cargo app depending on the unpacked .crate (bundled libesp compiled by cc)"
  local crate=("$pkgs"/rust/libesp-*.crate) app=$work/rust-app
  size "${crate[0]}"
  mkdir -p "$work/crates" && tar xzf "${crate[0]}" -C "$work/crates"
  local dir=("$work"/crates/libesp-*)
  scrubbed cargo new --quiet --vcs none "$app"
  cat >> "$app/Cargo.toml" <<TOML
libesp = { path = "${dir[0]}" }
serde_json = "1"
TOML
  cp "$smoke/rust/main.rs" "$app/src/main.rs"
  (cd "$app" && timed "cargo build (compiles libesp)" scrubbed cargo build --quiet)
  ! ldd "$app/target/debug/rust-app" | grep -q libesp  # linked in, no rpath or libesp.so needed
  (cd "$app" && smoke_run rust "$app/target/debug/rust-app")
  # docs.rs: no libesp, no libcurl needed.
  (cd "${dir[0]}" && scrubbed env DOCS_RS=1 cargo doc --quiet --no-deps --target-dir "$work/rust-doc")
  [ -f "$work/rust-doc/doc/libesp/index.html" ] && echo "PASS rust DOCS_RS=1 cargo doc"
}

test_go() {
  echo "== Go: a fresh module outside the repository, through a replace and as a fetched module"
  local zip=("$pkgs"/go/github.com/libesp/libesp/@v/*.zip) version
  size "${zip[0]}"
  version=$(basename "${zip[0]}" .zip)
  mkdir -p "$work/go-tree" && (cd "$work/go-tree" && python3 -m zipfile -e "${zip[0]}" .)
  local tree=("$work"/go-tree/github.com/libesp/libesp@*)
  for mode in replace fetched; do
    mkdir -p "$work/go-$mode" && cp "$smoke/go/main.go" "$work/go-$mode/"
    (cd "$work/go-$mode" && scrubbed go mod init example.com/app >/dev/null 2>&1)
  done
  printf 'require github.com/libesp/libesp %s\nreplace github.com/libesp/libesp => %s\n' "$version" "${tree[0]}" \
    >> "$work/go-replace/go.mod"
  # cgo compiles one file at a time: the two builds run side by side.
  (cd "$work/go-replace" && timed "go build (replace; cgo compiles libesp)" scrubbed go build -o app .) &
  local replace_build=$!
  (cd "$work/go-fetched" && timed "go get + go build (fetched; cgo compiles libesp)" scrubbed env \
    GOPROXY="file://$pkgs/go" GONOSUMDB=github.com/libesp GOFLAGS=-mod=mod GOMODCACHE="$work/gomodcache" \
    sh -c "go get github.com/libesp/libesp@$version >/dev/null 2>&1 && go build -o app .")
  wait "$replace_build"
  chmod -R u+w "$work/gomodcache" 2>/dev/null || true  # the module cache is read-only
  for mode in replace fetched; do
    ! ldd "$work/go-$mode/app" | grep -q libesp
    (cd "$work/go-$mode" && smoke_run "go-$mode" "$work/go-$mode/app")
  done
}

# The sources inside the sdist, the npm tarball and the .crate are exactly this
# tree's (generated at package time, never edited by hand).
check_bundled_sources() {
  local where=$work/bundled
  mkdir -p "$where"
  tar xzf "$pkgs"/python/libesp-*.tar.gz -C "$where" --wildcards '*/csrc/*'
  tar xzf "$pkgs"/node/libesp-*.tgz -C "$where" package/deps/libesp
  tar xzf "$pkgs"/rust/libesp-*.crate -C "$where" --wildcards '*/libesp-src/*'
  for copy in "$where"/libesp-*/csrc "$where"/package/deps/libesp "$where"/libesp-*/libesp-src; do
    "$repo/packaging/bundle-sources.sh" --check "$copy"
  done
  echo "PASS the sdist, npm tarball and crate carry exactly src/ and include/"
}
[ -n "${*:-}" ] || check_bundled_sources

for lang in $langs; do "test_$lang"; done
echo "test-packages: all passed ($langs)"
