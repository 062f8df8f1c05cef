// The openai and @anthropic-ai/sdk packages (pinned in package.json), given no
// `fetch` option, on libesp once install() has run: a new client of each per
// row, a few hundred rows over TLS with the mock's private CA, share a handful
// of connections, streaming and errors included.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import esp from 'libesp';
import { startMock, closedPort } from '../mock.mjs';

let mock;
let root;
before(async () => {
  mock = await startMock();
  root = `https://localhost:${mock.httpsPort}`;
  esp.install({ ca_file: mock.caFile });
});
after(async () => {
  await esp.uninstall();
  mock.stop();
});

/** Runs row(0..rows-1), `batch` at a time. */
async function inBatches(rows, batch, row) {
  for (let first = 0; first < rows; first += batch) {
    const work = [];
    for (let r = first; r < Math.min(first + batch, rows); r++) work.push(row(r));
    await Promise.all(work);
  }
}

/** What `work` cost: the mock's request and connection counts, and the calls libesp's dispatcher made. */
async function measure(work) {
  const dispatcherRequests = () =>
    esp.stats().clients.filter((c) => c.name === 'undici-dispatcher').reduce((n, c) => n + c.requests, 0);
  await fetch(`${mock.url}/_mock/reset`, { method: 'POST' });
  const before = dispatcherRequests();
  await work();
  const viaLibesp = dispatcherRequests() - before;
  const counts = await (await fetch(`${mock.url}/_mock/stats`)).json();
  return { ...counts, viaLibesp };
}

test('300 rows, a new OpenAI and Anthropic client per row, share one pool', async () => {
  const rows = 300;
  const counts = await measure(() =>
    inBatches(rows, 25, async (row) => {
      const question = `row ${row}`;
      const openai = new OpenAI({ apiKey: 'sk-test', baseURL: `${root}/v1` });
      const claude = new Anthropic({ apiKey: 'sk-ant-test', baseURL: root });
      const messages = [{ role: 'user', content: question }];
      let openaiText = '';
      let claudeText = '';
      if (row % 5 === 0) {
        for await (const chunk of await openai.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true })) {
          openaiText += chunk.choices[0]?.delta?.content ?? '';
        }
        const stream = claude.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 64, messages });
        claudeText = (await stream.finalMessage()).content[0].text;
      } else {
        openaiText = (await openai.chat.completions.create({ model: 'gpt-4o-mini', messages })).choices[0].message.content;
        claudeText = (await claude.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages })).content[0].text;
      }
      assert.equal(openaiText, `echo: ${question}`);
      assert.equal(claudeText, `echo: ${question}`);
    }),
  );
  console.log(`${rows} rows, 25 at a time: ${counts.requests} requests over ${counts.connections} connection(s)`);
  assert.equal(counts.requests, 2 * rows);
  assert.equal(counts.viaLibesp, 2 * rows, 'every SDK call went through libesp');
  assert.ok(counts.connections <= 4, `${counts.connections} connections`);
});

test('HTTP errors reach the SDKs as their own API errors, and connection failures as connection errors', async () => {
  const openai = new OpenAI({ apiKey: 'sk-test', baseURL: `${root}/v1`, maxRetries: 0 });
  await assert.rejects(
    openai.chat.completions.create({ model: 'm', messages: [] }, { headers: { 'x-mock-status': '429' } }),
    (err) => err instanceof OpenAI.RateLimitError && err.status === 429,
  );
  const claude = new Anthropic({ apiKey: 'sk-ant-test', baseURL: root, maxRetries: 0 });
  await assert.rejects(
    claude.messages.create({ model: 'm', max_tokens: 8, messages: [] }, { headers: { 'x-mock-status': '529' } }),
    (err) => err instanceof Anthropic.APIError && err.status === 529,
  );
  const unreachable = new OpenAI({ apiKey: 'sk-test', baseURL: `http://127.0.0.1:${await closedPort()}/v1`, maxRetries: 0 });
  await assert.rejects(unreachable.models.list(), (err) => {
    assert.ok(err instanceof OpenAI.APIConnectionError, `${err}`);
    assert.equal(err.cause?.cause?.code, 'UND_ERR_SOCKET', 'fetch failed, caused by the dispatcher');
    return true;
  });
});

test("the SDKs' retries and timeouts still work on libesp", async () => {
  const key = `retry-${Date.now()}`;
  const openai = new OpenAI({ apiKey: 'sk-test', baseURL: `${root}/v1`, maxRetries: 2 });
  const completion = await openai.chat.completions.create(
    { model: 'm', messages: [{ role: 'user', content: 'again' }] },
    { headers: { 'x-mock-key': key, 'x-mock-fail-times': '2', 'x-mock-status': '503', 'x-mock-retry-after-ms': '10' } },
  );
  assert.equal(completion.choices[0].message.content, 'echo: again');
  const seen = await (await fetch(`${mock.url}/_mock/requests?key=${key}`)).json();
  assert.equal(seen.length, 3, 'the SDK retried twice; libesp added no retries of its own');

  const impatient = new OpenAI({ apiKey: 'sk-test', baseURL: `${root}/v1`, maxRetries: 0, timeout: 200 });
  await assert.rejects(
    impatient.models.list({ headers: { 'x-mock-hang': '1' } }),
    (err) => err instanceof OpenAI.APIConnectionTimeoutError,
  );
});
