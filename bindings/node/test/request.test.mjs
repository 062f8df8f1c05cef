import { createServer } from 'node:net';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  getClient,
  version,
  stats,
  EspError,
  ConfigError,
  TimeoutError,
  ConnectionError,
  AbortError,
  ClosedError,
  RateLimitedError,
  STATUS,
} from '../lib/index.mjs';
import { startMock, closedPort } from './mock.mjs';

let mock;
let client;
before(async () => {
  mock = await startMock();
  client = getClient(mock.config({ retry_base_ms: 10, retry_max_ms: 20 }));
});
after(() => {
  client.close();
  mock.stop();
});

test('CommonJS and ESM load the same binding', () => {
  const cjs = createRequire(import.meta.url)('../lib/index.js');
  assert.equal(cjs.getClient, getClient);
  assert.match(version(), /^\d+\.\d+\.\d+/);
});

test('request resolves with status, headers, Buffer body, text() and json()', async () => {
  const res = await client.request({ path: '/models' });
  assert.equal(res.status, 200);
  assert.equal(res.ok, true);
  assert.match(res.headers.get('content-type'), /application\/json/);
  assert.ok(Buffer.isBuffer(res.body));
  assert.equal(res.attempts, 1);
  assert.equal(typeof res.text(), 'string');
  assert.equal(res.json().object, 'list');
});

test('a chat completion round-trips a JSON body', async () => {
  const res = await client.request({
    method: 'POST',
    path: '/chat/completions',
    json: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] },
  });
  assert.equal(res.status, 200);
  const body = res.json();
  assert.equal(body.object, 'chat.completion');
  assert.equal(typeof body.choices[0].message.content, 'string');
});

test('method, path, headers and a binary body reach the server unchanged', async () => {
  const payload = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x41]);
  const res = await client.request({
    method: 'PUT',
    path: `${mock.url}/echo?x=1`,
    headers: { 'x-custom': 'value', 'content-type': 'application/octet-stream' },
    body: payload,
  });
  const echo = res.json();
  assert.equal(echo.method, 'PUT');
  assert.equal(echo.path, '/echo');
  assert.equal(echo.query.x, '1');
  assert.equal(echo.headers['x-custom'], 'value');
  assert.equal(echo.headers.authorization, 'Bearer sk-test');
  assert.equal(Number(echo.headers['content-length']), payload.length);
});

test('headers can be given as a Headers object or as pairs', async () => {
  for (const headers of [new Headers({ 'x-a': '1' }), [['x-a', '1']]]) {
    const echo = (await client.request({ path: `${mock.url}/echo`, headers })).json();
    assert.equal(echo.headers['x-a'], '1');
  }
});

test('an HTTP error status is a response, not an error; retries are counted', async () => {
  const notFound = await client.request({ path: `${mock.url}/echo`, headers: { 'x-mock-status': '404' } });
  assert.equal(notFound.status, 404);
  assert.equal(notFound.ok, false);
  assert.equal(notFound.attempts, 1);

  const retried = await client.request({ path: `${mock.url}/echo`, headers: { 'x-mock-status': '503' } });
  assert.equal(retried.status, 503);
  assert.equal(retried.attempts, 3, 'max_retries 2 by default: three attempts');

  const once = await client.request({ path: `${mock.url}/echo`, headers: { 'x-mock-status': '503' }, retry: false });
  assert.equal(once.attempts, 1);
});

test('a bad config throws a ConfigError naming the key', () => {
  assert.throws(
    () => getClient({ base_url: mock.baseURL, no_such_key: 1 }),
    (err) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err instanceof EspError);
      assert.equal(err.code, 'ESP_ECONFIG');
      assert.equal(err.status, STATUS.ESP_ECONFIG);
      assert.match(err.message, /no_such_key/);
      return true;
    },
  );
});

test('a timeout rejects with a TimeoutError', async () => {
  await assert.rejects(
    client.request({ path: `${mock.url}/echo`, headers: { 'x-mock-delay-ms': '3000' }, timeoutMs: 200, retry: false }),
    (err) => err instanceof TimeoutError && err.code === 'ESP_ETIMEDOUT' && err.status === -5,
  );
});

test('a request without rate-limit budget rejects with a RateLimitedError naming the limit', async () => {
  const limited = getClient(mock.config({ api_key: `sk-node-rl-${process.pid}-${Date.now()}`, rate_limit: { requests_per_minute: 6 } }));
  try {
    await limited.request({ path: 'models' });
    await assert.rejects(
      limited.request({ path: 'models', timeoutMs: 300 }),
      (err) => err instanceof RateLimitedError && err.code === 'ESP_ERATELIMITED' && err.status === -17 &&
        /requests_per_minute 6/.test(err.message),
    );
  } finally {
    limited.close();
  }
});

test('a refused connection rejects with a ConnectionError', async () => {
  const port = await closedPort();
  const refused = getClient({ base_url: `http://127.0.0.1:${port}/v1`, api_key: 'k', max_retries: 0 });
  try {
    await assert.rejects(refused.request({ path: '/models' }), (err) => {
      assert.ok(err instanceof ConnectionError);
      assert.equal(err.code, 'ESP_ECONNECT');
      assert.ok(err.message.length > 0);
      return true;
    });
  } finally {
    refused.close();
  }
});

test('an AbortSignal cancels an in-flight request with an AbortError', async () => {
  const controller = new AbortController();
  const pending = client.request({ path: `${mock.url}/echo`, headers: { 'x-mock-hang': '1' }, signal: controller.signal });
  setTimeout(() => controller.abort(new Error('user gave up')), 50);
  await assert.rejects(pending, (err) => {
    assert.ok(err instanceof AbortError);
    assert.equal(err.name, 'AbortError');
    assert.equal(err.code, 'ESP_ECANCELLED');
    assert.equal(err.cause.message, 'user gave up');
    return true;
  });
});

test('an already aborted signal rejects without sending', async () => {
  const before = await mock.stats();
  await assert.rejects(client.request({ path: `${mock.url}/echo`, signal: AbortSignal.abort() }), AbortError);
  const afterStats = await mock.stats();
  assert.equal(afterStats.requests, before.requests);
});

test('close() is idempotent, and a closed client rejects with a ClosedError', async () => {
  const lease = getClient(mock.config());
  assert.equal((await lease.request({ path: '/models' })).status, 200);
  lease.close();
  lease.close();
  lease[Symbol.dispose]();
  await lease[Symbol.asyncDispose]();
  await assert.rejects(lease.request({ path: '/models' }), (err) => err instanceof ClosedError && err.code === 'ESP_EHANDLE');
});

test('two leases on one config share one client', async () => {
  const a = getClient(mock.config({ isolate: true }));
  const b = getClient(mock.config({ isolate: true }));
  try {
    await a.request({ path: '/models' });
    await b.request({ path: '/models' });
    const shared = a.stats().client;
    assert.equal(b.stats().client.id, shared.id);
    assert.equal(shared.leases, 2);
    assert.equal(shared.requests, 2);
    assert.ok(stats().clients.some((c) => c.id === shared.id));
  } finally {
    a.close();
    b.close();
  }
});

test('HTTPS with the test CA speaks HTTP/2 and multiplexes concurrent requests', async () => {
  const tls = getClient({
    base_url: `https://localhost:${mock.httpsPort}/v1`,
    api_key: 'sk-test',
    ca_file: mock.caFile,
    isolate: true,
  });
  try {
    const responses = await Promise.all(Array.from({ length: 20 }, () => tls.request({ path: '/models' })));
    assert.ok(responses.every((res) => res.status === 200 && res.httpVersion === 20));
    const connectionIds = new Set(responses.map((res) => res.headers.get('x-mock-connection-id')));
    assert.ok(connectionIds.size < responses.length, `${connectionIds.size} connections for 20 requests`);
  } finally {
    tls.close();
  }
});

test('a path of any length and characters goes out whole (also where a character straddles the addon\'s 256-byte buffer)', async () => {
  const lines = [];
  const server = createServer((socket) => {
    let head = Buffer.alloc(0);
    socket.on('data', (data) => {
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n');
      if (end < 0) return;
      lines.push(head.subarray(0, end));
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const raw = getClient({ provider: 'generic', base_url: `http://127.0.0.1:${port}`, max_retries: 0 });
  try {
    const paths = [];
    for (let n = 230; n <= 262; n++) paths.push(`/${'a'.repeat(n)}\u20ac\u00e9`); // 3- and 2-byte characters
    paths.push(`/${'b'.repeat(5000)}`);
    for (const path of paths) assert.equal((await raw.request({ path })).status, 200);
    // libcurl sends each byte past ASCII percent-encoded.
    const onWire = (path) => [...Buffer.from(path)].map((b) => (b < 0x80 ? String.fromCharCode(b) : `%${b.toString(16)}`)).join('');
    assert.deepEqual(
      lines.map((line) => line.toString('latin1')),
      paths.map((path) => `GET ${onWire(path)} HTTP/1.1`),
    );
  } finally {
    raw.close();
    server.close();
  }
});

test('a body of any size arrives whole: empty, copied (up to 16 KiB) or handed over without a copy', async () => {
  for (const size of [0, 1, 16384, 16385, 1 << 20]) {
    const res = await client.request({ path: `${mock.url}/echo`, headers: { 'x-mock-body-bytes': String(size) } });
    assert.equal(res.status, 200);
    assert.ok(Buffer.isBuffer(res.body));
    assert.equal(res.body.length, size, `size ${size}`);
    assert.ok(res.body.every((byte) => byte === 0x78), `size ${size}: every byte is 'x'`);
  }
  globalThis.gc?.(); // a collected handed-over body frees its libesp response; the process must not mind
});

test('completions that arrive together each reach their own caller: responses, failures and aborts', async () => {
  const port = await closedPort();
  // The breaker off: six refusals in a row would open it for the last ones.
  const refused = getClient({ base_url: `http://127.0.0.1:${port}/v1`, api_key: 'k', max_retries: 0, breaker_failures: 0 });
  try {
    const aborter = new AbortController();
    const calls = [];
    for (let i = 0; i < 300; i++) {
      if (i % 50 === 7) calls.push(refused.request({ path: '/models' }).then(() => 'resolved', (err) => err));
      else if (i % 50 === 9) {
        calls.push(client.request({ path: `${mock.url}/echo/slow`, headers: { 'x-mock-delay-ms': '5000' }, signal: aborter.signal })
          .then(() => 'resolved', (err) => err));
      } else calls.push(client.request({ method: 'POST', path: `${mock.url}/echo/${i}`, body: `call ${i}` }));
    }
    aborter.abort(new Error('stop'));
    const results = await Promise.all(calls);
    results.forEach((result, i) => {
      if (i % 50 === 7) assert.ok(result instanceof ConnectionError, `call ${i}: ${result}`);
      else if (i % 50 === 9) assert.ok(result instanceof AbortError && result.cause?.message === 'stop', `call ${i}: ${result}`);
      else {
        const echoed = result.json();
        assert.equal(echoed.path, `/echo/${i}`);
        assert.equal(echoed.body, `call ${i}`);
      }
    });
  } finally {
    refused.close();
  }
});
