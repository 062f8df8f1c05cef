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
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
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
 * `count` calls of `fn`, `concurrency` at a time: the wall time they took and
 * this process's CPU time (every thread: libesp's I/O thread too).
 */
async function block(fn, count, concurrency) {
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      await fn();
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const cpu = process.cpuUsage(cpu0);
  return { ms: performance.now() - t0, cpu: cpu.user + cpu.system };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// Each round gives every contender REQUESTS requests at each concurrency, cut
// into blocks that take turns (the order rotating from block to block), so
// every contender of a round meets the same load from elsewhere on a small
// shared machine at the same moments: a burst lands on all of them, not on
// whichever ran then. A ratio is taken within a round, then the median over
// rounds; CPU per request is the client's (steadier than the wall clock).
const BLOCKS = { sequential: 10, concurrent: 4 };
const names = Object.keys(contenders);
const runs = Object.fromEntries(names.map((name) => [name, { sequential: [], concurrent: [] }]));
// Warm-up: connections, and the JIT at both concurrencies.
for (const fn of Object.values(contenders)) {
  await block(fn, 500, CONCURRENCY);
  await block(fn, 200, 1);
}
let turn = 0;
for (let round = 0; round < ROUNDS; round++) {
  for (const [mode, concurrency] of [['sequential', 1], ['concurrent', CONCURRENCY]]) {
    const blocks = BLOCKS[mode];
    const total = Object.fromEntries(names.map((name) => [name, { ms: 0, cpu: 0, count: 0 }]));
    for (let b = 0; b < blocks; b++) {
      const count = Math.floor(REQUESTS / blocks) + (b < REQUESTS % blocks ? 1 : 0);
      turn++;
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + turn) % names.length];
        const r = await block(contenders[name], count, concurrency);
        total[name].ms += r.ms;
        total[name].cpu += r.cpu;
        total[name].count += count;
      }
    }
    for (const [name, t] of Object.entries(total)) {
      runs[name][mode].push({ perSecond: t.count / (t.ms / 1000), cpuMicros: t.cpu / t.count });
    }
  }
}

console.log(`median of ${ROUNDS} rounds of ${REQUESTS} requests per contender (blocks taking turns), GET /v1/models on loopback (compare ratios, not absolutes)\n`);
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
