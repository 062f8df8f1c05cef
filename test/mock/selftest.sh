#!/usr/bin/env bash
# Self-test of the mock server: starts it, exercises every endpoint and switch over
# plain HTTP/1.1, HTTPS HTTP/2 and HTTPS HTTP/1.1 with the curl CLI, checks the
# results (with small node one-liners for JSON), and exits non-zero on failure.
#
#   bash test/mock/selftest.sh          # prints failures and a summary line
#   VERBOSE=1 bash test/mock/selftest.sh
set -uo pipefail

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SERVER="$DIR/server.js"
TMP=$(mktemp -d)
PASS=0
FAIL=0
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT

ok()  { PASS=$((PASS + 1)); [ -n "${VERBOSE:-}" ] && echo "ok   $1"; return 0; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1" >&2; [ -n "${2:-}" ] && echo "     $2" >&2; return 0; }

# --- a node helper: evaluates a JS expression over some text -------------------
# In the expression: t = the text, j = the text as JSON (or undefined),
# ev = SSE events [{event, data, json}], h = the last response's headers (lower-case).
cat > "$TMP/check.js" <<'EOF'
const fs = require('fs');
const [expr, file, hfile] = process.argv.slice(2);
const t = fs.readFileSync(file, 'utf8');
let j; try { j = JSON.parse(t); } catch (e) {}
const ev = t.split(/\n\n/).filter((b) => b.trim()).map((b) => {
  const o = { event: 'message' };
  for (const line of b.split('\n')) {
    const i = line.indexOf(':'); if (i < 0) continue;
    const k = line.slice(0, i), v = line.slice(i + 1).replace(/^ /, '');
    if (k === 'data') o.data = o.data === undefined ? v : o.data + '\n' + v;
    else if (k === 'event') o.event = v;
  }
  try { o.json = JSON.parse(o.data); } catch (e) {}
  return o;
});
const h = {};
if (hfile && fs.existsSync(hfile)) {
  for (const line of fs.readFileSync(hfile, 'utf8').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) h[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
}
const chat = () => ev.filter((e) => e.json && e.json.choices && e.json.choices.length)
  .map((e) => e.json.choices[0].delta.content || '').join('');
let r;
try { r = eval(expr); } catch (e) { r = false; console.error('     ' + e.message); }
if (!r) { console.error('     expr: ' + expr + '\n     got:  ' + t.slice(0, 400).replace(/\n/g, '\\n')); process.exit(1); }
EOF

# --- a node helper client for what curl cannot show ----------------------------
cat > "$TMP/client.js" <<'EOF'
// node client.js chunks h1|h2 URL HEADERS_JSON BODY -> {"status","chunks","body"}
// node client.js reuse  h1|h2 URL WAIT_MS           -> {"first","second"} (connection ids)
// node client.js h2idle URL WAIT_MS                 -> {"closed": bool}
const http = require('http'), https = require('https'), http2 = require('http2'), fs = require('fs');
const [mode, a, b, c, d] = process.argv.slice(2);
const ca = fs.readFileSync(process.env.CA);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function h1(url, headers, body, agent) {
  return new Promise((resolve, reject) => {
    const u = new URL(url), mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(u, { method: body ? 'POST' : 'GET', headers, ca, agent }, (res) => {
      const parts = [];
      res.on('data', (x) => parts.push(x));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, chunks: parts.length, body: Buffer.concat(parts).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body || undefined);
  });
}
function h2req(session, path, headers, body) {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':method': body ? 'POST' : 'GET', ':path': path, ...headers });
    const parts = []; let head;
    s.on('response', (hd) => { head = hd; });
    s.on('data', (x) => parts.push(x));
    s.on('end', () => resolve({ status: head[':status'], headers: head, chunks: parts.length, body: Buffer.concat(parts).toString() }));
    s.on('error', reject);
    s.end(body || undefined);
  });
}
(async () => {
  if (mode === 'chunks') {
    const headers = JSON.parse(c);
    let r;
    if (a === 'h2') {
      const u = new URL(b), s = http2.connect(u.origin, { ca });
      r = await h2req(s, u.pathname, headers, d); s.close();
    } else r = await h1(b, headers, d);
    console.log(JSON.stringify({ status: r.status, chunks: r.chunks, body: r.body }));
  } else if (mode === 'reuse') {
    let first, second;
    if (a === 'h2') {
      const u = new URL(b), s = http2.connect(u.origin, { ca });
      first = (await h2req(s, u.pathname, {})).headers['x-mock-connection-id'];
      await sleep(Number(c));
      second = (await h2req(s, u.pathname, {})).headers['x-mock-connection-id'];
      s.close();
    } else {
      const agent = new (b.startsWith('https') ? https : http).Agent({ keepAlive: true, maxSockets: 1 });
      first = (await h1(b, {}, null, agent)).headers['x-mock-connection-id'];
      await sleep(Number(c));
      second = (await h1(b, {}, null, agent)).headers['x-mock-connection-id'];
      agent.destroy();
    }
    console.log(JSON.stringify({ first, second }));
  } else if (mode === 'h2idle') {
    const u = new URL(a), s = http2.connect(u.origin, { ca });
    let closed = false;
    s.on('goaway', () => { closed = true; }); s.on('close', () => { closed = true; });
    await h2req(s, u.pathname, {});
    await sleep(Number(b));
    console.log(JSON.stringify({ closed }));
    s.destroy();
  }
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.code || e) })); });
EOF

# check DESC EXPR [FILE]: FILE defaults to the last response body
check() {
  if node "$TMP/check.js" "$2" "${3:-$TMP/body}" "$TMP/head" 2>"$TMP/check.err"; then ok "$1"
  else bad "$1" "$(cat "$TMP/check.err")"; fi
}
# expect DESC CONDITION...: a shell test
expect() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d" "failed: $* (code=$CODE rc=$RC time=$TIME)"; fi; }

# req [curl args...]: sets CODE, TIME, HVER, SIZE, RC; body in $TMP/body, headers in $TMP/head
req() {
  local w
  rm -f "$TMP/body" "$TMP/head"; : > "$TMP/body"
  w=$(curl -sS --max-time 10 --cacert "$CA" -D "$TMP/head" -o "$TMP/body" \
        -w '%{http_code} %{time_total} %{http_version} %{size_download}' "$@" 2>"$TMP/curl.err")
  RC=$?
  read -r CODE TIME HVER SIZE <<<"$w"
  [ -f "$TMP/head" ] || : > "$TMP/head"
}
header() { tr -d '\r' < "$TMP/head" | grep -i "^$1:" | tail -1 | cut -d' ' -f2-; }
ge() { node -e "process.exit(Number(process.argv[1]) >= Number(process.argv[2]) ? 0 : 1)" "$1" "$2"; }

# start_server [args...]: sets MPID, HP, SP, CA; its stdin is a pipe on fd MOCK_IN
start_server() {
  local line
  coproc MOCK { exec node "$SERVER" "$@" 2>>"$TMP/server.err"; }
  MPID=$MOCK_PID
  PIDS+=("$MPID")
  MOCK_IN=${MOCK[1]}
  MOCK_OUT=${MOCK[0]}
  if ! IFS= read -r -t 10 line <&"$MOCK_OUT"; then
    echo "server did not start:" >&2; cat "$TMP/server.err" >&2; exit 1
  fi
  STARTUP=$line
  printf '%s' "$line" > "$TMP/startup"
  HP=$(node -e 'console.log(JSON.parse(process.argv[1]).http_port)' "$line")
  SP=$(node -e 'console.log(JSON.parse(process.argv[1]).https_port)' "$line")
  CA=$(node -e 'console.log(JSON.parse(process.argv[1]).ca_file)' "$line")
  export CA
}

close_fds() { eval "exec $MOCK_IN>&- $MOCK_OUT<&-" 2>/dev/null; }
# stop_server: closes its stdin, which must make it exit
stop_server() {
  close_fds
  local i
  for i in $(seq 50); do kill -0 "$MPID" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

CHAT='{"model":"gpt-test","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello mock world"}]}'
CHAT_STREAM='{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello mock world"}]}'
ANTH='{"model":"claude-test","max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"hello claude"}]}]}'
ANTH_STREAM='{"model":"claude-test","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello claude"}]}'
J=(-H 'content-type: application/json')

stats() { curl -sS --cacert "$CA" "http://127.0.0.1:$HP/_mock/stats" > "$TMP/stats"; }
reset() { curl -sS -X POST "http://127.0.0.1:$HP/_mock/reset" > /dev/null; }

# ------------------------------------------------------------------------------
# suite LABEL BASE CURL_VERSION_FLAG: every endpoint and switch over one transport
suite() {
  local L=$1 B=$2 V=$3 H2=0
  [ "$V" = --http2 ] && H2=1
  local WANTV=1.1; [ $H2 = 1 ] && WANTV=2

  # --- endpoints
  req $V "${J[@]}" -d "$CHAT" "$B/v1/chat/completions"
  expect "$L chat: 200 over HTTP/$WANTV" [ "$CODE" = 200 -a "$HVER" = "$WANTV" ]
  check "$L chat: echo of the last message" 'j.object === "chat.completion" && j.choices[0].message.content === "echo: hello mock world" && j.choices[0].message.role === "assistant" && j.choices[0].finish_reason === "stop" && j.choices[0].index === 0'
  check "$L chat: id, created, model, usage" 'j.id.startsWith("chatcmpl-") && Number.isInteger(j.created) && j.model === "gpt-test" && j.usage.completion_tokens === 4 && j.usage.total_tokens === j.usage.prompt_tokens + 4'
  check "$L chat: json content-type" 'h["content-type"] === "application/json" && h["x-request-id"]'

  req $V "${J[@]}" -d "$CHAT" "$B/chat/completions"
  check "$L chat without /v1" 'j.choices[0].message.content === "echo: hello mock world"'
  req $V "${J[@]}" -d '{"messages":[{"role":"user","content":"az"}]}' "$B/openai/deployments/my-dep/chat/completions?api-version=2024-10-21"
  check "$L chat azure path" 'j.choices[0].message.content === "echo: az" && j.model === "gpt-mock"'
  req $V "${J[@]}" -d '{"model":"x","messages":[]}' "$B/v1/chat/completions"
  check "$L chat without messages: fixed sentence" 'j.choices[0].message.content === "Hello from the libesp mock server."'

  req $V "${J[@]}" -d "$CHAT_STREAM" "$B/v1/chat/completions"
  check "$L chat stream: text/event-stream" 'h["content-type"] === "text/event-stream"'
  check "$L chat stream: role chunk, words, stop, usage, [DONE]" 'ev[0].json.choices[0].delta.role === "assistant" && ev.length === 8 && chat() === "echo: hello mock world" && ev[5].json.choices[0].finish_reason === "stop" && ev[6].json.choices.length === 0 && ev[6].json.usage.completion_tokens === 4 && ev[7].data === "[DONE]"'
  check "$L chat stream: chunk fields" 'ev.slice(0, 7).every(e => e.json.object === "chat.completion.chunk" && e.json.id === ev[0].json.id && e.json.model === "gpt-test" && Number.isInteger(e.json.created)) && ev.slice(0, 6).every(e => e.json.choices[0].index === 0 && "finish_reason" in e.json.choices[0])'
  req $V "${J[@]}" -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"a b"}]}' "$B/v1/chat/completions"
  check "$L chat stream without usage" 'ev.length === 6 && !ev.some(e => e.json && e.json.usage) && ev[5].data === "[DONE]"'

  req $V "${J[@]}" -d "$ANTH" "$B/v1/messages"
  check "$L anthropic message" 'j.type === "message" && j.role === "assistant" && j.model === "claude-test" && j.content[0].type === "text" && j.content[0].text === "echo: hello claude" && j.stop_reason === "end_turn" && j.usage.output_tokens === 3 && j.id.startsWith("msg_")'
  req $V "${J[@]}" -d "$ANTH_STREAM" "$B/v1/messages"
  check "$L anthropic stream: event sequence" 'ev.map(e => e.event).join() === "message_start,content_block_start,content_block_delta,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop" && ev.every(e => e.json.type === e.event)'
  check "$L anthropic stream: text" 'ev.filter(e => e.event === "content_block_delta").map(e => e.json.delta.text).join("") === "echo: hello claude" && ev[0].json.message.model === "claude-test" && ev[6].json.delta.stop_reason === "end_turn"'

  req $V "${J[@]}" -d '{"model":"emb","input":"alpha"}' "$B/v1/embeddings"
  check "$L embeddings: one string, dimension 8" 'j.object === "list" && j.data.length === 1 && j.data[0].object === "embedding" && j.data[0].index === 0 && j.data[0].embedding.length === 8 && j.data[0].embedding.every(x => typeof x === "number" && x >= -1 && x < 1) && j.model === "emb" && j.usage.prompt_tokens === 1'
  cp "$TMP/body" "$TMP/emb1"
  req $V "${J[@]}" -d '{"input":["beta","alpha"]}' "$B/v1/embeddings"
  check "$L embeddings: array, deterministic" 'j.data.length === 2 && j.data[1].index === 1 && JSON.stringify(j.data[1].embedding) === JSON.stringify(JSON.parse(require("fs").readFileSync(file.replace(/body$/, "emb1"))).data[0].embedding) && JSON.stringify(j.data[0].embedding) !== JSON.stringify(j.data[1].embedding)'
  req $V "${J[@]}" -d '{"input":"alpha","encoding_format":"base64"}' "$B/v1/embeddings"
  check "$L embeddings: base64 float32" 'const b = Buffer.from(j.data[0].embedding, "base64"); const e1 = JSON.parse(require("fs").readFileSync(file.replace(/body$/, "emb1"))).data[0].embedding; b.length === 32 && e1.every((x, i) => b.readFloatLE(4 * i) === x)'

  req $V "$B/v1/models"
  check "$L models list" 'j.object === "list" && j.data.length >= 2 && j.data.every(m => m.object === "model" && m.id)'
  req $V "$B/v1/models/gpt-mock"
  check "$L one model" 'j.id === "gpt-mock" && j.object === "model"'

  req $V -X PUT -H 'authorization: Bearer sk-test' -H 'idempotency-key: idem-1' -H 'X-Custom: Mixed' \
      --data-binary 'héllo body' "$B/echo/sub/path?a=1&b=two&a=3"
  check "$L echo" 'j.method === "PUT" && j.path === "/echo/sub/path" && j.query.b === "two" && j.query.a.join() === "1,3" && j.headers.authorization === "Bearer sk-test" && j.headers["idempotency-key"] === "idem-1" && j.headers["x-custom"] === "Mixed" && j.body === "héllo body"'
  check "$L echo http_version" "j.http_version === '$( [ $H2 = 1 ] && echo 2.0 || echo 1.1 )'"
  req $V "$B/echo"
  check "$L echo GET, empty body" 'j.method === "GET" && j.path === "/echo" && j.body === "" && JSON.stringify(j.query) === "{}"'

  req $V "${J[@]}" -d '{"model": nope' "$B/v1/chat/completions"
  expect "$L malformed JSON: 400" [ "$CODE" = 400 ]
  check "$L malformed JSON: error body" 'j.error.type === "invalid_request_error" && j.error.message && "code" in j.error'
  req $V "$B/v1/nothing-here"
  expect "$L unknown path: 404" [ "$CODE" = 404 ]
  req $V "$B/v1/chat/completions"
  expect "$L GET on chat: 405" [ "$CODE" = 405 ]

  # --- stats and reset
  reset
  req $V "$B/echo" "$B/echo" "$B/echo"
  stats
  check "$L stats: 3 requests on 1 connection" 'j.requests === 3 && j.connections === 1 && j.open_connections === 0' "$TMP/stats"
  if [ $H2 = 1 ]; then
    check "$L stats: 1 http2 session" "j.http2_sessions === 1 && j.by_port['$SP'].http2_sessions === 1 && j.by_port['$SP'].requests === 3" "$TMP/stats"
  else
    check "$L stats: no http2 session, by_port" "j.http2_sessions === 0 && j.by_port['$(echo "$B" | sed 's/.*://')'].connections === 1" "$TMP/stats"
  fi
  reset; stats
  check "$L reset zeroes counters" 'j.requests === 0 && j.connections === 0 && j.http2_sessions === 0' "$TMP/stats"

  # --- switches
  req $V -H 'x-mock-delay-ms: 300' "$B/echo"
  expect "$L delay-ms: 200 after >= 300 ms" [ "$CODE" = 200 ]
  expect "$L delay-ms: took >= 0.3 s" ge "$TIME" 0.3

  req $V -H 'x-mock-status: 429' "${J[@]}" -d "$CHAT" "$B/v1/chat/completions"
  expect "$L status 429" [ "$CODE" = 429 ]
  check "$L status: OpenAI error body" 'j.error.type === "rate_limit_error" && typeof j.error.message === "string" && j.error.code === "rate_limit_exceeded"'
  req $V -H 'x-mock-status: 529' "${J[@]}" -d "$ANTH" "$B/v1/messages"
  check "$L status on /v1/messages: anthropic envelope" 'j.type === "error" && j.error.type === "overloaded_error"'

  local K="key-$L-$RANDOM"
  for i in 1 2 3; do
    req $V -H "x-mock-key: $K" -H 'x-mock-fail-times: 2' -H 'x-mock-status: 503' -H 'x-mock-retry-after: 1' \
        -H 'x-mock-retry-after-ms: 250' -H 'x-mock-should-retry: true' -H "idempotency-key: idem-$i" "${J[@]}" -d "$CHAT" "$B/v1/chat/completions"
    if [ $i -le 2 ]; then
      expect "$L fail-times: attempt $i fails with 503" [ "$CODE" = 503 ]
      expect "$L fail-times: retry headers on attempt $i" [ "$(header retry-after)" = 1 -a "$(header retry-after-ms)" = 250 -a "$(header x-should-retry)" = true ]
    else
      expect "$L fail-times: attempt 3 succeeds" [ "$CODE" = 200 ]
      expect "$L fail-times: no retry headers on success" [ -z "$(header retry-after)" ]
      check "$L fail-times: normal body after" 'j.choices[0].message.content === "echo: hello mock world"'
    fi
  done
  curl -sS "http://127.0.0.1:$HP/_mock/requests?key=$K" > "$TMP/recs"
  check "$L requests recorded for the key" 'j.length === 3 && j.map(r => r.idempotency_key).join() === "idem-1,idem-2,idem-3" && j.every(r => r.method === "POST" && r.path === "/v1/chat/completions" && typeof r.t_ms === "number" && r.t_ms > 1.6e12) && j[0].t_ms <= j[1].t_ms' "$TMP/recs"
  curl -sS "http://127.0.0.1:$HP/_mock/requests?key=never-used" > "$TMP/recs"
  check "$L requests for an unknown key: []" 'Array.isArray(j) && j.length === 0' "$TMP/recs"

  K="key2-$L-$RANDOM"
  req $V -H "x-mock-key: $K" -H 'x-mock-fail-times: 1' "$B/echo"
  expect "$L fail-times without status: 500" [ "$CODE" = 500 ]
  req $V -H "x-mock-key: $K" -H 'x-mock-fail-times: 1' "$B/echo"
  expect "$L fail-times without status: then 200" [ "$CODE" = 200 ]
  K="key2u-$L-$RANDOM"
  SOON=$(( $(date +%s%3N) + 60000 ))
  req $V -H "x-mock-key: $K" -H "x-mock-fail-until-ms: $SOON" -H 'x-mock-status: 503' "$B/echo"
  expect "$L fail-until-ms: fails before the instant" [ "$CODE" = 503 ]
  req $V -H "x-mock-key: $K" -H "x-mock-fail-until-ms: $(( SOON - 120000 ))" -H 'x-mock-status: 503' "$B/echo"
  expect "$L fail-until-ms: served after it" [ "$CODE" = 200 ]
  req $V -H 'x-mock-should-retry: false' -H 'x-mock-retry-after-ms: 10' "$B/echo"
  expect "$L should-retry / retry-after-ms headers alone" [ "$CODE" = 200 -a "$(header x-should-retry)" = false -a "$(header retry-after-ms)" = 10 ]

  K="key3-$L-$RANDOM"
  req $V -H "x-mock-key: $K" -H 'x-mock-fail-times: 1' -H 'x-mock-drop: before-headers' "$B/echo"
  expect "$L drop before-headers: transfer error" [ "$RC" != 0 -a "$CODE" = 000 ]
  req $V -H "x-mock-key: $K" -H 'x-mock-fail-times: 1' -H 'x-mock-drop: before-headers' "$B/echo"
  expect "$L drop + fail-times: second attempt succeeds" [ "$RC" = 0 -a "$CODE" = 200 ]
  req $V -H 'x-mock-drop: connection' "$B/echo"
  expect "$L drop connection: transfer error" [ "$RC" != 0 ]

  req $V -H 'x-mock-drop: mid-body' "${J[@]}" -d "$CHAT" "$B/v1/chat/completions"
  expect "$L drop mid-body (JSON): 200 then a transfer error" [ "$RC" != 0 -a "$CODE" = 200 ]
  expect "$L drop mid-body (JSON): partial body" [ "$SIZE" -gt 0 ]
  req $V -H 'x-mock-drop: mid-body' "${J[@]}" -d "$CHAT_STREAM" "$B/v1/chat/completions"
  expect "$L drop mid-body (SSE): transfer error" [ "$RC" != 0 -a "$CODE" = 200 ]
  check "$L drop mid-body (SSE): exactly two events" 'ev.length === 2 && ev[1].json.choices[0].delta.content === "echo: "'

  req $V -m 1 -H 'x-mock-hang: 1' "$B/echo"
  expect "$L hang: client times out (curl 28)" [ "$RC" = 28 ]

  req $V -H 'x-mock-garbage: 1' "$B/echo"
  expect "$L garbage: transfer error" [ "$RC" != 0 ]

  reset
  req $V -H 'x-mock-close: 1' "$B/echo" -H 'x-mock-close: 1' "$B/echo"
  stats
  if [ $H2 = 1 ]; then
    check "$L close on HTTP/2: GOAWAY after the response, 2 connections" 'j.connections === 2 && j.http2_sessions === 2' "$TMP/stats"
  else
    expect "$L close: connection: close header" [ "$(header connection)" = close ]
    check "$L close: 2 requests need 2 connections" 'j.connections === 2 && j.requests === 2' "$TMP/stats"
  fi

  req $V -H 'x-mock-body-bytes: 100000' "$B/v1/chat/completions"
  expect "$L body-bytes: 100000 bytes" [ "$CODE" = 200 -a "$SIZE" = 100000 -a "$(header content-length)" = 100000 ]
  check "$L body-bytes: all x" '/^x{100000}$/.test(t)'
  req $V -H 'x-mock-body-bytes: 5000000' "$B/echo"
  expect "$L body-bytes: 5 MB in pieces" [ "$CODE" = 200 -a "$SIZE" = 5000000 -a "$(header content-length)" = 5000000 ]
  req $V -H 'x-mock-body-bytes: 3000000' -H 'x-mock-drop: mid-body' "$B/echo"
  expect "$L body-bytes + mid-body: 1.5 MB then an error" [ "$RC" != 0 -a "$CODE" = 200 -a "$SIZE" -ge 1000000 -a "$SIZE" -le 1500000 ]
  req $V -H 'x-mock-body-bytes: 0' "$B/echo"
  expect "$L body-bytes: 0" [ "$CODE" = 200 -a "$SIZE" = 0 ]

  req $V -H 'x-mock-chunk-delay-ms: 100' "${J[@]}" -d "$CHAT_STREAM" "$B/v1/chat/completions"
  expect "$L chunk-delay-ms: 8 events take >= 0.7 s" ge "$TIME" 0.7
  check "$L chunk-delay-ms: stream intact" 'chat() === "echo: hello mock world" && ev[ev.length - 1].data === "[DONE]"'

  req $V -H 'x-mock-events: 5' "${J[@]}" -d "$CHAT_STREAM" "$B/v1/chat/completions"
  check "$L events: 5 content chunks" 'ev.length === 9 && chat() === "tok0 tok1 tok2 tok3 tok4 " && ev.filter(e => e.json && e.json.choices && e.json.choices[0] && e.json.choices[0].delta.content).length === 5'
  req $V -H 'x-mock-events: 3' "${J[@]}" -d "$ANTH_STREAM" "$B/v1/messages"
  check "$L events on anthropic stream" 'ev.filter(e => e.event === "content_block_delta").length === 3'
  req $V -H 'x-mock-events: 0' "${J[@]}" -d "$CHAT_STREAM" "$B/v1/chat/completions"
  check "$L events: 0" 'ev.length === 4 && chat() === ""'

  req $V -H 'x-mock-slowloris: 40' "$B/v1/chat/completions"
  expect "$L slowloris: 20 bytes over >= 0.75 s" [ "$CODE" = 200 -a "$SIZE" = 20 ]
  expect "$L slowloris: slow" ge "$TIME" 0.75
  req $V -m 0.5 -H 'x-mock-slowloris: 200' "$B/v1/chat/completions"
  expect "$L slowloris: headers arrive before the body" [ "$RC" = 28 -a "$CODE" = 200 ]

  req $V -H 'x-mock-delay-ms: 100' -H 'x-mock-status: 500' -H 'x-mock-retry-after: 2' "$B/echo"
  expect "$L combined: delay + status + retry-after" [ "$CODE" = 500 -a "$(header retry-after)" = 2 ] && expect "$L combined: delayed" ge "$TIME" 0.1

  # byte-by-byte: the client sees many small chunks, the content is unchanged
  local proto=h1; [ $H2 = 1 ] && proto=h2
  node "$TMP/client.js" chunks $proto "$B/v1/chat/completions" '{"x-mock-byte-by-byte":"1","content-type":"application/json"}' "$CHAT_STREAM" > "$TMP/bb"
  check "$L byte-by-byte: many chunks, intact stream" 'j.status === 200 && j.chunks > 100 && j.body.includes("data: [DONE]") && j.body.includes("\"content\":\"echo: \"")' "$TMP/bb"
  node "$TMP/client.js" chunks $proto "$B/v1/chat/completions" '{"x-mock-byte-by-byte":"1","content-type":"application/json"}' "$CHAT" > "$TMP/bb"
  check "$L byte-by-byte on a JSON body" 'const b = JSON.parse(j.body); j.chunks > 20 && b.choices[0].message.content === "echo: hello mock world"' "$TMP/bb"
  # keep-alive: the default keeps an idle connection
  node "$TMP/client.js" reuse $proto "$B/echo" 300 > "$TMP/ru"
  check "$L keep-alive: reused after 300 ms idle" 'j.first && j.first === j.second' "$TMP/ru"

  req $V "$B/_mock/health"
  expect "$L server still healthy" [ "$CODE" = 200 ]
}

# ------------------------------------------------------------------------------
start_server
check "startup line: ports, ca_file, pid" "j.http_port > 0 && j.https_port > 0 && j.ca_file === '$DIR/certs/ca.pem' && j.pid === $MPID" "$TMP/startup"
expect "startup: exactly one stdout line so far" [ "$(printf '%s' "$STARTUP" | wc -l)" = 0 ]
expect "ca_file exists" [ -f "$CA" ]

suite "http1" "http://127.0.0.1:$HP" --http1.1
suite "h2" "https://localhost:$SP" --http2
suite "https1" "https://localhost:$SP" --http1.1
suite "https-ip" "https://127.0.0.1:$SP" --http2

# the certificate: SAN, chain
openssl verify -CAfile "$DIR/certs/ca.pem" "$DIR/certs/server.pem" > /dev/null 2>&1
expect "server cert verifies against ca.pem" [ $? = 0 ]

# proxy: CONNECT tunnel to the TLS port, absolute-form request on the plain port
reset
req --http1.1 -x "http://127.0.0.1:$HP" "https://localhost:$SP/echo"
expect "CONNECT proxy to the TLS port" [ "$CODE" = 200 ]
stats
check "CONNECT counted" 'j.proxy_connects === 1' "$TMP/stats"
req -x "http://127.0.0.1:$HP" "http://api.example.invalid/echo/p?q=1"
check "plain proxy request (absolute-form)" 'j.path === "/echo/p" && j.url === "http://api.example.invalid/echo/p?q=1" && j.query.q === "1"'

# stats: control connections are not counted, open connections are
reset
node -e '
const http = require("http"); const agent = new http.Agent({ keepAlive: true });
const get = (p) => new Promise((r, e) => http.get({ host: "127.0.0.1", port: +process.argv[1], path: p, agent }, (res) => { let b = ""; res.on("data", (c) => b += c); res.on("end", () => r(b)); }).on("error", e));
(async () => { await get("/echo"); await get("/echo"); const s = await get("/_mock/stats"); console.log(s); agent.destroy(); })();
' "$HP" > "$TMP/stats"
check "stats via a pooled API connection: counted, open" 'j.connections === 1 && j.open_connections === 1 && j.requests === 2 && j.control_requests >= 1' "$TMP/stats"
stats
check "stats after that pool closed: open 0" 'j.connections === 1 && j.open_connections === 0' "$TMP/stats"

# h2: stream resets do not hurt other streams of the session (one curl, 3 URLs)
req --http2 "https://localhost:$SP/echo" -H 'x-mock-drop: before-headers' "https://localhost:$SP/echo"
expect "h2 stream reset does not crash the server" [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/_mock/health")" = 200 ]

stop_server
expect "exits on stdin EOF" [ $? = 0 ]

# --close-after-response
start_server --close-after-response
reset
req --http1.1 "http://127.0.0.1:$HP/echo" "http://127.0.0.1:$HP/echo"
expect "--close-after-response: connection: close" [ "$(header connection)" = close ]
stats
check "--close-after-response: one connection per request" 'j.connections === 2' "$TMP/stats"
req --http1.1 "https://localhost:$SP/echo" "https://localhost:$SP/echo"
stats
check "--close-after-response on HTTPS HTTP/1.1" 'j.connections === 4' "$TMP/stats"
stop_server || bad "second server did not exit on stdin EOF"

# --idle-close-ms
start_server --idle-close-ms 200
node "$TMP/client.js" reuse h1 "http://127.0.0.1:$HP/echo" 500 > "$TMP/ru"
check "--idle-close-ms: HTTP/1.1 idle connection closed" 'j.first && j.second && j.first !== j.second' "$TMP/ru"
# (node's Agent obeys the "keep-alive: timeout=0" hint, so check reuse within the window with curl)
reset
req --http1.1 "http://127.0.0.1:$HP/echo" "http://127.0.0.1:$HP/echo"
stats
check "--idle-close-ms: still reused when not idle long" 'j.connections === 1 && j.requests === 2' "$TMP/stats"
node "$TMP/client.js" reuse h1 "https://localhost:$SP/echo" 500 > "$TMP/ru"
check "--idle-close-ms: HTTPS HTTP/1.1 idle connection closed" 'j.first && j.second && j.first !== j.second' "$TMP/ru"
node "$TMP/client.js" h2idle "https://localhost:$SP/echo" 500 > "$TMP/ru"
check "--idle-close-ms: HTTP/2 session closed (GOAWAY)" 'j.closed === true' "$TMP/ru"
# SIGTERM
kill -TERM "$MPID"
for i in $(seq 50); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
expect "exits on SIGTERM" bash -c "! kill -0 $MPID 2>/dev/null"
close_fds

# fixed ports and bad arguments
FREE=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{const p=s.address().port;s.close(()=>console.log(p))})')
FREE2=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{const p=s.address().port;s.close(()=>console.log(p))})')
start_server --port "$FREE" --tls-port "$FREE2"
expect "--port/--tls-port honoured" [ "$HP" = "$FREE" -a "$SP" = "$FREE2" ]
stop_server
# parent death: stdin inherited from a pipe that stays open, the parent shell exits
mkfifo "$TMP/fifo"; exec {HOLD}<>"$TMP/fifo"
bash -c 'node "$1" > "$2" 2>/dev/null & sleep 1' _ "$SERVER" "$TMP/orphan.out" <&$HOLD
for i in $(seq 100); do [ -s "$TMP/orphan.out" ] && break; sleep 0.1; done
OPID=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pid)' "$TMP/orphan.out")
PIDS+=("$OPID")
for i in $(seq 30); do kill -0 "$OPID" 2>/dev/null || break; sleep 0.1; done
expect "exits when its parent dies (stdin still open)" bash -c "[ -n '$OPID' ] && ! kill -0 '$OPID' 2>/dev/null"
eval "exec $HOLD>&-"
# --no-stdin-watch: stdin at EOF, runs until SIGTERM
node "$SERVER" --no-stdin-watch < /dev/null > "$TMP/nsw.out" 2>/dev/null &
NPID=$!; PIDS+=("$NPID")
sleep 1
expect "--no-stdin-watch: survives stdin EOF" kill -0 "$NPID"
expect "--no-stdin-watch: startup line" [ "$(wc -l < "$TMP/nsw.out")" = 1 ]
kill -TERM "$NPID"; wait "$NPID" 2>/dev/null
expect "--no-stdin-watch: exits on SIGTERM" bash -c "! kill -0 $NPID 2>/dev/null"
node "$SERVER" --bogus < /dev/null > "$TMP/bogus.out" 2>/dev/null
expect "unknown argument: exit 2, nothing on stdout" [ $? = 2 -a ! -s "$TMP/bogus.out" ]

if grep -q -E 'uncaught|unhandled|error in' "$TMP/server.err"; then
  bad "server stderr shows errors" "$(head -20 "$TMP/server.err")"
fi

echo "mock selftest: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
