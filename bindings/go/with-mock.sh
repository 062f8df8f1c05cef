#!/usr/bin/env bash
# with-mock.sh CMD...: runs CMD with libesp's mock LLM server up, and with
# OPENAI_BASE_URL and OPENAI_API_KEY pointing at it. The server exits when
# its stdin (our coprocess pipe) closes.
set -euo pipefail
root=${ESP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
coproc MOCK { exec node "$root/test/mock/server.js"; }
mock_out=${MOCK[0]} mock_in=${MOCK[1]} mock_pid=$MOCK_PID
read -r line <&"$mock_out"
port=$(printf '%s\n' "$line" | sed -n 's/.*"http_port":\([0-9][0-9]*\).*/\1/p')
[ -n "$port" ] || { echo "with-mock.sh: unexpected first line from the mock server: $line" >&2; exit 1; }
export OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-test
status=0
"$@" || status=$?
eval "exec $mock_in>&-"
wait "$mock_pid" 2>/dev/null || true
exit "$status"
