// Compiled (never run) by types.test.mjs: the public API as a TypeScript user writes it.
import { getClient, dispatcher, install, uninstall, EspError, TimeoutError, HttpStatusError, type EspResponse, type SseEvent } from 'libesp';
import OpenAI from 'openai';

export async function usage(signal: AbortSignal): Promise<string> {
  using client = getClient({ provider: 'openai', base_url: 'http://127.0.0.1:1/v1', api_key: 'k', max_retries: 1 });
  const res: EspResponse = await client.request({ method: 'POST', path: '/chat/completions', json: { a: 1 }, signal, timeoutMs: 1000 });
  const status: number = res.status;
  const body: Buffer = res.body;
  const contentType: string | null = res.headers.get('content-type');
  const parsed = res.json<{ id: string }>();
  let text = `${status} ${body.length} ${contentType} ${parsed.id} ${res.text()} ${res.attempts}`;
  const stream = client.stream({ path: '/x', headers: [['a', 'b']], retry: false, readTimeoutMs: 500, poolTimeoutMs: 10, timeoutMs: Infinity });
  const head = await stream.response;
  text += head.headers.get('x');
  for await (const event of stream) {
    if (Buffer.isBuffer(event)) continue; // a body that is not an event stream: raw chunks
    const e: SseEvent = event;
    text += e.data + e.event + e.id + (e.retry ?? 0);
  }
  const openai = new OpenAI({ apiKey: 'k', fetch: client.fetch, maxRetries: 0 });
  text += String(openai.baseURL);
  const response: Response = await client.fetch('http://127.0.0.1:1/', { signal });
  text += await response.text();
  try {
    await client.request({ path: '/' });
  } catch (err) {
    if (err instanceof TimeoutError) text += err.code;
    if (err instanceof EspError) text += String(err.status) + String(err.requestSent);
    if (err instanceof HttpStatusError) text += String(err.status) + err.response.text();
  }
  await client[Symbol.asyncDispose]();
  const installed = install({ ca_file: '/tmp/ca.pem', max_connections: 8 });
  text += String(installed.closed);
  await uninstall();
  const own = dispatcher({ first_byte_timeout_ms: 1000 });
  own.dispatch({ origin: 'http://127.0.0.1:1', path: '/', method: 'GET', headers: { a: 'b' } }, { onError() {} });
  await own.close();
  return text;
}
