// libesp vs undici and Node's built-in fetch against a loopback server (the
// project's mock server, GET /v1/models), sequential and at concurrency 64.
// Prints requests per second and libesp's ratio to each: the median of the
// ratios of interleaved rounds. The last line is `RESULT <json>` for
// bench/run.py. Not part of `make test`:
//   make -C bindings/node bench        (BENCH_REQUESTS=N, BENCH_ROUNDS=N to change the counts)
import { Agent, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { getClient } from './lib/index.mjs';
import { startMock } from './test/mock.mjs';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONCURRENCY = 64;

const mock = await startMock();
const url = `${mock.baseURL}/models`;
const client = getClient(mock.config({ max_connections: CONCURRENCY }));
const dispatcher = new Agent({ connections: CONCURRENCY });

/** Each contender reads the whole body, as a caller would. */
const contenders = {
  'libesp request()': async () => (await client.request({ path: '/models' })).body.length,
  'libesp fetch()': async () => (await (await client.fetch(url)).arrayBuffer()).byteLength,
  'undici request()': async () => (await (await undiciRequest(url, { dispatcher })).body.arrayBuffer()).byteLength,
  'built-in fetch()': async () => (await (await fetch(url)).arrayBuffer()).byteLength,
  'undici fetch()': async () => (await (await undiciFetch(url, { dispatcher })).arrayBuffer()).byteLength,
};
/** Each libesp contender and the clients it is measured against (goal: >= 1.0x each). */
const pairs = [
  ['libesp request()', 'undici request()'],
  ['libesp fetch()', 'built-in fetch()'],
  ['libesp fetch()', 'undici fetch()'],
];

/**
 * Requests per second of `count` calls of `fn`, `concurrency` at a time, and
 * this process's CPU time per request (every thread: libesp's I/O thread too).
 */
async function rate(fn, count, concurrency) {
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      await fn();
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: count / ((performance.now() - t0) / 1000), cpuMicros: (cpu.user + cpu.system) / count };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// Rounds are interleaved: each runs every contender once at each concurrency
// (the order rotating from round to round), so a burst of load from elsewhere
// on a small shared machine hits every contender of a round alike; a ratio is
// taken within a round, then the median over rounds.
const names = Object.keys(contenders);
const runs = Object.fromEntries(names.map((name) => [name, { sequential: [], concurrent: [] }]));
for (const fn of Object.values(contenders)) await rate(fn, 500, CONCURRENCY); // warm up connections and JIT
for (let round = 0; round < ROUNDS; round++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(k + round) % names.length];
    runs[name].sequential.push(await rate(contenders[name], REQUESTS, 1));
    runs[name].concurrent.push(await rate(contenders[name], REQUESTS, CONCURRENCY));
  }
}

console.log(`median of ${ROUNDS} interleaved rounds of ${REQUESTS} requests, GET /v1/models on loopback (compare ratios, not absolutes)\n`);
const columns = ['seq req/s', 'seq cpu us', `c=${CONCURRENCY} req/s`, `c=${CONCURRENCY} cpu us`];
console.log('contender'.padEnd(20), ...columns.map((c) => c.padStart(13)));
for (const [name, { sequential: s, concurrent: c }] of Object.entries(runs)) {
  const cells = [s.map((r) => r.perSecond), s.map((r) => r.cpuMicros), c.map((r) => r.perSecond), c.map((r) => r.cpuMicros)]
    .map((xs) => median(xs).toFixed(0).padStart(13));
  console.log(name.padEnd(20), ...cells);
}
console.log('\nratios: libesp throughput / other (> 1: libesp faster), median of the rounds; CPU per request other / libesp (> 1: libesp cheaper)');
const rows = [];
for (const [ours, other] of pairs) {
  const line = [`  ${ours} vs ${other}`.padEnd(42)];
  for (const [mode, label] of [['sequential', 'sequential'], ['concurrent', `${CONCURRENCY} in flight`]]) {
    const ratios = runs[ours][mode].map((r, i) => r.perSecond / runs[other][mode][i].perSecond);
    const row = {
      scenario: `${ours} vs ${other}, ${label}`, peer: other, ratio: median(ratios), ratios,
      esp_rps: median(runs[ours][mode].map((r) => r.perSecond)), peer_rps: median(runs[other][mode].map((r) => r.perSecond)),
      esp_cpu_us: median(runs[ours][mode].map((r) => r.cpuMicros)), peer_cpu_us: median(runs[other][mode].map((r) => r.cpuMicros)),
    };
    rows.push(row);
    line.push(`${label} ${row.ratio.toFixed(2)}x (${ratios.map((r) => r.toFixed(2)).join(' ')}; cpu ${(row.peer_cpu_us / row.esp_cpu_us).toFixed(2)}x)`);
  }
  console.log(...line);
}
console.log('RESULT ' + JSON.stringify({ peer: 'undici', rows }));

client.close();
await dispatcher.close();
mock.stop();
