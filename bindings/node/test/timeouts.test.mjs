// Per-request timeouts (esp_request_opts' connect, read, write and pool
// fields, and ESP_NO_TIMEOUT as Infinity), each naming what fired.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getClient, TimeoutError } from '../lib/index.mjs';
import { startMock } from './mock.mjs';

let mock;
before(async () => {
  mock = await startMock();
});
after(() => mock.stop());

test('readTimeoutMs bounds the silence between response bytes', async () => {
  const client = getClient(mock.config({ max_retries: 0 }));
  after(() => client.close());
  const started = Date.now();
  const stream = client.stream({ path: `${mock.url}/echo`, headers: { 'x-mock-slowloris': '1000' }, readTimeoutMs: 200 });
  await assert.rejects(
    (async () => {
      for await (const event of stream) void event;
    })(),
    (err) => {
      assert.ok(err instanceof TimeoutError, `${err}`);
      assert.match(err.message, /read timeout/);
      return true;
    },
  );
  assert.ok(Date.now() - started < 900, `failed after ${Date.now() - started} ms`);
});

test('poolTimeoutMs bounds the wait for a connection slot', async () => {
  const client = getClient(mock.config({ max_retries: 0, max_connections: 1, isolate: true }));
  after(() => client.close());
  const busy = client.request({ path: `${mock.url}/echo`, headers: { 'x-mock-delay-ms': '600' } });
  await new Promise((r) => setTimeout(r, 50));
  const started = Date.now();
  await assert.rejects(client.request({ path: `${mock.url}/echo`, poolTimeoutMs: 100 }), (err) => {
    assert.equal(err.code, 'ESP_EPOOLTIMEOUT');
    return true;
  });
  assert.ok(Date.now() - started < 500, `waited ${Date.now() - started} ms`);
  assert.equal((await busy).status, 200);
});

test('timeoutMs: Infinity lifts the total limit of the client for one request', async () => {
  const client = getClient(mock.config({ max_retries: 0, timeout_ms: 200 }));
  after(() => client.close());
  const slow = { path: `${mock.url}/echo`, headers: { 'x-mock-delay-ms': '500' } };
  await assert.rejects(client.request(slow), (err) => err instanceof TimeoutError && /total timeout/.test(err.message));
  assert.equal((await client.request({ ...slow, timeoutMs: Infinity })).status, 200);
  await assert.rejects(client.request({ ...slow, readTimeoutMs: -5 }), TypeError);
});

test('firstByteTimeoutMs bounds the wait for the head and idleTimeoutMs the silences in the body, each alone', async () => {
  const client = getClient(mock.config({ max_retries: 0 }));
  after(() => client.close());
  const lateHead = { path: `${mock.url}/echo`, headers: { 'x-mock-delay-ms': '600' } };
  let started = Date.now();
  await assert.rejects(client.request({ ...lateHead, firstByteTimeoutMs: 250 }), (err) => {
    assert.ok(err instanceof TimeoutError, `${err}`);
    assert.match(err.message, /^first-byte timeout.*\(250 ms\)/);
    return true;
  });
  const waited = Date.now() - started;
  assert.ok(waited >= 250 && waited < 550, `first-byte timeout after ${waited} ms`);
  // An idle limit says nothing about the wait for the head.
  assert.equal((await client.request({ ...lateHead, idleTimeoutMs: 150 })).status, 200);

  const slowBody = { path: `${mock.url}/echo`, headers: { 'x-mock-slowloris': '400' } };
  started = Date.now();
  await assert.rejects(client.request({ ...slowBody, idleTimeoutMs: 150 }), (err) => {
    assert.ok(err instanceof TimeoutError, `${err}`);
    assert.match(err.message, /^idle timeout.*\(150 ms\)/);
    return true;
  });
  assert.ok(Date.now() - started < 1000, `idle timeout after ${Date.now() - started} ms`);
  // Nor does a first-byte limit bound a body that keeps coming.
  const steady = { path: `${mock.url}/echo`, headers: { 'x-mock-slowloris': '30' } };
  assert.equal((await client.request({ ...steady, firstByteTimeoutMs: 300 })).status, 200);
  await assert.rejects(client.request({ ...slowBody, idleTimeoutMs: -1 }), TypeError);
});
