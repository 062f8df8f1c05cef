"""libesp vs the usual Python HTTP clients, against a loopback server.

    make bench        (installs httpx, httpx2 and aiohttp into .venv, then runs this)

The server is a minimal Node HTTP/1.1 server answering every POST with a
small chat-completion JSON, so that the clients, not the server, are what is
measured (the mock server of the tests does much more per request).

Sequential: one request at a time from one thread (per-request overhead),
and one at a time on an asyncio loop (against aiohttp).
Concurrent: 64 requests in flight on one asyncio loop (throughput).
Rounds are interleaved: each runs every client once, the order rotating from
round to round, so a burst of load from elsewhere on a shared machine hits
the clients of a round alike. Each row prints the median requests per second,
libesp's ratio to the other client (> 1.0: libesp is faster; the median of
the per-round ratios) and the process CPU time per request of each. Client
and server share the machine's cores: compare ratios, not absolute numbers.
The last line is `RESULT <json>` for bench/run.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import httpx2

import esp

SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "2000"))
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT", "3200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
IN_FLIGHT = 64
CHAT = {"model": "gpt-mock", "messages": [{"role": "user", "content": "benchmark"}]}

SERVER_JS = r"""
const http = require('http');
const reply = JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion', created: 1700000000, model: 'gpt-mock',
  choices: [{index: 0, message: {role: 'assistant', content: 'Hello from the bench server.'},
             finish_reason: 'stop'}],
  usage: {prompt_tokens: 1, completion_tokens: 6, total_tokens: 7},
});
const server = http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, {'content-type': 'application/json', 'content-length': Buffer.byteLength(reply)});
    res.end(reply);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({port: server.address().port})));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
"""


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(["node", "-e", SERVER_JS], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None
    port = json.loads(process.stdout.readline())["port"]
    return process, f"http://127.0.0.1:{port}/v1"


Run = tuple[float, float]  # requests per second, CPU microseconds per request (every thread)


def rate_sync(fn: Callable[[], object], count: int) -> Run:
    for _ in range(min(100, count)):
        fn()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / count


async def rate_async(fn: Callable[[], Awaitable[object]], count: int, in_flight: int = IN_FLIGHT) -> Run:
    async def worker(n: int) -> None:
        for _ in range(n):
            await fn()

    await asyncio.gather(*(worker(4) for _ in range(in_flight)))  # warm up every connection
    per_worker = count // in_flight
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(per_worker) for _ in range(in_flight)))
    done = per_worker * in_flight
    return done / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / done


def rotated(names: list[str], round_: int) -> list[str]:
    k = round_ % len(names)
    return names[k:] + names[:k]


ROWS: list[dict[str, object]] = []


def report(title: str, runs: dict[str, list[Run]]) -> None:
    """Prints libesp against every other client of runs and records the rows for RESULT."""
    ours = runs.pop("libesp")
    print(f"{title}: libesp {statistics.median(r for r, _ in ours):,.0f} req/s, "
          f"{statistics.median(c for _, c in ours):.0f} us CPU/req")
    for name, theirs in runs.items():
        ratios = [a[0] / b[0] for a, b in zip(ours, theirs)]
        row = {"scenario": f"{title} vs {name}", "peer": name, "ratio": statistics.median(ratios), "ratios": ratios,
               "esp_rps": statistics.median(r for r, _ in ours), "peer_rps": statistics.median(r for r, _ in theirs),
               "esp_cpu_us": statistics.median(c for _, c in ours),
               "peer_cpu_us": statistics.median(c for _, c in theirs)}
        ROWS.append(row)
        print(f"  vs {name:<28} {row['peer_rps']:>9,.0f} req/s   ratio {row['ratio']:.2f} "
              f"({' '.join(f'{r:.2f}' for r in ratios)})   {row['peer_cpu_us']:.0f} us CPU/req")


def bench_sequential(base_url: str, client: esp.Client) -> None:
    url = base_url + "/chat/completions"
    with httpx.Client() as plain, httpx2.Client() as plain2, httpx2.Client(transport=esp.HTTPTransport()) as on_esp:
        fns: dict[str, Callable[[], object]] = {
            "libesp": lambda: client.request("chat/completions", json=CHAT),
            "httpx.Client": lambda: plain.post(url, json=CHAT),
            "httpx2.Client": lambda: plain2.post(url, json=CHAT),
            "httpx2 on esp.HTTPTransport": lambda: on_esp.post(url, json=CHAT),
        }
        runs: dict[str, list[Run]] = {name: [] for name in fns}
        for round_ in range(ROUNDS):
            for name in rotated(list(fns), round_):
                runs[name].append(rate_sync(fns[name], SEQUENTIAL))
    report("sequential POST", runs)


async def bench_async(base_url: str, client: esp.Client) -> None:
    url = base_url + "/chat/completions"
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    limits2 = httpx2.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with (
        httpx.AsyncClient(limits=limits) as plain,
        httpx2.AsyncClient(limits=limits2) as plain2,
        httpx2.AsyncClient(transport=esp.AsyncHTTPTransport(max_connections=IN_FLIGHT), limits=limits2) as on_esp,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as session,
    ):

        async def aiohttp_post() -> None:
            async with session.post(url, json=CHAT) as response:
                await response.read()

        esp_post = lambda: client.arequest("chat/completions", json=CHAT)  # noqa: E731
        runs: dict[str, list[Run]] = {"libesp": [], "aiohttp": []}
        for round_ in range(ROUNDS):
            for name in rotated(list(runs), round_):
                runs[name].append(await rate_async(esp_post if name == "libesp" else aiohttp_post, SEQUENTIAL, 1))
        report("sequential asyncio POST", runs)

        fns: dict[str, Callable[[], Awaitable[object]]] = {
            "libesp": esp_post,
            "httpx.AsyncClient": lambda: plain.post(url, json=CHAT),
            "httpx2.AsyncClient": lambda: plain2.post(url, json=CHAT),
            "aiohttp": aiohttp_post,
            "httpx2 on AsyncHTTPTransport": lambda: on_esp.post(url, json=CHAT),
        }
        runs = {name: [] for name in fns}
        for round_ in range(ROUNDS):
            for name in rotated(list(fns), round_):
                runs[name].append(await rate_async(fns[name], CONCURRENT))
    report(f"{IN_FLIGHT} in flight asyncio POST", runs)


def main() -> None:
    server, base_url = start_server()
    try:
        print("libesp", esp.version().split(" ")[0], "via", esp.backend_name(),
              f"; median of {ROUNDS} interleaved rounds; {SEQUENTIAL} sequential, {CONCURRENT} concurrent requests")
        with esp.Client(base_url=base_url, api_key="sk-bench", max_connections=IN_FLIGHT) as client:
            bench_sequential(base_url, client)
            asyncio.run(bench_async(base_url, client))
        print("RESULT " + json.dumps({"peer": "aiohttp", "rows": ROWS}))
    finally:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.close()
        server.wait(timeout=10)
        server.stdout.close()


if __name__ == "__main__":
    main()
