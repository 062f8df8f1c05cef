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

test('a plain call sends what a Request would: URL objects, bytes, string bodies typed text/plain', async () => {
  const echoOf = async (input, init) => (await client.fetch(input, init)).json();
  const typed = await echoOf(new URL(`${mock.url}/echo`), { method: 'POST', body: 'hi' });
  assert.equal(typed.headers['content-type'], 'text/plain;charset=UTF-8');
  assert.equal(typed.body, 'hi');
  const own = await echoOf(`${mock.url}/echo`, { method: 'PUT', headers: [['Content-Type', 'text/x-own']], body: 'hi' });
  assert.equal(own.method, 'PUT');
  assert.equal(own.headers['content-type'], 'text/x-own');
  const bytes = await echoOf(`${mock.url}/echo`, { method: 'POST', body: new TextEncoder().encode('raw') });
  assert.equal(bytes.body, 'raw');
  // Spellings and members only Request understands still go through it.
  assert.equal((await echoOf(`${mock.url}/echo`, { method: 'post', body: 'x', cache: 'no-store' })).method, 'POST');
  const form = await echoOf(`${mock.url}/echo`, { method: 'POST', body: new URLSearchParams({ a: '1' }) });
  assert.equal(form.headers['content-type'], 'application/x-www-form-urlencoded;charset=UTF-8');
  assert.equal(form.body, 'a=1');
});

test('what Request refuses, fetch rejects with its TypeError before sending', async () => {
  const before = (await mock.stats()).requests;
  await assert.rejects(client.fetch(`${mock.url}/echo`, { body: 'x' }), TypeError); // GET with a body
  await assert.rejects(client.fetch(`http://user:pw@127.0.0.1:${mock.httpPort}/echo`), TypeError);
  await assert.rejects(client.fetch('/relative'), TypeError);
  await assert.rejects(client.fetch(`${mock.url}/echo`, { headers: { 'bad name': 'x' } }), TypeError);
  assert.equal((await mock.stats()).requests, before);
});

test('a whole body reads once, like any Response body', async () => {
  const res = await client.fetch(`${mock.baseURL}/models`);
  assert.ok(res instanceof Response);
  assert.equal(res.url, `${mock.baseURL}/models`);
  assert.equal(res.bodyUsed, false);
  const copy = res.clone();
  assert.equal(copy.url, res.url);
  const parsed = await res.json();
  assert.equal(parsed.object, 'list');
  assert.equal(res.bodyUsed, true);
  await assert.rejects(res.text(), TypeError);
  assert.throws(() => res.clone(), TypeError);
  assert.deepEqual(JSON.parse(await copy.text()), parsed);
  const blob = await (await client.fetch(`${mock.baseURL}/models`)).blob();
  assert.match(blob.type, /application\/json/);
  assert.deepEqual(JSON.parse(await blob.text()), parsed);
});

// Code handed our response may call Response's own methods on it (unbound,
// or after an instanceof check): they read the same body, once.
test("Response's own methods called on a fetched response read its body", async () => {
  const url = `${mock.baseURL}/models`;
  const res = await client.fetch(url);
  assert.ok(res instanceof Response);
  const parsed = JSON.parse(await Response.prototype.text.call(res));
  assert.equal(parsed.object, 'list');
  assert.equal(res.bodyUsed, true);
  await assert.rejects(res.json(), TypeError);

  const read = await client.fetch(url);
  assert.deepEqual(await read.json(), parsed);
  assert.equal(Object.getOwnPropertyDescriptor(Response.prototype, 'bodyUsed').get.call(read), true);
  await assert.rejects(Response.prototype.arrayBuffer.call(read), TypeError);

  const cloned = await client.fetch(url);
  const copy = Response.prototype.clone.call(cloned);
  assert.deepEqual(await Response.prototype.json.call(cloned), parsed);
  assert.deepEqual(JSON.parse(await copy.text()), parsed);
});

test('a whole body is also a ReadableStream for whoever asks for one', async () => {
  const res = await client.fetch(`${mock.baseURL}/models`);
  const chunks = [];
  for await (const chunk of res.body) chunks.push(chunk);
  assert.equal(JSON.parse(Buffer.concat(chunks).toString()).object, 'list');
  assert.equal(res.bodyUsed, true);
  await assert.rejects(res.arrayBuffer(), TypeError);
});

test('a whole body decodes as the fetch spec says (UTF-8, a leading BOM dropped)', async () => {
  const { WholeResponse } = await import('../lib/whole-response.js');
  const bytes = Buffer.from('\uFEFF{"k":"\u00e9"}');
  for (const read of ['text', 'json', 'arrayBuffer', 'bytes']) {
    const ours = await new WholeResponse(bytes, { status: 200 }, 'http://x/')[read]();
    const theirs = await new Response(bytes, { status: 200 })[read]();
    assert.deepEqual(ours, theirs, read);
  }
});
