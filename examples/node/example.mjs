// libesp from Node: a plain request, a streamed chat completion, and the
// official OpenAI SDK riding on libesp's shared pool through client.fetch.
//
//   ESP_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... node example.mjs
//
// `make -C bindings/node example` runs it against the project's mock server.
import { createRequire } from 'node:module';
import { getClient } from '../../bindings/node/lib/index.mjs';

// The openai package is a devDependency of bindings/node: resolve it from there.
const { OpenAI } = createRequire(new URL('../../bindings/node/package.json', import.meta.url))('openai');

const baseURL = process.env.ESP_BASE_URL ?? 'https://api.openai.com/v1';
const apiKey = process.env.OPENAI_API_KEY ?? 'sk-test';
const model = process.env.ESP_MODEL ?? 'gpt-4o-mini';
const messages = [{ role: 'user', content: 'Say hello in five words.' }];

// Every getClient() with this config shares one pool of connections.
const client = getClient({ provider: 'openai', base_url: baseURL, api_key: apiKey });
try {
  const res = await client.request({ method: 'POST', path: '/chat/completions', json: { model, messages } });
  console.log(`request: HTTP ${res.status}:`, res.json().choices?.[0]?.message?.content);

  process.stdout.write('stream: ');
  for await (const event of client.stream({
    method: 'POST',
    path: '/chat/completions',
    json: { model, messages, stream: true },
  })) {
    if (event.data === '[DONE]') break;
    process.stdout.write(JSON.parse(event.data).choices[0]?.delta?.content ?? '');
  }
  process.stdout.write('\n');

  // One retry layer is enough: libesp retries, so the SDK does not.
  const openai = new OpenAI({ apiKey, baseURL, fetch: client.fetch, maxRetries: 0 });
  const completion = await openai.chat.completions.create({ model, messages });
  console.log('openai sdk:', completion.choices[0].message.content);
} finally {
  client.close();
}
