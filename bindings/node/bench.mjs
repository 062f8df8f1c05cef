// libesp vs undici and Node's built-in fetch against a loopback server (the
// project's mock server, GET /v1/models), sequential and at concurrency 64.
// Prints requests per second and libesp's ratio to each. Not part of `make test`:
//   make -C bindings/node bench        (BENCH_REQUESTS=N, BENCH_ROUNDS=N to change the counts)
import { Agent, request as undiciRequest } from 'undici';
import { getClient } from './lib/index.mjs';
import { startMock } from './test/mock.mjs';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
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
};

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

/** Keeps the faster of two measurements. */
const faster = (a, b) => (b.perSecond > a.perSecond ? b : a);

// Rounds alternate the contenders and each keeps its best rate, so a burst of
// noise on a small shared machine does not decide a ratio.
const results = {};
for (const [name, fn] of Object.entries(contenders)) {
  await rate(fn, 500, CONCURRENCY); // warm up connections and JIT
  results[name] = { sequential: { perSecond: 0 }, concurrent: { perSecond: 0 } };
}
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of Object.entries(contenders)) {
    const best = results[name];
    best.sequential = faster(best.sequential, await rate(fn, REQUESTS, 1));
    best.concurrent = faster(best.concurrent, await rate(fn, REQUESTS, CONCURRENCY));
  }
}

console.log(`best of ${ROUNDS} rounds of ${REQUESTS} requests, GET /v1/models on loopback (compare ratios, not absolutes)\n`);
const columns = ['seq req/s', 'seq cpu us', `c=${CONCURRENCY} req/s`, `c=${CONCURRENCY} cpu us`];
console.log('contender'.padEnd(20), ...columns.map((c) => c.padStart(13)));
for (const [name, { sequential: s, concurrent: c }] of Object.entries(results)) {
  const cells = [s.perSecond, s.cpuMicros, c.perSecond, c.cpuMicros].map((n) => n.toFixed(0).padStart(13));
  console.log(name.padEnd(20), ...cells);
}
console.log('\nratios: libesp request() throughput / other (> 1: libesp faster); CPU per request other / libesp (> 1: libesp cheaper)');
const ours = results['libesp request()'];
const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
for (const [name, r] of Object.entries(results)) {
  if (r === ours) continue;
  console.log(
    `  vs ${name.padEnd(18)}`,
    `sequential ${ratio(ours.sequential.perSecond, r.sequential.perSecond)} (cpu ${ratio(r.sequential.cpuMicros, ours.sequential.cpuMicros)})`,
    `  c=${CONCURRENCY} ${ratio(ours.concurrent.perSecond, r.concurrent.perSecond)} (cpu ${ratio(r.concurrent.cpuMicros, ours.concurrent.cpuMicros)})`,
  );
}

client.close();
await dispatcher.close();
mock.stop();
