import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getClient } from '../lib/index.mjs';
import { startMock } from './mock.mjs';

let mock;
before(async () => {
  mock = await startMock();
});
after(() => mock.stop());

test('1,000 slow requests in flight never block the event loop', async () => {
  const client = getClient(mock.config({ max_connections: 250, timeout_ms: 60000 }));
  const intervalMs = 10;
  let ticks = 0;
  const timer = setInterval(() => ticks++, intervalMs);
  const started = performance.now();
  try {
    const requests = Array.from({ length: 1000 }, () =>
      client.request({ path: `${mock.url}/echo`, headers: { 'x-mock-delay-ms': '1000' }, retry: false }),
    );
    const responses = await Promise.all(requests);
    const elapsed = performance.now() - started;
    assert.ok(responses.every((res) => res.status === 200));
    // A blocked loop would tick a handful of times; a free one ticks at its rate.
    const expected = elapsed / intervalMs;
    assert.ok(ticks >= expected * 0.25, `${ticks} ticks in ${Math.round(elapsed)} ms (expected about ${Math.round(expected)})`);
  } finally {
    clearInterval(timer);
    client.close();
  }
});
