#!/usr/bin/env bash
# Runs a command with the bundled mock LLM server up on loopback:
#   test/mock/with-mock.sh cmd args...
# exports ESP_MOCK_HTTP (http://127.0.0.1:PORT), ESP_MOCK_HTTPS and
# ESP_MOCK_CA (the test CA file) to the command, and stops the server after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fifo=$(mktemp -u)
mkfifo "$fifo"
# The server exits when its stdin closes: hold it open with a sleeping writer.
sleep 100000 > "$fifo" &
holder=$!
info=$(mktemp)
node "$here/server.js" < "$fifo" > "$info" &
server=$!
cleanup() { kill "$holder" "$server" 2>/dev/null || true; rm -f "$fifo" "$info"; }
trap cleanup EXIT
for _ in $(seq 1 100); do [ -s "$info" ] && break; sleep 0.05; done
line=$(head -n 1 "$info")
field() { printf '%s' "$line" | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
export ESP_MOCK_HTTP="http://127.0.0.1:$(field http_port)"
export ESP_MOCK_HTTPS="https://localhost:$(field https_port)"
export ESP_MOCK_CA="$(field ca_file)"
"$@"
