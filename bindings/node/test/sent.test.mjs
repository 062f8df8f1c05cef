// A failure says whether the request may have reached the server
// (esp_last_error_sent): `err.requestSent` on the binding's errors, on the
// dispatcher's undici errors and on their EspError cause; and a path that is
// not http(s) or a NUL in the method, path or a header is refused by libesp
// or the binding before anything is sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getClient, dispatcher, InvalidArgumentError } from '../lib/index.mjs';
import { startMock, closedPort } from './mock.mjs';

let mock;
let client;
before(async () => {
  mock = await startMock();
  client = getClient(mock.config({ max_retries: 0 }));
});
after(() => {
  client.close();
  mock.stop();
});

const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };

test('a request the server read and then dropped may have been sent; a refused one was not', async () => {
  await assert.rejects(
    client.request({ method: 'POST', path: '/chat/completions', json: chat, retry: false, headers: { 'x-mock-drop': 'before-headers' } }),
    (err) => {
      assert.equal(err.requestSent, true, `${err}`);
      assert.match(err.message, /may have reached the server/);
      return true;
    },
  );
  const port = await closedPort();
  await assert.rejects(client.request({ method: 'POST', path: `http://127.0.0.1:${port}/v1/chat/completions`, json: chat }), (err) => {
    assert.equal(err.code, 'ESP_ECONNECT');
    assert.equal(err.requestSent, false);
    return true;
  });
  const stream = client.stream({ method: 'POST', path: '/chat/completions', json: { ...chat, stream: true }, retry: false, headers: { 'x-mock-drop': 'before-headers' } });
  await assert.rejects(stream.response, (err) => err.requestSent === true);
});

test('fetch through the dispatcher carries the flag on its undici error and on the EspError', async () => {
  const d = dispatcher();
  await assert.rejects(
    fetch(`${mock.baseURL}/chat/completions`, { method: 'POST', body: JSON.stringify(chat), headers: { 'x-mock-drop': 'before-headers' }, dispatcher: d }),
    (err) => {
      assert.equal(err.cause.code, 'UND_ERR_SOCKET');
      assert.equal(err.cause.requestSent, true);
      assert.equal(err.cause.cause.requestSent, true);
      return true;
    },
  );
  await d.close();
});

test('client.request refuses a path that is not http(s) or relative, and sends nothing', async () => {
  const key = `scheme-${Date.now()}`;
  for (const path of ['invalid://example.org/x', 'htps://api.anthropic.com/v1/messages', 'localhost:8080/v1/chat']) {
    await assert.rejects(client.request({ path, headers: { 'x-mock-key': key } }), (err) => {
      assert.ok(err instanceof InvalidArgumentError, `${path}: ${err}`);
      assert.match(err.message, /unsupported URL scheme/);
      assert.equal(err.requestSent, false);
      return true;
    });
  }
  assert.deepEqual(await (await fetch(`${mock.url}/_mock/requests?key=${key}`)).json(), []);
});

test('a NUL in the method, path or a header is refused by request and stream, and nothing is sent', async () => {
  const cases = [
    ['method', { method: 'GET\0X', path: '/models' }, 'method is not a valid HTTP method token'],
    ['path', { path: '/models\0/../admin' }, 'path contains white space or control characters'],
    ['header name', { path: '/models', headers: { 'x-cut\0off': 'v' } }, 'header "x-cut\\u0000off" has an invalid name'],
    ['header value', { path: '/models', headers: { 'x-secret': 'sk-abc\0def' } }, "header 'x-secret' value contains a NUL byte"],
  ];
  let n = 0;
  for (const [what, req, message] of cases) {
    for (const send of [(r) => client.request(r), (r) => client.stream(r).response]) {
      const key = `nul-${process.pid}-${n++}`;
      await assert.rejects(send({ ...req, headers: { ...req.headers, 'x-mock-key': key } }), (err) => {
        assert.ok(err instanceof InvalidArgumentError, `NUL in the ${what}: ${err}`);
        assert.equal(err.code, 'ESP_EINVAL');
        assert.equal(err.message, message);
        assert.equal(err.requestSent ?? false, false);
        return true;
      });
      assert.deepEqual(await (await fetch(`${mock.url}/_mock/requests?key=${key}`)).json(), [], `NUL in the ${what}`);
    }
  }
});
