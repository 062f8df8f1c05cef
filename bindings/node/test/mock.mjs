// Starts the project's mock LLM server (test/mock/server.js) as a child
// process for one test file; it serves on 127.0.0.1 until its stdin closes.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The libesp checkout: $ESP_ROOT, else the repository this binding sits in. */
export const ESP_ROOT = process.env.ESP_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * @returns {Promise<{httpPort: number, httpsPort: number, caFile: string, url: string, baseURL: string,
 *   config: (extra?: object) => object, stats: () => Promise<object>, stop: () => void}>}
 */
export async function startMock() {
  const child = spawn(process.execPath, [path.join(ESP_ROOT, 'test/mock/server.js')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`mock server exited with ${code}`)));
  });
  lines.close();
  const info = JSON.parse(first);
  const url = `http://127.0.0.1:${info.http_port}`;
  const baseURL = `${url}/v1`;
  return {
    httpPort: info.http_port,
    httpsPort: info.https_port,
    caFile: info.ca_file,
    /** The plain-HTTP listener's root, where /echo is. */
    url,
    /** The OpenAI-style API root. */
    baseURL,
    /**
     * A client config for the plain-HTTP listener. The circuit breaker is off:
     * it is per origin, and the tests provoke failures on purpose.
     */
    config: (extra = {}) => ({ provider: 'openai', base_url: baseURL, api_key: 'sk-test', breaker_failures: 0, ...extra }),
    /** The mock's own counters (connections, requests). */
    stats: async () => (await fetch(`${url}/_mock/stats`)).json(),
    stop: () => child.stdin.end(),
  };
}

/** A loopback port that was just listening and is closed now: connecting to it is refused. */
export async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}
