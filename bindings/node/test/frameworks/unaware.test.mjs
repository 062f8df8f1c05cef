// A program that knows nothing of libesp (unaware-app.mjs: the openai and
// Anthropic SDKs, a new client per row) run as is and with only
// `node --import libesp/register`: its connections collapse to libesp's pool.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMock } from '../mock.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

let mock;
before(async () => {
  mock = await startMock();
});
after(() => mock.stop());

/** Runs the app with `nodeArgs`; returns its report and the connections the mock accepted meanwhile. */
async function runApp(nodeArgs) {
  await fetch(`${mock.url}/_mock/reset`, { method: 'POST' });
  const root = `https://localhost:${mock.httpsPort}`;
  const { stdout } = await run(process.execPath, [...nodeArgs, path.join(here, 'unaware-app.mjs')], {
    cwd: here,
    timeout: 120_000,
    env: {
      ...process.env,
      ROWS: '200',
      BATCH: '20',
      NODE_EXTRA_CA_CERTS: mock.caFile,
      OPENAI_BASE_URL: `${root}/v1`,
      OPENAI_API_KEY: 'sk-test',
      ANTHROPIC_BASE_URL: root,
      ANTHROPIC_API_KEY: 'sk-ant-test',
    },
  });
  const report = JSON.parse(stdout);
  const counts = await (await fetch(`${mock.url}/_mock/stats`)).json();
  return { ...report, connections: counts.connections, requests: counts.requests };
}

test('an unchanged SDK program moves onto the shared pool with only --import libesp/register', async () => {
  const plain = await runApp([]);
  const onEsp = await runApp(['--import', 'libesp/register']);
  console.log(`200 rows x 2 SDK calls, 20 rows at a time, HTTPS: built-in fetch ${JSON.stringify(plain)}; libesp ${JSON.stringify(onEsp)}`);
  for (const report of [plain, onEsp]) {
    assert.deepEqual(report.failures, []);
    assert.equal(report.requests, 400);
  }
  assert.ok(onEsp.connections <= 4, `${onEsp.connections} connections on libesp`);
  assert.ok(plain.connections >= 2 * onEsp.connections, `built-in fetch ${plain.connections}, libesp ${onEsp.connections}`);
});
