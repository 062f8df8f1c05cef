import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { getClient } from '../lib/index.mjs';
import { startMock, closedPort } from './mock.mjs';

let mock;
let client;
before(async () => {
  mock = await startMock();
  client = getClient(mock.config());
});
after(() => {
  client.close();
  mock.stop();
});

test('client.fetch returns a WHATWG Response', async () => {
  const res = await client.fetch(`${mock.url}/echo?q=1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-from': 'fetch' },
    body: JSON.stringify({ a: 1 }),
  });
  assert.ok(res instanceof Response);
  assert.equal(res.status, 200);
  assert.equal(res.ok, true);
  assert.equal(res.url, `${mock.url}/echo?q=1`);
  assert.match(res.headers.get('content-type'), /application\/json/);
  const echo = await res.json();
  assert.equal(echo.method, 'POST');
  assert.equal(echo.query.q, '1');
  assert.equal(echo.headers['x-from'], 'fetch');
  assert.deepEqual(JSON.parse(echo.body), { a: 1 });
});

test('client.fetch accepts a Request and reports HTTP errors as responses', async () => {
  const res = await client.fetch(new Request(`${mock.url}/echo`, { headers: { 'x-mock-status': '404' } }));
  assert.equal(res.status, 404);
  assert.equal(res.ok, false);
  await res.arrayBuffer();
});

test('the fetch body streams chunk by chunk as the server sends them', async () => {
  const res = await client.fetch(`${mock.url}/echo`, { headers: { 'x-mock-body-bytes': String(4 << 20) } });
  assert.equal(res.status, 200);
  let bytes = 0;
  let chunks = 0;
  for await (const chunk of res.body) {
    assert.ok(chunk instanceof Uint8Array);
    bytes += chunk.byteLength;
    chunks++;
  }
  assert.equal(bytes, 4 << 20);
  assert.ok(chunks > 1, `a 4 MiB body came in ${chunks} chunk(s)`);
});

test('cancelling a fetch body stream cancels the call', async () => {
  const res = await client.fetch(`${mock.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-events': '500', 'x-mock-chunk-delay-ms': '20' },
    body: JSON.stringify({ model: 'm', stream: true, messages: [] }),
  });
  const reader = res.body.getReader();
  const first = await reader.read();
  assert.equal(first.done, false);
  await reader.cancel();
  // The client stays usable after the cancel.
  assert.equal((await client.fetch(`${mock.baseURL}/models`)).status, 200);
});

test('an AbortSignal rejects fetch with its reason', async () => {
  const controller = new AbortController();
  const pending = client.fetch(`${mock.url}/echo`, {
    headers: { 'x-mock-hang': '1' },
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(pending, (err) => err.name === 'AbortError');
});

test('an AbortSignal during the body errors the stream', async () => {
  const controller = new AbortController();
  const res = await client.fetch(`${mock.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-events': '500', 'x-mock-chunk-delay-ms': '20' },
    body: JSON.stringify({ model: 'm', stream: true, messages: [] }),
    signal: controller.signal,
  });
  const reader = res.body.getReader();
  await reader.read();
  controller.abort();
  await assert.rejects(
    (async () => {
      for (;;) if ((await reader.read()).done) break;
    })(),
    (err) => err.name === 'AbortError',
  );
});

test('a connection failure rejects fetch with a TypeError whose cause is the EspError', async () => {
  const port = await closedPort();
  await assert.rejects(client.fetch(`http://127.0.0.1:${port}/x`), (err) => {
    assert.ok(err instanceof TypeError);
    assert.equal(err.cause.code, 'ESP_ECONNECT');
    return true;
  });
});

test('the official OpenAI SDK sends a chat completion through client.fetch', async () => {
  const openai = new OpenAI({ apiKey: 'sk-test', baseURL: mock.baseURL, fetch: client.fetch, maxRetries: 0 });
  const completion = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Say hello' }],
  });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(typeof completion.choices[0].message.content, 'string');
  assert.ok(completion.choices[0].message.content.length > 0);
});

test('the official OpenAI SDK streams a chat completion through client.fetch', async () => {
  const openai = new OpenAI({ apiKey: 'sk-test', baseURL: mock.baseURL, fetch: client.fetch, maxRetries: 0 });
  const stream = await openai.chat.completions.create(
    { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Say hello' }] },
    { headers: { 'x-mock-events': '4' } },
  );
  let text = '';
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(chunks, 4 + 2, 'role chunk, 4 tokens, stop chunk');
  assert.equal(text, 'tok0 tok1 tok2 tok3 ');
});

test('the OpenAI SDK sees HTTP errors as its own APIError', async () => {
  const openai = new OpenAI({ apiKey: 'sk-test', baseURL: mock.baseURL, fetch: client.fetch, maxRetries: 0 });
  await assert.rejects(
    openai.models.list({ headers: { 'x-mock-status': '401' } }),
    (err) => err instanceof OpenAI.APIError && err.status === 401,
  );
});

test('a HEAD response has a null body', async () => {
  const res = await client.fetch(`${mock.url}/echo`, { method: 'HEAD' });
  assert.equal(res.status, 200);
  assert.equal(res.body, null);
});
