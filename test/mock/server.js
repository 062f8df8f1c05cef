#!/usr/bin/env node
// libesp mock LLM server: OpenAI / Anthropic / embeddings / echo endpoints plus
// fault switches, on plain HTTP/1.1 and on TLS (HTTP/2 via ALPN, and HTTP/1.1).
// Zero dependencies: Node >= 20 built-in modules only. See README.md beside it.
//
//   node test/mock/server.js [--port N] [--tls-port N] [--host 127.0.0.1]
//        [--close-after-response] [--idle-close-ms N] [--verbose] [--no-stdin-watch]
//
// Prints ONE line of JSON on stdout once both listeners are up, then nothing else.
// Exits on stdin EOF, on SIGTERM/SIGINT and when its parent process goes away
// (--no-stdin-watch: only on SIGTERM/SIGINT).
'use strict';

const http = require('http');
const http2 = require('http2');
const https = require('https');
const net = require('net');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const util = require('util');

// ---------------------------------------------------------------------------
// Command line

function usage(msg) {
  process.stderr.write(`mock server: ${msg}\n` +
    'usage: node server.js [--port N] [--tls-port N] [--host ADDR] [--close-after-response] [--tls-http1-only]\n' +
    '                      [--idle-close-ms N] [--verbose] [--no-stdin-watch]\n' +
    '                      [--rpm N] [--tpm N] [--rl-window-ms N] [--rl-headers openai|anthropic|both|none]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { port: 0, tlsPort: 0, host: '127.0.0.1', verbose: false,
              closeAfterResponse: false, tlsHttp1Only: false, idleCloseMs: 0, stdinWatch: true,
              rpm: 0, tpm: 0, rlWindowMs: 60000, rlHeaders: 'both' };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i], v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) { v = a.slice(eq + 1); a = a.slice(0, eq); }
    const value = () => {
      if (v === undefined) { v = argv[++i]; if (v === undefined) usage(`${a} needs a value`); }
      return v;
    };
    const int = () => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 0) usage(`${a}: not a non-negative integer: ${v}`);
      return n;
    };
    switch (a) {
      case '--port': o.port = int(); break;
      case '--tls-port': o.tlsPort = int(); break;
      case '--host': o.host = value(); break;
      case '--close-after-response': o.closeAfterResponse = true; break;
      case '--tls-http1-only': o.tlsHttp1Only = true; break;
      case '--idle-close-ms': o.idleCloseMs = int(); break;
      case '--verbose': case '-v': o.verbose = true; break;
      case '--no-stdin-watch': o.stdinWatch = false; break;
      case '--rpm': o.rpm = int(); break;
      case '--tpm': o.tpm = int(); break;
      case '--rl-window-ms': o.rlWindowMs = int(); break;
      case '--rl-headers': o.rlHeaders = value(); break;
      case '--help': case '-h': usage('help');
      // falls through (usage exits)
      default: usage(`unknown argument ${a}`);
    }
  }
  return o;
}

const PARENT_PID = process.ppid;   // taken first thing, for the parent-death watch
const opts = parseArgs(process.argv.slice(2));

function log(...args) {
  if (opts.verbose) process.stderr.write(`[mock ${new Date().toISOString()}] ${util.format(...args)}\n`);
}

const CERT_DIR = path.join(__dirname, 'certs');
const CA_FILE = path.resolve(CERT_DIR, 'ca.pem');
const MAX_BODY = 64 * 1024 * 1024;
const H2 = http2.constants;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));
const nowMs = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------
// Counters and per-key state
//
// A connection counts in "connections"/"open_connections" from its accept on,
// unless every request it has carried so far was a /_mock/* control request
// (so a test's own stats/reset calls do not disturb its numbers). Connections
// accepted before the last reset never count in "connections" again, but the
// open gauges are never reset (they say what is open now).

let epoch = 0;            // bumped by /_mock/reset
let connSeq = 0;
let reqSeq = 0;
let counters;             // reset by /_mock/reset
const openGauge = { counted: 0, all: 0, byPort: new Map() };  // never reset
const connsByAddr = new Map();                                 // "lport:rport" -> Conn
let keys = new Map();     // x-mock-key -> { count, records }

// ---------------------------------------------------------------------------
// Rate-limited mode (--rpm / --tpm, or POST /_mock/rate-limit): per API key,
// a provider-style token bucket for requests and one for tokens. A bucket
// holds window_ms worth of its per-minute limit (60 s: a provider's minute)
// and refills continuously. Past either: 429 with retry-after(-ms).

const rl = { rpm: opts.rpm, tpm: opts.tpm, windowMs: Math.max(1, opts.rlWindowMs), headers: opts.rlHeaders,
             keys: new Map(), sent429: 0 };
if (!['openai', 'anthropic', 'both', 'none'].includes(rl.headers)) usage('--rl-headers: openai, anthropic, both or none');

function configureRateLimit(j) {
  const num = (v, name, min) => {
    if (v === undefined) return null;
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}`);
    return v;
  };
  try {
    const rpm = num(j.rpm, 'rpm', 0), tpm = num(j.tpm, 'tpm', 0), w = num(j.window_ms, 'window_ms', 1);
    if (j.headers !== undefined && !['openai', 'anthropic', 'both', 'none'].includes(j.headers)) {
      throw new Error('headers must be openai, anthropic, both or none');
    }
    if (rpm !== null) rl.rpm = rpm;
    if (tpm !== null) rl.tpm = tpm;
    if (w !== null) rl.windowMs = w;
    if (j.headers !== undefined) rl.headers = j.headers;
  } catch (e) {
    return e.message;
  }
  rl.keys = new Map();   // a new configuration starts every key afresh
  rl.sent429 = 0;
  return null;
}

function rateLimitJson() {
  const keysOut = {};
  for (const [k, s] of rl.keys) {
    keysOut[k] = { requests: s.requests, tokens: s.tokens, rejected: s.rejected,
                   first_ms: s.firstMs, last_ms: s.lastMs, admitted_per_second: Array.from(s.bySecond, (n) => n || 0) };
  }
  return { rpm: rl.rpm, tpm: rl.tpm, window_ms: rl.windowMs, headers: rl.headers,
           sent_429: rl.sent429, now_ms: nowMs(), keys: keysOut };
}

class Bucket {
  constructor(perMinute) {
    this.perMinute = perMinute;
    this.capacity = Math.max(1, perMinute * rl.windowMs / 60000);
    this.level = this.capacity;
    this.at = nowMs();
  }
  refill(now) {
    if (now <= this.at) return;
    this.level = Math.min(this.capacity, this.level + (now - this.at) * this.perMinute / 60000);
    this.at = now;
  }
  msUntil(cost) { return cost <= this.level ? 0 : (Math.min(cost, this.capacity) - this.level) * 60000 / this.perMinute; }
  msUntilFull() { return (this.capacity - this.level) * 60000 / this.perMinute; }
}

// The credential a request carries, as a hash (the control API shows it).
function apiKeyOf(h) {
  const auth = headerOf(h, 'authorization');
  const key = auth ? String(auth).replace(/^Bearer\s+/i, '')
    : headerOf(h, 'x-api-key') ?? headerOf(h, 'api-key') ?? headerOf(h, 'x-goog-api-key') ?? '';
  return crypto.createHash('sha256').update(String(key)).digest('hex').slice(0, 16);
}

// What the request will use: prompt and reply words, as the usage reports them.
function tokensOf(ctx, body) {
  if (!/\/(chat\/completions|messages|embeddings)$/.test(ctx.path)) return 0;
  let j;
  try { j = JSON.parse(body.toString('utf8')); } catch (e) { return 0; }
  if (!j || typeof j !== 'object') return 0;
  if (/\/embeddings$/.test(ctx.path)) {
    const inputs = Array.isArray(j.input) ? j.input : [j.input];
    return inputs.reduce((n, x) => n + (typeof x === 'string' ? Math.max((x.match(/\S+/g) || []).length, 1) : Array.isArray(x) ? x.length : 0), 0);
  }
  return countTokens(j.messages) + replyPieces(ctx, j.messages).length;
}

function rfc3339In(ms) { return new Date(Date.now() + ms).toISOString().replace(/\.\d+Z$/, 'Z'); }
function durationText(ms) { return ms < 1000 ? `${Math.ceil(ms)}ms` : `${(ms / 1000).toFixed(3)}s`; }

function rateLimitHeaders(ctx, req, tok) {
  const put = (limit, b, openaiName, anthropicName) => {
    if (!b) return;
    const remaining = String(Math.max(0, Math.floor(b.level)));
    const reset = b.msUntilFull();
    if (rl.headers === 'openai' || rl.headers === 'both') {
      ctx.extraHeaders[`x-ratelimit-limit-${openaiName}`] = String(limit);
      ctx.extraHeaders[`x-ratelimit-remaining-${openaiName}`] = remaining;
      ctx.extraHeaders[`x-ratelimit-reset-${openaiName}`] = durationText(reset);
    }
    if (rl.headers === 'anthropic' || rl.headers === 'both') {
      ctx.extraHeaders[`anthropic-ratelimit-${anthropicName}-limit`] = String(limit);
      ctx.extraHeaders[`anthropic-ratelimit-${anthropicName}-remaining`] = remaining;
      ctx.extraHeaders[`anthropic-ratelimit-${anthropicName}-reset`] = rfc3339In(reset);
    }
  };
  put(rl.rpm, req, 'requests', 'requests');
  put(rl.tpm, tok, 'tokens', 'tokens');
}

// True when it answered 429.
function rateLimited(ctx, body) {
  if (!rl.rpm && !rl.tpm) return false;
  const key = apiKeyOf(ctx.headers);
  let s = rl.keys.get(key);
  const now = nowMs();
  if (!s) {
    s = { req: rl.rpm ? new Bucket(rl.rpm) : null, tok: rl.tpm ? new Bucket(rl.tpm) : null,
          requests: 0, tokens: 0, rejected: 0, firstMs: now, lastMs: now, bySecond: [] };
    rl.keys.set(key, s);
  }
  const cost = tokensOf(ctx, body);
  if (s.req) s.req.refill(now);
  if (s.tok) s.tok.refill(now);
  const waitMs = Math.max(s.req ? s.req.msUntil(1) : 0, s.tok ? s.tok.msUntil(cost) : 0);
  if (waitMs > 0) {
    s.rejected++;
    rl.sent429++;
    rateLimitHeaders(ctx, s.req, s.tok);
    ctx.extraHeaders['retry-after-ms'] = String(Math.ceil(waitMs));
    ctx.extraHeaders['retry-after'] = String(Math.ceil(waitMs / 1000));
    sendError(ctx, 429, `mock: rate limit reached for ${s.req && s.req.msUntil(1) > 0 ? 'requests' : 'tokens'}`);
    return true;
  }
  if (s.req) s.req.level -= 1;
  if (s.tok) s.tok.level -= Math.min(cost, s.tok.level);
  s.requests++;
  s.tokens += cost;
  s.lastMs = now;
  const second = Math.floor((now - s.firstMs) / 1000);
  s.bySecond[second] = (s.bySecond[second] || 0) + 1;
  rateLimitHeaders(ctx, s.req, s.tok);
  return false;
}

function resetCounters() {
  counters = { connections: 0, all_connections: 0, requests: 0, control_requests: 0,
               http2_sessions: 0, proxy_connects: 0, responses_429: 0, byPort: new Map() };
  rl.keys = new Map();
  rl.sent429 = 0;
  keys = new Map();
  epoch++;
}
resetCounters();

function portCounters(port) {
  let p = counters.byPort.get(port);
  if (!p) counters.byPort.set(port, p = { connections: 0, requests: 0, http2_sessions: 0 });
  return p;
}

class Conn {
  constructor(socket, port, scheme) {
    this.id = ++connSeq;
    this.port = port;
    this.scheme = scheme;
    this.epoch = epoch;
    this.counted = true;
    this.open = true;
    this.h2 = false;
    this.requests = 0;
    this.apiRequests = 0;
    this.addr = `${socket.localPort}:${socket.remotePort}`;
    this.activeStreams = 0;   // HTTP/2 only
    this.idleTimer = null;    // HTTP/2 --idle-close-ms
  }
  // +1 / -1 on the counters this connection takes part in (total since reset, and open now)
  adjust(d, { total = true, open = true } = {}) {
    if (total && this.epoch === epoch) {
      counters.connections += d;
      portCounters(this.port).connections += d;
      if (this.h2) { counters.http2_sessions += d; portCounters(this.port).http2_sessions += d; }
    }
    if (open && this.open) {
      openGauge.counted += d;
      openGauge.byPort.set(this.port, (openGauge.byPort.get(this.port) || 0) + d);
    }
  }
}

function trackConnection(socket, port, scheme) {
  const c = new Conn(socket, port, scheme);
  socket.setNoDelay(true);
  connsByAddr.set(c.addr, c);
  counters.all_connections++;
  openGauge.all++;
  c.adjust(+1);
  socket.once('close', () => {
    if (c.counted) c.adjust(-1, { total: false });
    c.open = false;
    openGauge.all--;
    if (c.idleTimer) clearTimeout(c.idleTimer);
    if (connsByAddr.get(c.addr) === c) connsByAddr.delete(c.addr);
    log(`conn #${c.id} closed (${scheme}:${port})`);
  });
  socket.on('error', (e) => log(`conn #${c.id} socket error: ${e.code || e.message}`));
  log(`conn #${c.id} accepted (${scheme}:${port}) from ${socket.remotePort}`);
  return c;
}

function lookupConn(socket) {
  if (!socket) return null;
  return connsByAddr.get(`${socket.localPort}:${socket.remotePort}`) || null;
}

function accountRequest(conn, port, control) {
  if (control) {
    counters.control_requests++;
  } else {
    counters.requests++;
    portCounters(port).requests++;
  }
  if (!conn) return;
  conn.requests++;
  if (control) {
    if (conn.apiRequests === 0 && conn.counted) { conn.counted = false; conn.adjust(-1); }
  } else {
    conn.apiRequests++;
    if (!conn.counted) { conn.counted = true; conn.adjust(+1); }
  }
}

function statsJson() {
  const byPort = {};
  for (const [port, scheme] of listenerSchemes) {
    const p = portCounters(port);
    byPort[port] = { scheme, connections: p.connections, open_connections: openGauge.byPort.get(port) || 0,
                     requests: p.requests, http2_sessions: p.http2_sessions };
  }
  return {
    connections: counters.connections,
    open_connections: openGauge.counted,
    requests: counters.requests,
    http2_sessions: counters.http2_sessions,
    by_port: byPort,
    all_connections: counters.all_connections,
    all_open_connections: openGauge.all,
    control_requests: counters.control_requests,
    proxy_connects: counters.proxy_connects,
    responses_429: counters.responses_429,
    rate_limited_429: rl.sent429,
  };
}

function keyState(k) {
  let s = keys.get(k);
  if (!s) keys.set(k, s = { count: 0, records: [] });
  return s;
}

// ---------------------------------------------------------------------------
// Request context, headers, body

function headerOf(h, name) {
  const v = h[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function intHeader(h, name) {
  const v = headerOf(h, name);
  if (v === undefined) return null;
  const n = Number(String(v).trim());
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : null;
}

function truthy(v) {
  return v !== undefined && !/^(0|false|no|off|)$/i.test(String(v).trim());
}

function parseFaults(h) {
  const status = intHeader(h, 'x-mock-status');
  const drop = headerOf(h, 'x-mock-drop');
  const f = {
    key: headerOf(h, 'x-mock-key') ?? null,
    failTimes: intHeader(h, 'x-mock-fail-times'),
    failUntilMs: intHeader(h, 'x-mock-fail-until-ms'),
    // gated by fail-times (apply only to the first N requests of the key)
    status: status !== null && status >= 200 && status <= 599 ? status : null,
    delayMs: intHeader(h, 'x-mock-delay-ms') || 0,
    retryAfter: headerOf(h, 'x-mock-retry-after') ?? null,
    retryAfterMs: headerOf(h, 'x-mock-retry-after-ms') ?? null,
    shouldRetry: headerOf(h, 'x-mock-should-retry') ?? null,
    drop: drop ? String(drop).trim().toLowerCase() : null,
    hang: truthy(headerOf(h, 'x-mock-hang')),
    garbage: truthy(headerOf(h, 'x-mock-garbage')),
    slowlorisMs: intHeader(h, 'x-mock-slowloris'),
    // always applied (they shape successful responses too)
    close: truthy(headerOf(h, 'x-mock-close')),
    bodyBytes: intHeader(h, 'x-mock-body-bytes'),
    chunkDelayMs: intHeader(h, 'x-mock-chunk-delay-ms') || 0,
    byteByByte: truthy(headerOf(h, 'x-mock-byte-by-byte')),
    events: intHeader(h, 'x-mock-events'),
  };
  if (f.drop !== null && !['before-headers', 'mid-body', 'connection'].includes(f.drop)) f.drop = null;
  return f;
}

function disarm(f) {   // a request past x-mock-fail-times: serve it normally
  Object.assign(f, { status: null, delayMs: 0, retryAfter: null, retryAfterMs: null,
                     shouldRetry: null, drop: null, hang: false, garbage: false, slowlorisMs: null });
}

function makeCtx(req, res, port, scheme) {
  const h2 = req.httpVersionMajor === 2;
  let u;
  try { u = new URL(req.url || '/', 'http://mock.invalid'); } catch (e) { u = new URL('http://mock.invalid/'); }
  const query = {};
  for (const [k, v] of u.searchParams) {
    if (Object.prototype.hasOwnProperty.call(query, k)) query[k] = [].concat(query[k], v);
    else query[k] = v;
  }
  const headers = {}, pseudo = {};
  for (const [k, v] of Object.entries(req.headers)) (k.startsWith(':') ? pseudo : headers)[k] = v;
  // A base path "/_faults/status=500,retry-after=1/..." gives every request
  // under it the faults of those x-mock-* headers: one server plays a failing
  // endpoint and a healthy one side by side (libesp's deployments).
  let path = u.pathname;
  const pf = /^\/_faults\/([^/]*)(\/.*)?$/.exec(path);
  if (pf) {
    for (const kv of pf[1].split(',')) {
      const eq = kv.indexOf('=');
      if (eq > 0 && headers[`x-mock-${kv.slice(0, eq)}`] === undefined) headers[`x-mock-${kv.slice(0, eq)}`] = kv.slice(eq + 1);
    }
    path = pf[2] || '/';
  }
  const conn = h2 ? req.stream.session && req.stream.session.mockConn : lookupConn(req.socket);
  const ctx = {
    id: ++reqSeq, req, res, h2, port, scheme, conn: conn || null,
    method: req.method, url: req.url, path, query, headers, pseudo,
    f: null, extraHeaders: {}, closed: false, status: 0,
  };
  res.on('close', () => { ctx.closed = true; });
  res.on('error', (e) => log(`req #${ctx.id} response error: ${e.code || e.message}`));
  req.on('error', (e) => log(`req #${ctx.id} request error: ${e.code || e.message}`));
  if (h2) req.stream.on('error', (e) => log(`req #${ctx.id} stream error: ${e.code || e.message}`));
  return ctx;
}

function gone(ctx) {
  if (ctx.closed) return true;
  if (ctx.h2) return ctx.req.stream.destroyed || ctx.req.stream.closed;
  return !ctx.req.socket || ctx.req.socket.destroyed;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0, done = false;
    const fail = (e) => { if (!done) { done = true; reject(e); } };
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) { fail(Object.assign(new Error('body too large'), { code: 'TOO_LARGE' })); req.resume(); return; }
      if (!done) chunks.push(c);
    });
    req.on('end', () => { if (!done) { done = true; resolve(Buffer.concat(chunks)); } });
    req.on('error', fail);
    req.on('aborted', () => fail(new Error('aborted')));
    req.on('close', () => fail(new Error('closed before the body was read')));
  });
}

// ---------------------------------------------------------------------------
// Response writing (all bodies go through here, so every switch applies)

const H2_FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function writeHead(ctx, status, headers, flush = true) {
  const h = {
    'x-request-id': `req_mock_${ctx.id}`,
    'x-mock-connection-id': String(ctx.conn ? ctx.conn.id : 0),
    ...headers,
    ...ctx.extraHeaders,
  };
  if (!ctx.h2 && (opts.closeAfterResponse || (ctx.f && ctx.f.close))) h.connection = 'close';
  if (ctx.h2) for (const k of Object.keys(h)) if (H2_FORBIDDEN.has(k.toLowerCase())) delete h[k];
  ctx.status = status;
  if (status === 429) counters.responses_429++;
  ctx.res.writeHead(status, h);
  if (flush && typeof ctx.res.flushHeaders === 'function') ctx.res.flushHeaders();
}

// write and wait until the chunk reached the socket (or the client went away)
function writeFlushed(ctx, data) {
  return new Promise((resolve) => {
    if (gone(ctx)) return resolve(false);
    let settled = false;
    const fin = (ok) => { if (!settled) { settled = true; ctx.res.off('close', onClose); resolve(ok); } };
    const onClose = () => fin(false);
    ctx.res.once('close', onClose);
    try { ctx.res.write(data, (err) => fin(!err)); } catch (e) { fin(false); }
  });
}

// write, waiting only when the stream asks for backpressure
function writeFast(ctx, data) {
  if (gone(ctx)) return Promise.resolve(false);
  let ok;
  try { ok = ctx.res.write(data); } catch (e) { return Promise.resolve(false); }
  if (ok) return Promise.resolve(true);
  return new Promise((resolve) => {
    const fin = (v) => { ctx.res.off('drain', onDrain); ctx.res.off('close', onClose); resolve(v); };
    const onDrain = () => fin(true), onClose = () => fin(false);
    ctx.res.on('drain', onDrain);
    ctx.res.on('close', onClose);
  });
}

async function writeBytes(ctx, buf, flush) {
  if (ctx.f && ctx.f.byteByByte) {
    for (let i = 0; i < buf.length; i++) {
      if (!(await writeFlushed(ctx, buf.subarray(i, i + 1)))) return false;
      // let the reader catch up now and then, so the bytes are not coalesced again
      await (i % 16 === 15 ? sleep(1) : tick());
    }
    return true;
  }
  return flush ? writeFlushed(ctx, buf) : writeFast(ctx, buf);
}

// tear the response down mid-flight: RST_STREAM on HTTP/2, TCP close on HTTP/1
function abortResponse(ctx, h2Code = H2.NGHTTP2_INTERNAL_ERROR) {
  ctx.closed = true;
  if (ctx.h2) {
    try { ctx.req.stream.close(h2Code); } catch (e) { /* already gone */ }
  } else if (ctx.req.socket) {
    ctx.req.socket.destroy();
  }
}

function endResponse(ctx) {
  if (!gone(ctx)) ctx.res.end();
}

async function sendBody(ctx, status, headers, body) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const noBody = status === 204 || status === 304;
  writeHead(ctx, status, noBody ? headers : { ...headers, 'content-length': String(buf.length) }, false);
  if (noBody || ctx.method === 'HEAD') return endResponse(ctx);
  if (ctx.f && ctx.f.drop === 'mid-body') {
    await writeBytes(ctx, buf.subarray(0, Math.floor(buf.length / 2)), true);
    return abortResponse(ctx);
  }
  if (ctx.f && ctx.f.byteByByte) {
    if (await writeBytes(ctx, buf, true)) endResponse(ctx);
    return;
  }
  if (!gone(ctx)) ctx.res.end(buf);   // headers and body in one write
}

function sendJson(ctx, status, obj, headers = {}) {
  return sendBody(ctx, status, { 'content-type': 'application/json', ...headers }, JSON.stringify(obj));
}

// events: array of complete SSE event strings ("data: ...\n\n")
async function sendSse(ctx, events) {
  writeHead(ctx, 200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const f = ctx.f || {};
  const careful = f.chunkDelayMs > 0 || f.byteByByte || f.drop === 'mid-body';
  for (let i = 0; i < events.length; i++) {
    if (i > 0 && f.chunkDelayMs > 0) await sleep(f.chunkDelayMs);
    if (gone(ctx)) return;
    if (!(await writeBytes(ctx, Buffer.from(events[i]), careful))) return;
    if (f.drop === 'mid-body' && i === 1) return abortResponse(ctx);
  }
  endResponse(ctx);
}

const ERROR_TYPES = {
  400: ['invalid_request_error', 'invalid_request'], 401: ['authentication_error', 'invalid_api_key'],
  403: ['permission_error', 'permission_denied'], 404: ['not_found_error', 'not_found'],
  405: ['invalid_request_error', 'method_not_allowed'], 408: ['timeout_error', 'timeout'],
  409: ['conflict_error', 'conflict'], 413: ['request_too_large', 'request_too_large'],
  422: ['invalid_request_error', 'unprocessable_entity'], 429: ['rate_limit_error', 'rate_limit_exceeded'],
  500: ['server_error', 'internal_error'], 502: ['server_error', 'bad_gateway'],
  503: ['server_error', 'service_unavailable'], 504: ['server_error', 'gateway_timeout'],
  529: ['overloaded_error', 'overloaded'],
};

function sendError(ctx, status, message) {
  const [type, code] = ERROR_TYPES[status] || [status >= 500 ? 'server_error' : 'invalid_request_error', `http_${status}`];
  const body = { error: { message, type, param: null, code } };
  if (/\/messages$/.test(ctx.path)) body.type = 'error';   // Anthropic's envelope, harmless for OpenAI parsers
  return sendJson(ctx, status, body);
}

// ---------------------------------------------------------------------------
// The request pipeline: accounting, faults, then the endpoint

async function handleRequest(req, res, port, scheme) {
  const ctx = makeCtx(req, res, port, scheme);
  const control = ctx.path.startsWith('/_mock/');
  accountRequest(ctx.conn, port, control);
  log(`req #${ctx.id} ${ctx.method} ${ctx.url} HTTP/${req.httpVersion} (${scheme}:${port}, conn #${ctx.conn ? ctx.conn.id : '?'})`);
  res.on('finish', () => log(`req #${ctx.id} -> ${ctx.status}`));
  try {
    if (control) return await handleControl(ctx);
    await handleApi(ctx);
  } catch (e) {
    process.stderr.write(`mock server: error in ${ctx.method} ${ctx.url}: ${e && e.stack || e}\n`);
    if (!gone(ctx)) {
      if (!res.headersSent) sendError(ctx, 500, `mock server bug: ${e && e.message}`);
      else abortResponse(ctx);
    }
  }
}

async function handleApi(ctx) {
  const f = ctx.f = parseFaults(ctx.headers);
  let failing = true;
  if (f.key !== null) {
    const st = keyState(f.key);
    const attempt = ++st.count;
    if (f.failTimes !== null) failing = attempt <= f.failTimes;
    if (f.failUntilMs !== null) failing = failing && nowMs() < f.failUntilMs;
    st.records.push({
      t_ms: nowMs(), idempotency_key: headerOf(ctx.headers, 'idempotency-key') ?? null,
      authorization: headerOf(ctx.headers, 'authorization') ?? null,
      method: ctx.method, path: ctx.path, attempt, failed: failing && (f.failTimes !== null || f.failUntilMs !== null),
      http_version: ctx.req.httpVersion, connection_id: ctx.conn ? ctx.conn.id : 0,
    });
  }
  if (!failing) disarm(f);
  const defaultFail = failing && f.key !== null && (f.failTimes !== null || f.failUntilMs !== null) && f.status === null &&
    !f.drop && !f.hang && !f.garbage && f.slowlorisMs === null;

  if (f.drop === 'before-headers' || f.drop === 'connection') {
    log(`req #${ctx.id} drop ${f.drop}`);
    if (ctx.h2 && f.drop === 'before-headers') return abortResponse(ctx);
    if (ctx.h2) return ctx.req.stream.session.destroy();
    return ctx.req.socket.destroy();
  }

  let body;
  try {
    body = await readBody(ctx.req);
  } catch (e) {
    if (e.code === 'TOO_LARGE' && !gone(ctx)) return sendError(ctx, 413, 'mock: request body over 64 MiB');
    return;   // the client went away
  }

  if (f.garbage) return sendGarbage(ctx);
  if (f.hang) { log(`req #${ctx.id} hangs`); return; }   // never answer; the client gives up
  if (f.delayMs > 0) {
    await sleep(f.delayMs);
    if (gone(ctx)) return;
  }
  if (ctx.h2 && f.close) {   // the HTTP/2 analogue of connection: close: GOAWAY now, this stream still completes
    const session = ctx.req.stream.session;
    if (!session.destroyed && !session.closed) session.close();
  }
  if (rateLimited(ctx, body)) return;
  if (f.retryAfter !== null) ctx.extraHeaders['retry-after'] = f.retryAfter;
  if (f.retryAfterMs !== null) ctx.extraHeaders['retry-after-ms'] = f.retryAfterMs;
  if (f.shouldRetry !== null) ctx.extraHeaders['x-should-retry'] = f.shouldRetry;

  if (f.status !== null || defaultFail) {
    const status = f.status !== null ? f.status : 500;
    const why = f.failTimes !== null ? ` (key ${f.key}, attempt ${keyState(f.key).count} of ${f.failTimes} failing)` : '';
    return sendError(ctx, status, `mock: forced HTTP ${status}${why}`);
  }
  if (f.bodyBytes !== null) return sendFill(ctx, f.bodyBytes);
  if (f.slowlorisMs !== null) return sendSlowloris(ctx);
  return route(ctx, body);
}

// x-mock-body-bytes: N bytes of 'x'; big bodies go out in 64 KiB pieces instead of one buffer
async function sendFill(ctx, n) {
  if (n <= 1 << 20) return sendBody(ctx, 200, { 'content-type': 'text/plain' }, Buffer.alloc(n, 'x'));
  writeHead(ctx, 200, { 'content-type': 'text/plain', 'content-length': String(n) }, false);
  if (ctx.method === 'HEAD') return endResponse(ctx);
  const piece = Buffer.alloc(64 * 1024, 'x');
  const limit = ctx.f.drop === 'mid-body' ? Math.floor(n / 2) : n;
  for (let sent = 0; sent < limit;) {
    const k = Math.min(piece.length, limit - sent);
    sent += k;
    if (!(await writeBytes(ctx, piece.subarray(0, k), sent === limit))) return;
  }
  if (limit < n) return abortResponse(ctx);
  endResponse(ctx);
}

function sendGarbage(ctx) {
  log(`req #${ctx.id} garbage`);
  if (ctx.h2) return abortResponse(ctx, H2.NGHTTP2_PROTOCOL_ERROR);
  const sock = ctx.req.socket;
  ctx.closed = true;
  sock.end(Buffer.from('\x00\x01garbage\r\n\r\n\xff\xfeNOT HTTP\r\n\r\n', 'latin1'), () => sock.destroy());
}

async function sendSlowloris(ctx) {
  const body = Buffer.from('data: slowloris...\n\n');   // 20 bytes, one SSE event
  writeHead(ctx, 200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache',
                        'content-length': String(body.length) });
  for (let i = 0; i < body.length; i++) {
    await sleep(ctx.f.slowlorisMs);
    if (!(await writeFlushed(ctx, body.subarray(i, i + 1)))) return;
    if (ctx.f.drop === 'mid-body' && i === body.length / 2 - 1) return abortResponse(ctx);
  }
  endResponse(ctx);
}

// ---------------------------------------------------------------------------
// Endpoints

function route(ctx, body) {
  const p = ctx.path;
  if (p === '/echo' || p.startsWith('/echo/')) return echo(ctx, body);
  // suffix matching, so every provider preset's base path works:
  // /v1/chat/completions, /chat/completions, /openai/deployments/x/chat/completions,
  // /openai/v1/chat/completions (groq), /v1beta/openai/chat/completions (gemini), ...
  if (/\/chat\/completions$/.test(p)) return post(ctx) && chatCompletions(ctx, body);
  if (/\/messages$/.test(p)) return post(ctx) && anthropicMessages(ctx, body);
  if (/\/embeddings$/.test(p)) return post(ctx) && embeddings(ctx, body);
  if (/\/models$/.test(p)) return get(ctx) && sendJson(ctx, 200, { object: 'list', data: MODELS });
  const m = /\/models\/([^/]+)$/.exec(p);
  if (m) {
    if (!get(ctx)) return;
    let id = m[1];
    try { id = decodeURIComponent(id); } catch (e) { /* keep it raw */ }
    const model = MODELS.find((x) => x.id === id);
    return model ? sendJson(ctx, 200, model) : sendError(ctx, 404, `The model '${m[1]}' does not exist`);
  }
  return sendError(ctx, 404, `mock: no route for ${ctx.method} ${p}`);
}

function post(ctx) {
  if (ctx.method === 'POST') return true;
  sendError(ctx, 405, `mock: ${ctx.method} not allowed on ${ctx.path}, use POST`);
  return false;
}

function get(ctx) {
  if (ctx.method === 'GET' || ctx.method === 'HEAD') return true;
  sendError(ctx, 405, `mock: ${ctx.method} not allowed on ${ctx.path}, use GET`);
  return false;
}

const CREATED = 1700000000;
const MODELS = ['gpt-mock', 'gpt-4o-mini', 'text-embedding-3-small', 'claude-mock']
  .map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'libesp-mock' }));
const DEFAULT_REPLY = 'Hello from the libesp mock server.';

function parseJsonBody(ctx, body) {
  let j;
  try { j = JSON.parse(body.toString('utf8')); } catch (e) {
    sendError(ctx, 400, `mock: request body is not valid JSON: ${e.message}`);
    return null;
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) {
    sendError(ctx, 400, 'mock: request body must be a JSON object');
    return null;
  }
  return j;
}

// text of a message's content: a string, or an array of parts/blocks with "text"
function contentText(c) {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    const parts = c.map((p) => (typeof p === 'string' ? p : p && typeof p.text === 'string' ? p.text : null))
      .filter((t) => t !== null);
    return parts.length ? parts.join('') : null;
  }
  return null;
}

function replyText(messages) {
  const last = Array.isArray(messages) && messages.length ? messages[messages.length - 1] : null;
  const t = last && typeof last === 'object' ? contentText(last.content) : null;
  return t === null ? DEFAULT_REPLY : `echo: ${t}`;
}

function countTokens(messages) {
  let n = 0;
  if (Array.isArray(messages)) {
    for (const m of messages) {
      const t = m && typeof m === 'object' ? contentText(m.content) : null;
      if (t) n += (t.match(/\S+/g) || []).length;
    }
  }
  return Math.max(n, 1);
}

// split into words that keep their trailing blanks, so the pieces join back exactly
function words(text) {
  return text.match(/\s*\S+\s*/g) || (text ? [text] : []);
}

function replyPieces(ctx, messages) {
  if (ctx.f.events !== null) return Array.from({ length: ctx.f.events }, (_, i) => `tok${i} `);
  return words(replyText(messages));
}

const sseData = (obj) => `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`;
const sseEvent = (name, obj) => `event: ${name}\ndata: ${JSON.stringify(obj)}\n\n`;
const ID_PREFIX = crypto.randomBytes(6).toString('hex');
let idSeq = 0;
const newId = () => `${ID_PREFIX}${(++idSeq).toString(16).padStart(8, '0')}`;

function chatCompletions(ctx, body) {
  const j = parseJsonBody(ctx, body);
  if (!j) return;
  const model = typeof j.model === 'string' ? j.model : 'gpt-mock';
  const pieces = replyPieces(ctx, j.messages);
  const content = pieces.join('');
  const usage = { prompt_tokens: countTokens(j.messages), completion_tokens: pieces.length,
                  total_tokens: countTokens(j.messages) + pieces.length };
  const base = { id: `chatcmpl-mock${newId()}`, created: Math.floor(Date.now() / 1000),
                 model, system_fingerprint: 'fp_mock' };

  if (j.stream !== true) {
    return sendJson(ctx, 200, {
      ...base, object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null },
                  logprobs: null, finish_reason: 'stop' }],
      usage,
    });
  }
  const includeUsage = !!(j.stream_options && j.stream_options.include_usage);
  const chunk = (delta, finish) => ({
    ...base, object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const events = [sseData(chunk({ role: 'assistant', content: '', refusal: null }, null))];
  for (const p of pieces) events.push(sseData(chunk({ content: p }, null)));
  events.push(sseData(chunk({}, 'stop')));
  if (includeUsage) events.push(sseData({ ...base, object: 'chat.completion.chunk', choices: [], usage }));
  events.push(sseData('[DONE]'));
  return sendSse(ctx, events);
}

function anthropicMessages(ctx, body) {
  const j = parseJsonBody(ctx, body);
  if (!j) return;
  const model = typeof j.model === 'string' ? j.model : 'claude-mock';
  const pieces = replyPieces(ctx, j.messages);
  const text = pieces.join('');
  const inputTokens = countTokens(j.messages);
  const id = `msg_mock${newId()}`;

  if (j.stream !== true) {
    return sendJson(ctx, 200, {
      id, type: 'message', role: 'assistant', model,
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn', stop_sequence: null,
      usage: { input_tokens: inputTokens, output_tokens: pieces.length },
    });
  }
  const events = [
    sseEvent('message_start', { type: 'message_start', message: {
      id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
      usage: { input_tokens: inputTokens, output_tokens: 1 } } }),
    sseEvent('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  ];
  for (const p of pieces) {
    events.push(sseEvent('content_block_delta', { type: 'content_block_delta', index: 0,
                                                 delta: { type: 'text_delta', text: p } }));
  }
  events.push(sseEvent('content_block_stop', { type: 'content_block_stop', index: 0 }));
  events.push(sseEvent('message_delta', { type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { input_tokens: inputTokens, output_tokens: pieces.length } }));
  events.push(sseEvent('message_stop', { type: 'message_stop' }));
  return sendSse(ctx, events);
}

// deterministic vector in [-1, 1) per input string (float32-exact, so float and base64 agree)
function embedVector(s, dims) {
  const v = [];
  for (let block = 0; v.length < dims; block++) {
    const h = crypto.createHash('sha256').update(`${block}:${s}`).digest();
    for (let i = 0; i + 4 <= h.length && v.length < dims; i += 4) {
      v.push(Math.fround(h.readUInt32LE(i) / 2 ** 31 - 1));
    }
  }
  return v;
}

function embeddings(ctx, body) {
  const j = parseJsonBody(ctx, body);
  if (!j) return;
  let inputs = j.input;
  if (typeof inputs === 'string') inputs = [inputs];
  else if (Array.isArray(inputs) && inputs.length && inputs.every((x) => typeof x === 'number')) inputs = [inputs];
  if (!Array.isArray(inputs) || inputs.length === 0 ||
      !inputs.every((x) => typeof x === 'string' || Array.isArray(x))) {
    return sendError(ctx, 400, "mock: 'input' must be a string, an array of strings or an array of token arrays");
  }
  const dims = Number.isInteger(j.dimensions) && j.dimensions > 0 && j.dimensions <= 4096 ? j.dimensions : 8;
  const model = typeof j.model === 'string' ? j.model : 'text-embedding-3-small';
  const base64 = j.encoding_format === 'base64';
  let tokens = 0;
  const data = inputs.map((x, index) => {
    const s = typeof x === 'string' ? x : JSON.stringify(x);
    tokens += typeof x === 'string' ? Math.max((x.match(/\S+/g) || []).length, 1) : x.length;
    const vec = embedVector(s, dims);
    let embedding = vec;
    if (base64) {
      const b = Buffer.alloc(4 * dims);
      vec.forEach((f, i) => b.writeFloatLE(f, 4 * i));
      embedding = b.toString('base64');
    }
    return { object: 'embedding', index, embedding };
  });
  return sendJson(ctx, 200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
}

function echo(ctx, body) {
  const raw = ctx.req.rawHeaders || [];
  const rawHeaders = [];
  for (let i = 0; i + 1 < raw.length; i += 2) rawHeaders.push([String(raw[i]).toLowerCase(), raw[i + 1]]);
  return sendJson(ctx, 200, {
    method: ctx.method,
    path: ctx.path,
    query: ctx.query,
    headers: ctx.headers,
    body: body.toString('utf8'),
    http_version: ctx.req.httpVersion,
    url: ctx.url,
    raw_headers: rawHeaders.filter(([k]) => !k.startsWith(':')),
    pseudo_headers: ctx.pseudo,
    scheme: ctx.scheme,
    port: ctx.port,
    connection_id: ctx.conn ? ctx.conn.id : 0,
    request_id: `req_mock_${ctx.id}`,
  });
}

async function handleControl(ctx) {
  let body;
  try { body = await readBody(ctx.req); } catch (e) { return; }
  switch (ctx.path) {
    case '/_mock/stats': return sendJson(ctx, 200, statsJson());
    case '/_mock/reset':
      resetCounters();
      log('counters reset');
      return sendJson(ctx, 200, { ok: true });
    case '/_mock/requests': {
      const k = ctx.query.key;
      if (k === undefined) {
        const all = {};
        for (const [key, s] of keys) all[key] = s.records;
        return sendJson(ctx, 200, all);
      }
      const s = keys.get(Array.isArray(k) ? k[0] : k);
      return sendJson(ctx, 200, s ? s.records : []);
    }
    case '/_mock/health': return sendJson(ctx, 200, { ok: true, pid: process.pid });
    case '/_mock/rate-limit': {
      if (ctx.method === 'POST') {
        let j;
        try { j = JSON.parse(body.toString('utf8') || '{}'); } catch (e) { return sendError(ctx, 400, 'mock: rate-limit body is not JSON'); }
        const bad = configureRateLimit(j);
        if (bad) return sendError(ctx, 400, `mock: ${bad}`);
      }
      return sendJson(ctx, 200, rateLimitJson());
    }
    default: return sendError(ctx, 404, `mock: no control route ${ctx.path}`);
  }
}

// ---------------------------------------------------------------------------
// Servers

const listenerSchemes = new Map();   // port -> 'http' | 'https'

function keepAliveMs() {
  return opts.idleCloseMs > 0 ? opts.idleCloseMs : 65000;
}

function configureHttp1(server) {
  server.keepAliveTimeout = keepAliveMs();
  server.headersTimeout = Math.max(60000, keepAliveMs() + 1000);
  server.requestTimeout = 0;
  server.timeout = 0;
}

function createHttpServer() {
  const server = http.createServer({ noDelay: true });
  configureHttp1(server);
  let port = 0;
  server.once('listening', () => { port = server.address().port; });
  server.on('connection', (sock) => trackConnection(sock, port, 'http'));
  server.on('request', (req, res) => handleRequest(req, res, port, 'http'));
  server.on('connect', (req, sock, head) => proxyConnect(req, sock, head));
  server.on('clientError', (err, sock) => {
    log(`http client error: ${err.code || err.message}`);
    if (sock.writable && !sock.destroyed && err.code !== 'ECONNRESET') {
      sock.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n', () => sock.destroy());
    } else {
      sock.destroy();
    }
  });
  return server;
}

// CONNECT tunnels (so the plain port can stand in as an HTTPS proxy): loopback targets only.
function proxyConnect(req, sock, head) {
  sock.on('error', () => {});
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url || '');
  const host = m && m[1].replace(/^\[|\]$/g, '');
  if (!m || !['127.0.0.1', 'localhost', '::1'].includes(host)) {
    sock.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return;
  }
  counters.proxy_connects++;
  const up = net.connect(Number(m[2]), host === 'localhost' ? '127.0.0.1' : host, () => {
    sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head && head.length) up.write(head);
    up.pipe(sock);
    sock.pipe(up);
  });
  up.on('error', () => {
    if (!sock.destroyed) sock.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  sock.on('close', () => up.destroy());
  up.on('close', () => sock.destroy());
}

// --tls-http1-only: a server that refuses h2 by ALPN (nginx without http2 on
// its TLS listener); http2's server always offers h2, so this is https's.
function createTlsHttp1Server() {
  const server = https.createServer({
    cert: fs.readFileSync(path.join(CERT_DIR, 'server.pem')),
    key: fs.readFileSync(path.join(CERT_DIR, 'server-key.pem')),
    ALPNProtocols: ['http/1.1'],
    noDelay: true,
  });
  configureHttp1(server);
  let port = 0;
  server.once('listening', () => { port = server.address().port; });
  server.on('connection', (sock) => trackConnection(sock, port, 'https'));
  server.on('request', (req, res) => handleRequest(req, res, port, 'https'));
  server.on('tlsClientError', (e) => log(`tls client error: ${e.code || e.message}`));
  server.on('clientError', (e, sock) => { log(`https client error: ${e.code || e.message}`); sock.destroy(); });
  return server;
}

function createTlsServer() {
  if (opts.tlsHttp1Only) return createTlsHttp1Server();
  const server = http2.createSecureServer({
    allowHTTP1: true,
    cert: fs.readFileSync(path.join(CERT_DIR, 'server.pem')),
    key: fs.readFileSync(path.join(CERT_DIR, 'server-key.pem')),
    ALPNProtocols: ['h2', 'http/1.1'],
    maxSessionMemory: 256,
    settings: { maxConcurrentStreams: 1000 },
  });
  configureHttp1(server);
  let port = 0;
  server.once('listening', () => { port = server.address().port; });
  server.on('connection', (sock) => trackConnection(sock, port, 'https'));
  server.on('session', (session) => {
    const c = lookupConn(session.socket);
    session.mockConn = c;
    session.on('error', (e) => log(`h2 session error: ${e.code || e.message}`));
    if (c) {
      c.h2 = true;
      if (c.counted && c.epoch === epoch) {
        counters.http2_sessions++;
        portCounters(c.port).http2_sessions++;
      }
    }
    if (opts.idleCloseMs > 0) armIdleClose(session, c);
  });
  server.on('stream', (stream) => {
    const session = stream.session, c = session && session.mockConn;
    stream.on('error', (e) => log(`h2 stream error: ${e.code || e.message}`));
    if (!c || !(opts.idleCloseMs > 0)) return;
    c.activeStreams++;
    if (c.idleTimer) { clearTimeout(c.idleTimer); c.idleTimer = null; }
    stream.once('close', () => { if (--c.activeStreams === 0) armIdleClose(session, c); });
  });
  server.on('request', (req, res) => handleRequest(req, res, port, 'https'));
  server.on('sessionError', (e) => log(`h2 session error: ${e.code || e.message}`));
  server.on('tlsClientError', (e) => log(`tls client error: ${e.code || e.message}`));
  server.on('clientError', (e, sock) => { log(`https client error: ${e.code || e.message}`); sock.destroy(); });
  return server;
}

// HTTP/2 has no keepAliveTimeout: close (GOAWAY) a session idle for --idle-close-ms
function armIdleClose(session, c) {
  if (!c) return;
  if (c.idleTimer) clearTimeout(c.idleTimer);
  c.idleTimer = setTimeout(() => {
    c.idleTimer = null;
    if (c.activeStreams === 0 && !session.destroyed && !session.closed) {
      log(`h2 session of conn #${c.id} idle for ${opts.idleCloseMs} ms: closing`);
      session.close();
    }
  }, opts.idleCloseMs);
  c.idleTimer.unref();
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, opts.host, () => { server.off('error', reject); resolve(server.address().port); });
  });
}

function exit(code) {
  process.exit(code);
}

async function main() {
  process.on('uncaughtException', (e) => process.stderr.write(`mock server: uncaught: ${e && e.stack || e}\n`));
  process.on('unhandledRejection', (e) => process.stderr.write(`mock server: unhandled: ${e && e.stack || e}\n`));
  process.on('SIGTERM', () => exit(0));
  process.on('SIGINT', () => exit(0));
  process.stdout.on('error', () => {});

  const httpServer = createHttpServer();
  const tlsServer = createTlsServer();
  let httpPort, httpsPort;
  try {
    httpPort = await listen(httpServer, opts.port);
    httpsPort = await listen(tlsServer, opts.tlsPort);
  } catch (e) {
    process.stderr.write(`mock server: cannot listen: ${e.message}\n`);
    exit(1);
  }
  listenerSchemes.set(httpPort, 'http');
  listenerSchemes.set(httpsPort, 'https');

  if (opts.stdinWatch) {
    // the parent holds our stdin open; EOF means it is gone (or done with us)
    process.stdin.on('end', () => exit(0));
    process.stdin.on('close', () => exit(0));
    process.stdin.on('error', () => exit(0));
    process.stdin.on('data', () => {});
    process.stdin.resume();
    // belt and braces: the parent died without closing our stdin (e.g. it was inherited)
    setInterval(() => { if (process.ppid !== PARENT_PID) exit(0); }, 500).unref();
  }

  const line = JSON.stringify({
    http_port: httpPort, https_port: httpsPort, ca_file: CA_FILE, pid: process.pid,
    http_url: `http://127.0.0.1:${httpPort}`, https_url: `https://localhost:${httpsPort}`,
  }) + '\n';
  try { fs.writeSync(1, line); } catch (e) { /* nobody reads stdout */ }
  log(`listening: http ${opts.host}:${httpPort}, https ${opts.host}:${httpsPort} (h2 + http/1.1)`);
}

main();
