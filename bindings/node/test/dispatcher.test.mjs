// The undici Dispatcher over libesp: the built-in fetch and the undici package
// on it once installed, streaming, backpressure, aborts, undici's errors, and
// URLs that are not http(s) never sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as undici from 'undici';
import { dispatcher, install, uninstall, stats, getClient } from '../lib/index.mjs';
import { startMock, closedPort } from './mock.mjs';

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

let mock;
let https; // the mock's TLS listener (HTTP/2 by ALPN)
before(async () => {
  mock = await startMock();
  https = `https://localhost:${mock.httpsPort}`;
});
after(async () => {
  await uninstall();
  mock.stop();
});

/** Requests libesp's dispatcher clients have made so far. */
function dispatcherRequests() {
  return stats()
    .clients.filter((c) => c.name === 'undici-dispatcher')
    .reduce((sum, c) => sum + c.requests, 0);
}

/** The requests the mock received carrying x-mock-key: key. */
async function receivedWithKey(key) {
  return (await fetch(`${mock.url}/_mock/requests?key=${key}`, { dispatcher: new undici.Agent() })).json();
}

/** Mock connections opened by `work`, counted by the mock server itself. */
async function connectionsOpenedBy(work) {
  const control = new undici.Agent();
  await fetch(`${mock.url}/_mock/reset`, { method: 'POST', dispatcher: control });
  await work();
  const counts = await (await fetch(`${mock.url}/_mock/stats`, { dispatcher: control })).json();
  await control.close();
  return counts;
}

test('install() puts the built-in fetch on libesp, and uninstall() takes it back off', async () => {
  const before = dispatcherRequests();
  const builtin = globalThis[GLOBAL_DISPATCHER];
  const installed = install({ ca_file: mock.caFile });
  assert.equal(install(), installed, 'install() is idempotent');
  assert.equal(globalThis[GLOBAL_DISPATCHER], installed);
  assert.equal(undici.getGlobalDispatcher(), installed, 'the undici package sees it too');

  // 40 concurrent slow calls over TLS: undici would open 40 HTTP/1.1 connections.
  const counts = await connectionsOpenedBy(() =>
    Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const res = await fetch(`${https}/echo/${i}`, { headers: { 'x-mock-delay-ms': '100' } });
        assert.equal(res.status, 200);
        const echo = await res.json();
        assert.equal(echo.path, `/echo/${i}`);
        assert.equal(echo.http_version, '2.0');
      }),
    ),
  );
  assert.equal(counts.requests, 40);
  assert.ok(counts.connections <= 2, `${counts.connections} connections for 40 calls`);
  assert.equal(dispatcherRequests() - before, 40, 'every call went through libesp');

  await uninstall();
  assert.notEqual(globalThis[GLOBAL_DISPATCHER], installed);
  assert.ok(builtin === undefined || globalThis[GLOBAL_DISPATCHER] === builtin);
  const after = dispatcherRequests();
  assert.equal((await fetch(`${mock.url}/echo`)).status, 200);
  assert.equal(dispatcherRequests(), after, 'after uninstall() fetch no longer uses libesp');
});

test('fetch through the dispatcher sends method, headers and body, and sees HTTP errors as responses', async () => {
  const d = dispatcher();
  const res = await fetch(`${mock.url}/echo?q=1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-from': 'fetch' },
    body: JSON.stringify({ a: 1 }),
    dispatcher: d,
  });
  const echo = await res.json();
  assert.equal(echo.method, 'POST');
  assert.equal(echo.query.q, '1');
  assert.equal(echo.headers['x-from'], 'fetch');
  assert.deepEqual(JSON.parse(echo.body), { a: 1 });

  const streamed = await fetch(`${mock.url}/echo`, {
    method: 'PUT',
    body: new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('part one, '));
        c.enqueue(new TextEncoder().encode('part two'));
        c.close();
      },
    }),
    duplex: 'half',
    dispatcher: d,
  });
  assert.equal((await streamed.json()).body, 'part one, part two');

  const missing = await fetch(`${mock.url}/echo`, { headers: { 'x-mock-status': '503' }, dispatcher: d });
  assert.equal(missing.status, 503);
  assert.equal(missing.statusText, 'Service Unavailable');
  assert.match(await missing.text(), /service_unavailable/);
  await d.close();
});

test('a streamed body reaches fetch event by event, not at the end', async () => {
  const d = dispatcher();
  const started = Date.now();
  const res = await fetch(`${mock.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-events': '10', 'x-mock-chunk-delay-ms': '100' },
    body: JSON.stringify({ model: 'm', stream: true, messages: [] }),
    dispatcher: d,
  });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body.getReader();
  const first = await reader.read();
  const firstAfter = Date.now() - started;
  let text = new TextDecoder().decode(first.value);
  for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
  const allAfter = Date.now() - started;
  assert.ok(firstAfter < 500, `first bytes after ${firstAfter} ms`);
  assert.ok(allAfter >= 900, `whole stream after ${allAfter} ms`);
  assert.equal(text.match(/^data: /gm).length, 13, 'role, 10 tokens, stop, [DONE]');
  await d.close();
});

test('a handler that pauses gets no data until it resumes', async () => {
  const d = dispatcher();
  const size = 8 << 20;
  let received = 0;
  let chunks = 0;
  let paused = false;
  let dataWhilePaused = 0;
  let resume;
  const done = new Promise((resolve, reject) => {
    d.dispatch(
      { origin: mock.url, path: '/echo', method: 'GET', headers: { 'x-mock-body-bytes': String(size) } },
      {
        onConnect() {},
        onHeaders(status, rawHeaders, resumeFn) {
          assert.equal(status, 200);
          assert.ok(rawHeaders.every((h) => Buffer.isBuffer(h)));
          resume = resumeFn;
          return true;
        },
        onData(chunk) {
          if (paused) dataWhilePaused++;
          received += chunk.length;
          chunks++;
          paused = true;
          return false; // pause after every chunk
        },
        onComplete: resolve,
        onError: reject,
      },
    );
  });
  let finished = false;
  done.then(() => (finished = true), () => (finished = true));
  for (let rounds = 0; !finished; rounds++) {
    assert.ok(rounds < 100_000, 'bounded');
    await new Promise((r) => setTimeout(r, rounds === 5 ? 200 : 1));
    if (paused) {
      paused = false;
      resume();
    }
  }
  await done;
  assert.equal(received, size);
  assert.equal(dataWhilePaused, 0, `${dataWhilePaused} of ${chunks} chunks arrived while paused`);
  await d.close();
});

test("a paused handler's body waits in libesp, which pauses the transfer at the config's stream_buffer_bytes", async () => {
  const name = `paused-dispatcher-${process.pid}`;
  const d = dispatcher({ name, stream_buffer_bytes: 65536 });
  const counters = () => stats().clients.find((c) => c.name === name);
  const size = 4 << 20;
  let received = 0;
  let resume;
  const done = new Promise((resolve, reject) => {
    d.dispatch(
      { origin: mock.url, path: '/echo', method: 'GET', headers: { 'x-mock-body-bytes': String(size) } },
      {
        onConnect() {},
        onHeaders(status, rawHeaders, resumeFn) {
          resume = resumeFn;
          return false; // paused before the first byte of the body
        },
        onData(chunk) {
          received += chunk.length;
          return true;
        },
        onComplete: resolve,
        onError: reject,
      },
    );
  });
  let held = counters();
  for (let i = 0; i < 200 && held.streams_paused === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    held = counters();
  }
  await new Promise((r) => setTimeout(r, 200)); // time for more to pile up, were it not paused
  held = counters();
  assert.equal(received, 0);
  assert.equal(held.streams_paused, 1, 'libesp paused the transfer');
  assert.ok(held.stream_buffered_bytes >= 65536 && held.stream_buffered_bytes < 65536 + (256 << 10),
    `${held.stream_buffered_bytes} bytes held for a 64 KiB buffer`);
  resume();
  await done;
  assert.equal(received, size);
  assert.equal(counters().streams_paused, 0);
  await d.close();
});

test("undici's newer handler interface (onRequestStart/onResponseStart) works too, pause and resume included", async () => {
  const d = dispatcher();
  const chunks = [];
  const result = await new Promise((resolve, reject) => {
    d.dispatch(
      { origin: mock.url, path: '/echo', method: 'GET', headers: { 'x-mock-body-bytes': '300000' } },
      {
        onRequestStart(controller) {
          this.controller = controller;
        },
        onResponseStart(controller, status, headers) {
          this.status = status;
          this.headers = headers;
          controller.pause();
          setTimeout(() => controller.resume(), 50);
        },
        onResponseData(controller, chunk) {
          chunks.push(chunk);
        },
        onResponseEnd() {
          resolve(this);
        },
        onResponseError(controller, err) {
          reject(err);
        },
      },
    );
  });
  assert.equal(result.status, 200);
  assert.equal(result.headers['content-length'], '300000');
  assert.equal(Buffer.concat(chunks).length, 300000);
  await d.close();
});

test("the undici package's request() and fetch() run on an installed dispatcher", async () => {
  const installed = install({ ca_file: mock.caFile });
  const before = dispatcherRequests();
  const { statusCode, body } = await undici.request(`${https}/echo`, { method: 'PUT', body: 'x' });
  assert.equal(statusCode, 200);
  assert.equal((await body.json()).method, 'PUT');
  const res = await undici.fetch(`${mock.url}/echo`);
  assert.equal((await res.json()).method, 'GET');
  assert.equal(dispatcherRequests() - before, 2);
  assert.equal(undici.getGlobalDispatcher(), installed);
  await uninstall();
});

test('an AbortSignal rejects fetch with AbortError and cancels the libesp call', async () => {
  const d = dispatcher();
  const controller = new AbortController();
  const pending = fetch(`${mock.url}/echo`, { headers: { 'x-mock-hang': '1' }, signal: controller.signal, dispatcher: d });
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(pending, (err) => err.name === 'AbortError');

  const mid = new AbortController();
  const res = await fetch(`${mock.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-events': '500', 'x-mock-chunk-delay-ms': '20' },
    body: JSON.stringify({ model: 'm', stream: true, messages: [] }),
    signal: mid.signal,
    dispatcher: d,
  });
  const reader = res.body.getReader();
  await reader.read();
  mid.abort();
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 10_000; i++) if ((await reader.read()).done) break;
    })(),
    (err) => err.name === 'AbortError',
  );
  // Both calls are gone from libesp: nothing left in flight.
  for (let i = 0; i < 100 && stats().calls_live > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(stats().calls_live, 0);
  await d.close();
});

test("failures reach fetch as undici's errors, with libesp's error as their cause", async () => {
  const d = dispatcher({ first_byte_timeout_ms: 200 });
  const port = await closedPort();
  await assert.rejects(fetch(`http://127.0.0.1:${port}/x`, { dispatcher: d }), (err) => {
    assert.ok(err instanceof TypeError);
    assert.equal(err.message, 'fetch failed');
    assert.ok(err.cause instanceof undici.errors.SocketError, `${err.cause}`);
    assert.equal(err.cause.code, 'UND_ERR_SOCKET');
    assert.equal(err.cause.cause.code, 'ESP_ECONNECT');
    return true;
  });
  await assert.rejects(fetch(`${mock.url}/echo`, { headers: { 'x-mock-hang': '1' }, dispatcher: d }), (err) => {
    assert.ok(err.cause instanceof undici.errors.HeadersTimeoutError, `${err.cause}`);
    assert.equal(err.cause.code, 'UND_ERR_HEADERS_TIMEOUT');
    assert.match(err.cause.message, /first-byte timeout/);
    return true;
  });
  await d.close();

  const bounded = dispatcher({ timeout_ms: 200 });
  await assert.rejects(fetch(`${mock.url}/echo`, { headers: { 'x-mock-delay-ms': '600' }, dispatcher: bounded }), (err) => {
    assert.ok(err.cause instanceof undici.errors.HeadersTimeoutError, `${err.cause}`);
    assert.match(err.cause.message, /total timeout/);
    return true;
  });
  await bounded.close();

  const slow = dispatcher({ idle_timeout_ms: 200 });
  const res = await fetch(`${mock.url}/echo`, { headers: { 'x-mock-slowloris': '1000' }, dispatcher: slow });
  await assert.rejects(res.text(), (err) => {
    assert.ok(err.cause instanceof undici.errors.BodyTimeoutError, `${err} / ${err.cause}`);
    return true;
  });
  await slow.close();
});

test("undici's headersTimeout bounds the wait for the head and bodyTimeout the silences in the body, apart", async () => {
  const d = dispatcher();
  const started = Date.now();
  await assert.rejects(
    undici.request(`${mock.url}/echo`, { dispatcher: d, headers: { 'x-mock-delay-ms': '1000' }, headersTimeout: 200 }),
    (err) => {
      assert.ok(err instanceof undici.errors.HeadersTimeoutError, `${err}`);
      assert.equal(err.code, 'UND_ERR_HEADERS_TIMEOUT');
      assert.match(err.message, /^first-byte timeout.*\(200 ms\)/);
      return true;
    },
  );
  const waited = Date.now() - started;
  assert.ok(waited >= 200 && waited < 800, `HeadersTimeoutError after ${waited} ms`);

  // A short bodyTimeout leaves a slow head alone (an LLM's slow first token)...
  const late = await undici.request(`${mock.url}/echo`, {
    dispatcher: d,
    headers: { 'x-mock-delay-ms': '500' },
    headersTimeout: 5000,
    bodyTimeout: 150,
  });
  assert.equal(late.statusCode, 200);
  assert.equal((await late.body.json()).method, 'GET');

  // ...and cuts a body that falls silent, which a short headersTimeout does not.
  const stalled = await undici.request(`${mock.url}/echo`, {
    dispatcher: d,
    headers: { 'x-mock-slowloris': '1000' },
    headersTimeout: 100,
    bodyTimeout: 200,
  });
  await assert.rejects(stalled.body.text(), (err) => {
    assert.ok(err instanceof undici.errors.BodyTimeoutError, `${err}`);
    assert.equal(err.code, 'UND_ERR_BODY_TIMEOUT');
    assert.match(err.message, /^idle timeout.*\(200 ms\)/);
    return true;
  });
  const steady = await undici.request(`${mock.url}/echo`, {
    dispatcher: d,
    headers: { 'x-mock-slowloris': '20' },
    headersTimeout: 100,
    bodyTimeout: 200,
  });
  assert.equal(await steady.body.text(), 'data: slowloris...\n\n');
  await d.close();

  // 0 is no limit, over the dispatcher's own; a negative one is refused.
  const strict = dispatcher({ first_byte_timeout_ms: 100 });
  const unbounded = await undici.request(`${mock.url}/echo`, {
    dispatcher: strict,
    headers: { 'x-mock-delay-ms': '300' },
    headersTimeout: 0,
  });
  assert.equal(unbounded.statusCode, 200);
  await unbounded.body.dump();
  await assert.rejects(undici.request(`${mock.url}/echo`, { dispatcher: strict, headersTimeout: -1 }), (err) => {
    assert.ok(err instanceof undici.errors.InvalidArgumentError, `${err}`);
    assert.match(err.message, /headersTimeout/);
    return true;
  });
  await strict.close();
});

test('a URL that is not http(s) is refused with a TypeError and nothing is sent', async () => {
  const key = `scheme-${Date.now()}`;
  const headers = { 'x-mock-key': key, authorization: 'Bearer sk-secret' };
  const d = dispatcher();
  for (const url of ['invalid://example.org/x', 'htps://api.anthropic.com/v1/messages', 'localhost:8080/v1/chat']) {
    await assert.rejects(fetch(url, { headers, dispatcher: d }), TypeError, url);
  }
  // Straight at the dispatcher: undici's InvalidArgumentError, naming the scheme.
  const refused = await new Promise((resolve) => {
    d.dispatch({ origin: 'invalid://example.org', path: '/x', method: 'GET', headers }, {
      onConnect() {},
      onHeaders() {},
      onData() {},
      onComplete: () => resolve(null),
      onError: resolve,
    });
  });
  assert.ok(refused instanceof undici.errors.InvalidArgumentError);
  assert.match(refused.message, /unsupported URL scheme 'invalid'/);
  // An absolute-form path would name another host than the origin: refused too.
  const absolute = await new Promise((resolve) => {
    d.dispatch({ origin: mock.url, path: 'http://elsewhere.example/x', method: 'GET', headers }, {
      onConnect() {},
      onHeaders() {},
      onData() {},
      onComplete: () => resolve(null),
      onError: resolve,
    });
  });
  assert.ok(absolute instanceof undici.errors.InvalidArgumentError, `${absolute}`);
  await d.close();

  // client.fetch, on a client whose base_url is the mock: the same.
  const client = getClient(mock.config());
  for (const url of ['invalid://example.org/x', 'htps://api.anthropic.com/v1/messages']) {
    await assert.rejects(client.fetch(url, { headers }), (err) => {
      assert.ok(err instanceof TypeError);
      assert.match(err.cause.message, /unsupported URL scheme/);
      return true;
    });
  }
  client.close();
  assert.deepEqual(await receivedWithKey(key), [], 'the mock received none of them');
});

test('close() waits for calls in flight, destroy() fails them, neither accepts new ones, and both release the lease', async () => {
  const leases = () => stats().registry.leases_live;
  const leasesBefore = leases();
  const d = dispatcher();
  assert.equal(leases(), leasesBefore + 1);
  const slow = fetch(`${mock.url}/echo`, { headers: { 'x-mock-delay-ms': '200' }, dispatcher: d });
  await new Promise((r) => setTimeout(r, 20));
  const closing = d.close();
  await assert.rejects(fetch(`${mock.url}/echo`, { dispatcher: d }), (err) => err.cause?.code === 'UND_ERR_CLOSED');
  assert.equal((await slow).status, 200);
  await closing;

  const e = dispatcher();
  const hung = fetch(`${mock.url}/echo`, { headers: { 'x-mock-hang': '1' }, dispatcher: e });
  await new Promise((r) => setTimeout(r, 50));
  await e.destroy();
  await assert.rejects(hung, (err) => err.cause?.code === 'UND_ERR_DESTROYED');
  assert.equal(leases(), leasesBefore, 'no lease left behind');
  install();
  assert.equal(leases(), leasesBefore + 1);
  await uninstall();
  assert.equal(leases(), leasesBefore, 'uninstall() released the installed lease');
});

test('an installed dispatcher hands CONNECT and upgrades to the dispatcher it replaced', async () => {
  const installed = install({ ca_file: mock.caFile });
  const before = dispatcherRequests();
  // The mock's plain port answers CONNECT itself (a 403 here: undici sends
  // the target as /host:port): the built-in agent carried it, not libesp.
  const { statusCode, socket } = await undici.connect({ origin: mock.url, path: `localhost:${mock.httpsPort}` });
  assert.equal(statusCode, 403);
  socket.destroy();
  assert.equal(dispatcherRequests(), before, 'libesp did not carry the tunnel');
  await uninstall();

  const own = dispatcher();
  await assert.rejects(undici.connect({ origin: mock.url, path: `localhost:${mock.httpsPort}`, dispatcher: own }), (err) => {
    assert.ok(err instanceof undici.errors.NotSupportedError, `${err}`);
    return true;
  });
  await own.close();
  assert.notEqual(installed, own);
});

test("undici's own setGlobalDispatcher(dispatcher()) also puts Node's built-in fetch on libesp", async () => {
  // undici 7 writes the dispatcher under Symbol.for('undici.globalDispatcher.1')
  // (and .2); Node 20's built-in fetch (undici 6) reads .1.
  const builtin = globalThis[GLOBAL_DISPATCHER];
  const d = dispatcher();
  undici.setGlobalDispatcher(d);
  try {
    const before = dispatcherRequests();
    const res = await fetch(`${mock.url}/echo`, { method: 'POST', body: 'via setGlobalDispatcher' });
    assert.equal((await res.json()).body, 'via setGlobalDispatcher');
    assert.equal(dispatcherRequests() - before, 1);
  } finally {
    undici.setGlobalDispatcher(builtin ?? new undici.Agent());
    await d.close();
  }
});

test('a handler that throws gets the error in onError, its call is cancelled, and close() still completes', async () => {
  const d = dispatcher();
  const boom = new Error('handler bug');
  const got = await new Promise((resolve) => {
    d.dispatch(
      { origin: mock.baseURL.replace(/\/v1$/, ''), path: '/v1/chat/completions', method: 'POST',
        headers: { 'content-type': 'application/json', 'x-mock-events': '500', 'x-mock-chunk-delay-ms': '20' },
        body: JSON.stringify({ model: 'm', stream: true, messages: [] }) },
      {
        onConnect() {},
        onHeaders() {
          throw boom;
        },
        onData() {},
        onComplete: () => resolve(null),
        onError: resolve,
      },
    );
  });
  assert.equal(got, boom);
  await Promise.race([d.close(), new Promise((_, reject) => setTimeout(() => reject(new Error('close() hung')), 5000))]);
  assert.equal(stats().calls_live, 0);
});

test('a handler that throws while resuming gets the error and its paused call is cancelled', async () => {
  const d = dispatcher();
  let resume;
  let chunks = 0;
  const got = new Promise((resolve) => {
    d.dispatch(
      { origin: mock.url, path: '/echo', method: 'GET', headers: { 'x-mock-body-bytes': String(4 << 20) } },
      {
        onConnect() {},
        onHeaders(status, headers, resumeFn) {
          resume = resumeFn;
          return true;
        },
        onData() {
          if (++chunks > 1) throw new Error('second chunk');
          return false;
        },
        onComplete: () => resolve(null),
        onError: resolve,
      },
    );
  });
  for (let i = 0; i < 500 && chunks === 0; i++) await new Promise((r) => setTimeout(r, 10));
  resume();
  assert.match(String(await got), /second chunk/);
  await d.close();
  for (let i = 0; i < 100 && stats().calls_live > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(stats().calls_live, 0);
});
