// Streaming at scale, Node side (bench/run.py scenario streams): N concurrent SSE streams from
// bench/streams/sse_server.go, read through libesp's Node binding (esp: client.stream) or undici
// (undici.request with a line splitter: what a Node gateway uses today), measuring events/s
// reaching user code, CPU per event, RSS per live stream and server-write-to-user delay.
//
// Usage: node nodeclient.mjs esp|undici <url with ?n=&ms=> <streams>   (ESP_ROOT: the libesp tree)
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = process.env.ESP_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const nodeBinding = path.join(root, 'bindings/node');
const [mode, raw, count] = process.argv.slice(2);
const n = Number(count);
if (!['esp', 'undici'].includes(mode) || !raw || !(n > 0)) {
  console.error('usage: nodeclient.mjs esp|undici <url> <streams>');
  process.exit(2);
}

const delays = [];
let events = 0, live = 0, failed = 0;

/** One event delivered to user code: every 8th one's delay from the server's stamp. */
function seen(data) {
  events++;
  if ((events & 7) !== 0) return;
  const i = data.indexOf('"t":');
  if (i >= 0) delays.push((performance.timeOrigin + performance.now()) * 1000 - Number.parseInt(data.slice(i + 4), 10) / 1000);
}

async function viaESP(client, requestPath) {
  const stream = client.stream({ path: requestPath });
  await stream.response;
  live++;
  try {
    for await (const event of stream) seen(event.data);
  } finally {
    live--;
  }
}

async function viaUndici(request, dispatcher, url) {
  const { statusCode, body } = await request(url, { dispatcher });
  if (statusCode !== 200) throw new Error(`status ${statusCode}`);
  live++;
  try {
    body.setEncoding('utf8');
    let rest = '';
    for await (const chunk of body) {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) if (line.startsWith('data: ')) seen(line.slice(6));
    }
  } finally {
    live--;
  }
}

let run;
if (mode === 'esp') {
  const { getClient } = await import(pathToFileURL(path.join(nodeBinding, 'lib/index.mjs')).href);
  const u = new URL(raw);
  const client = getClient({ provider: 'generic', base_url: u.origin, max_connections: n, timeout_ms: 600000 });
  run = () => viaESP(client, u.pathname + u.search);
} else {
  const undici = await import(pathToFileURL(path.join(nodeBinding, 'node_modules/undici/index.js')).href);
  const dispatcher = new undici.Agent({ connections: n, bodyTimeout: 600000, headersTimeout: 600000 });
  run = () => viaUndici(undici.request, dispatcher, raw);
}

const rss0 = process.memoryUsage.rss(), cpu0 = process.cpuUsage(), t0 = performance.now();
let peakLive = 0, rssLive = rss0;
const sampler = setInterval(() => {
  // RSS at the most streams open at once (on a saturated machine the first streams may end
  // before the last ones start).
  if (live > peakLive) { peakLive = live; rssLive = process.memoryUsage.rss(); }
}, 100);
await Promise.all(Array.from({ length: n }, () => run().catch((err) => {
  failed++;
  console.error('stream failed:', err.message);
})));
clearInterval(sampler);
const secs = (performance.now() - t0) / 1000, cpu = process.cpuUsage(cpu0);
delays.sort((a, b) => a - b);
const pct = (p) => (delays.length ? delays[Math.min(delays.length - 1, Math.floor(p * delays.length))] / 1000 : -1);
console.log('RESULT ' + JSON.stringify({
  mode, streams: n, events, failed, secs, events_per_s: events / secs,
  cpu_us_per_event: (cpu.user + cpu.system) / Math.max(events, 1), peak_live: peakLive,
  rss_per_stream_kb: peakLive ? (rssLive - rss0) / 1024 / peakLive : -1,
  delay_p50_ms: pct(0.5), delay_p99_ms: pct(0.99),
}));
process.exit(failed ? 1 : 0);
