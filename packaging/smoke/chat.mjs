// Package smoke test: the README's few lines of use, against the mock server
// at $ESP_MOCK_HTTP (run by `make test-packages` from an installed npm tarball).
import { getClient, version } from 'libesp';

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] };
const client = getClient({ base_url: `${process.env.ESP_MOCK_HTTP}/v1`, api_key: 'sk-test' });

const res = await client.request({ method: 'POST', path: 'chat/completions', json: chat });
console.log('chat:', res.json().choices[0].message.content);

let text = '';
for await (const event of client.stream({ method: 'POST', path: 'chat/completions', json: { ...chat, stream: true } })) {
  if (event.data === '[DONE]') break;
  text += JSON.parse(event.data).choices[0].delta.content ?? '';
}
console.log('stream:', text);
client.close();
console.log('libesp', version());
