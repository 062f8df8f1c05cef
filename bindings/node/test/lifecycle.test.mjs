import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { getClient, stats } from '../lib/index.mjs';
import { startMock } from './mock.mjs';

const run = promisify(execFile);
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

let mock;
before(async () => {
  mock = await startMock();
});
after(() => mock.stop());

const childEnv = () => ({ ...process.env, MOCK_BASE_URL: mock.baseURL, MOCK_URL: mock.url });

test('an in-flight call keeps the process alive, and an idle one exits on its own', async () => {
  const { stdout } = await run(process.execPath, [path.join(fixtures, 'idle-exit.cjs')], {
    env: childEnv(),
    timeout: 30000,
  });
  assert.equal(stdout.trim(), 'status 200');
});

test('a fetch whose streamed body is left unread does not keep the process alive', async () => {
  const started = Date.now();
  const { stdout } = await run(process.execPath, [path.join(fixtures, 'unread-fetch.cjs')], {
    env: childEnv(),
    timeout: 30000,
  });
  assert.equal(stdout.trim(), 'status 200');
  // The body takes 50 s to stream; exiting means nothing waited for it.
  assert.ok(Date.now() - started < 25000, `exited after ${Date.now() - started} ms`);
});

test('a client dropped without close() is released by the FinalizationRegistry', async () => {
  const { stdout } = await run(process.execPath, ['--expose-gc', path.join(fixtures, 'forgotten-lease.cjs')], {
    env: childEnv(),
    timeout: 30000,
  });
  const { statuses, releases } = JSON.parse(stdout);
  assert.deepEqual(statuses, [200, 200]);
  // One release by close(), one by the registry; both of live leases (ESP_OK),
  // and no second release of the closed client.
  assert.deepEqual(releases, [0, 0]);
});

// The Worker's first message: what it reports once its work is under way.
// A Worker that ends before its message fails the test instead of hanging it.
function firstMessage(worker) {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the Worker exited (code ${code}) before its first message`)));
  });
}

// Polls a process-wide counter until it reaches 0 (at most 2 s); returns its last value.
async function drained(counter) {
  let value = Infinity;
  for (let i = 0; i < 100 && value > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    value = stats()[counter];
  }
  return value;
}

async function processStillServes() {
  const client = getClient(mock.config());
  try {
    assert.equal((await client.request({ path: '/models' })).status, 200);
  } finally {
    client.close();
  }
}

test('terminating a Worker mid-stream closes its streams and leaves the process healthy', async () => {
  const worker = new Worker(path.join(fixtures, 'worker-streams.mjs'), {
    workerData: { baseURL: mock.baseURL, streams: 20 },
  });
  assert.equal(await firstMessage(worker), 20);
  await worker.terminate();
  assert.equal(await drained('streams_open'), 0);
  await processStillServes();
});

test('terminating a Worker with calls in flight cancels them and leaves the process healthy', async () => {
  const worker = new Worker(path.join(fixtures, 'worker-calls.mjs'), {
    workerData: { baseURL: mock.baseURL, url: mock.url, calls: 50 },
  });
  assert.equal(await firstMessage(worker), 50, 'the server holds all 50 calls');
  assert.equal(stats().in_flight, 50);
  await worker.terminate();
  // The Worker's addon instance cancelled its 50 hanging calls at teardown.
  assert.equal(await drained('in_flight'), 0);
  await processStillServes();
});
