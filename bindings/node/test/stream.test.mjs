import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { getClient, AbortError, HttpStatusError } from '../lib/index.mjs';
import { startMock } from './mock.mjs';


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

/** A streamed chat completion request with `tokens` content chunks. */
const chat = (tokens, headers = {}, extra = {}) => ({
  method: 'POST',
  path: '/chat/completions',
  headers: { 'x-mock-events': String(tokens), ...headers },
  json: { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] },
  ...extra,
});

test('stream() yields every SSE event in order, ending with [DONE]', async () => {
  const stream = client.stream(chat(5));
  const head = await stream.response;
  assert.equal(head.status, 200);
  assert.match(head.headers.get('content-type'), /text\/event-stream/);
  const events = [];
  for await (const ev of stream) events.push(ev);
  assert.equal(events.length, 5 + 3, 'role chunk, 5 tokens, stop chunk, [DONE]');
  assert.ok(events.every((ev) => ev.event === 'message'));
  assert.equal(events.at(-1).data, '[DONE]');
  const text = events
    .slice(0, -1)
    .map((ev) => JSON.parse(ev.data).choices[0].delta.content ?? '')
    .join('');
  assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ');
});

test('an event keeps its type and id: plain and named events alike are {event, data, id}', async () => {
  const plain = [];
  for await (const ev of client.stream(chat(1))) plain.push(ev);
  assert.deepEqual(plain.at(-1), { event: 'message', data: '[DONE]', id: '' });
  assert.ok(plain.every((ev) => Object.keys(ev).join() === 'event,data,id' && typeof ev.data === 'string'));
  const named = [];
  const messages = {
    method: 'POST',
    path: '/messages',
    headers: { 'x-mock-events': '2' },
    json: { model: 'claude-mock', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }] },
  };
  for await (const ev of client.stream(messages)) named.push(ev);
  assert.equal(named[0].event, 'message_start');
  assert.equal(named.at(-1).event, 'message_stop');
  assert.equal(JSON.parse(named[0].data).type, 'message_start');
  assert.ok(named.every((ev) => ev.id === '' && ev.retry === undefined));
});

test('breaking out of the loop cancels the call and closes its connection', async () => {
  const isolated = getClient(mock.config({ isolate: true }));
  try {
    const baseline = (await mock.stats()).open_connections;
    let seen = 0;
    for await (const ev of isolated.stream(chat(500, { 'x-mock-chunk-delay-ms': '20' }))) {
      assert.equal(ev.event, 'message');
      if (++seen === 3) break;
    }
    assert.equal(seen, 3);
    // The 10 s stream was cancelled: its HTTP/1.1 connection closes rather than
    // returning to the pool (other clients' idle connections may close too).
    let open = Infinity;
    for (let i = 0; i < 100 && open > baseline; i++) {
      await sleep(50);
      open = (await mock.stats()).open_connections;
    }
    assert.ok(open <= baseline, `${open} connections open, ${baseline} before the stream`);
    const { outcomes, in_flight: inFlight } = isolated.stats().client;
    assert.equal(outcomes.cancelled, 1);
    assert.equal(inFlight, 0);
  } finally {
    isolated.close();
  }
});

test('a slow consumer pauses the transfer in libesp and still receives every event', async () => {
  const tokens = 4000;
  let count = 0;
  let held = null;
  const slow = getClient(mock.config({ stream_buffer_bytes: 16384, isolate: true }));
  try {
    for await (const ev of slow.stream(chat(tokens))) {
      if (count === 0) {
        await sleep(300); // let the response pile up
        held = slow.stats().client;
      }
      count++;
      if (ev.data !== '[DONE]') assert.equal(JSON.parse(ev.data).object, 'chat.completion.chunk');
    }
    assert.equal(count, tokens + 3);
    assert.equal(held.streams_paused, 1, 'the transfer was paused while the consumer lagged');
    assert.ok(held.stream_buffered_bytes > 16384 - 1024 && held.stream_buffered_bytes < 65536, `${held.stream_buffered_bytes} bytes held`);
    assert.equal(slow.stats().client.streams_paused, 0, 'and resumed');
  } finally {
    slow.close();
  }
});

test('a non-SSE 2xx body arrives as raw chunks', async () => {
  const chunks = [];
  for await (const item of client.stream({ method: 'POST', path: 'chat/completions', json: { model: 'm', messages: [{ role: 'user', content: 'hi' }] } })) {
    assert.ok(Buffer.isBuffer(item), 'a chunk, not an event');
    chunks.push(item);
  }
  assert.equal(JSON.parse(Buffer.concat(chunks).toString()).object, 'chat.completion');
});

test('an AbortSignal ends iteration with an AbortError', async () => {
  const controller = new AbortController();
  const stream = client.stream(chat(500, { 'x-mock-chunk-delay-ms': '20' }, { signal: controller.signal }));
  let seen = 0;
  await assert.rejects(
    (async () => {
      for await (const ev of stream) {
        assert.ok(ev.data.length > 0);
        if (++seen === 2) controller.abort();
      }
    })(),
    (err) => err instanceof AbortError && err.code === 'ESP_ECANCELLED',
  );
  assert.equal(seen, 2);
});

test('a non-2xx stream throws an HttpStatusError carrying the whole error response', async () => {
  const stream = client.stream(chat(3, { 'x-mock-status': '400' }));
  assert.equal((await stream.response).status, 400);
  await assert.rejects(
    (async () => {
      for await (const ev of stream) assert.fail(`unexpected event ${ev.data}`);
    })(),
    (err) => {
      assert.ok(err instanceof HttpStatusError);
      assert.equal(err.status, 400);
      assert.equal(err.response.status, 400);
      assert.match(err.response.headers.get('content-type'), /application\/json/);
      assert.equal(typeof err.response.json().error.message, 'string');
      assert.match(err.message, /^HTTP 400/);
      return true;
    },
  );
});

test('a stream that cannot start fails its iteration, not the stream() call', async () => {
  const lease = getClient(mock.config());
  lease.close();
  const stream = lease.stream(chat(1));
  await assert.rejects(stream.next(), (err) => err.code === 'ESP_EHANDLE');
});

test('next() called again before the last one settled gives the events in order, once each', async () => {
  // One event every 30 ms: all three calls wait on the same stream at once.
  const stream = client.stream(chat(4, { 'x-mock-chunk-delay-ms': '30' }));
  await stream.response;
  const first = await Promise.race([Promise.all([stream.next(), stream.next(), stream.next()]), sleep(5000)]);
  assert.ok(Array.isArray(first), 'three overlapping next() calls all settled');
  const rest = [];
  for await (const ev of stream) rest.push(ev);
  const contents = [...first.map((r) => r.value), ...rest]
    .slice(0, -1)
    .map((ev) => JSON.parse(ev.data).choices[0].delta.content ?? '');
  assert.deepEqual(contents, ['', 'tok0 ', 'tok1 ', 'tok2 ', 'tok3 ', '']);
  assert.equal(rest.at(-1).data, '[DONE]');
});

test('many paced streams at once each get every event (readies batched into one wake-up)', async () => {
  const streams = 50;
  const counts = await Promise.all(
    Array.from({ length: streams }, async () => {
      let count = 0;
      for await (const ev of client.stream(chat(20, { 'x-mock-chunk-delay-ms': '5' }))) {
        assert.equal(ev.event, 'message');
        count++;
      }
      return count;
    }),
  );
  assert.deepEqual(counts, Array(streams).fill(20 + 3));
});

test('cancel() ends iteration quietly, also for a waiting consumer', async () => {
  // One event at once, then one a second: the second next() has to wait.
  const stream = client.stream(chat(500, { 'x-mock-chunk-delay-ms': '1000' }));
  const first = await stream.next();
  assert.equal(first.done, false);
  const waiting = stream.next();
  stream.cancel();
  assert.deepEqual(await waiting, { value: undefined, done: true });
  await sleep(100); // the cancelled completion arrives meanwhile
  assert.deepEqual(await stream.next(), { value: undefined, done: true });
});

test('cancel() before the head arrives rejects the response and ends iteration quietly', async () => {
  const stream = client.stream(chat(3, { 'x-mock-delay-ms': '300' }));
  stream.cancel();
  await assert.rejects(stream.response, AbortError);
  for await (const ev of stream) assert.fail(`got ${ev}`);
});
