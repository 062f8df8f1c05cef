"""libesp vs the usual Python HTTP clients, against a loopback server.

    make bench        (installs httpx, httpx2 and aiohttp into .venv, then runs this)

The server is a minimal Node HTTP/1.1 server answering every POST with a
small chat-completion JSON, so that the clients, not the server, are what is
measured (the mock server of the tests does much more per request).

Sequential: one request at a time from one thread (per-request overhead).
Concurrent: 64 requests in flight on one asyncio loop (throughput).
Each client runs ROUNDS times, interleaved with the others, and its best
round counts, which damps the noise of a shared machine. Each row prints
requests per second and libesp's ratio to the other client (> 1.0: libesp
is faster). Client and server share the machine's cores: compare ratios,
not absolute numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import httpx2

import esp

SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "2000"))
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT", "3200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
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


def rate_sync(fn: Callable[[], object], count: int) -> float:
    for _ in range(min(100, count)):
        fn()
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - start)


async def rate_async(fn: Callable[[], Awaitable[object]], count: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await fn()

    await asyncio.gather(*(worker(4) for _ in range(IN_FLIGHT)))  # warm up every connection
    per_worker = count // IN_FLIGHT
    start = time.perf_counter()
    await asyncio.gather(*(worker(per_worker) for _ in range(IN_FLIGHT)))
    return per_worker * IN_FLIGHT / (time.perf_counter() - start)


def report(title: str, best: dict[str, float]) -> None:
    esp_rate = best.pop("libesp")
    print(f"{title}: libesp {esp_rate:,.0f} req/s")
    for name, rate in best.items():
        print(f"  vs {name:<28} {rate:>9,.0f} req/s   ratio {esp_rate / rate:.2f}")


def bench_sequential(base_url: str, client: esp.Client) -> None:
    url = base_url + "/chat/completions"
    with httpx.Client() as plain, httpx2.Client() as plain2, httpx2.Client(transport=esp.HTTPTransport()) as on_esp:
        runs: dict[str, Callable[[], object]] = {
            "libesp": lambda: client.request("chat/completions", json=CHAT),
            "httpx.Client": lambda: plain.post(url, json=CHAT),
            "httpx2.Client": lambda: plain2.post(url, json=CHAT),
            "httpx2 on esp.HTTPTransport": lambda: on_esp.post(url, json=CHAT),
        }
        best: dict[str, float] = {name: 0.0 for name in runs}
        for _ in range(ROUNDS):
            for name, fn in runs.items():
                best[name] = max(best[name], rate_sync(fn, SEQUENTIAL))
    report(f"sequential POST x{SEQUENTIAL}", best)


async def bench_concurrent(base_url: str, client: esp.Client) -> None:
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

        runs: dict[str, Callable[[], Awaitable[object]]] = {
            "libesp": lambda: client.arequest("chat/completions", json=CHAT),
            "httpx.AsyncClient": lambda: plain.post(url, json=CHAT),
            "httpx2.AsyncClient": lambda: plain2.post(url, json=CHAT),
            "aiohttp": aiohttp_post,
            "httpx2 on AsyncHTTPTransport": lambda: on_esp.post(url, json=CHAT),
        }
        best: dict[str, float] = {name: 0.0 for name in runs}
        for _ in range(ROUNDS):
            for name, fn in runs.items():
                best[name] = max(best[name], await rate_async(fn, CONCURRENT))
    report(f"concurrency {IN_FLIGHT}, POST x{CONCURRENT}", best)


def main() -> None:
    server, base_url = start_server()
    try:
        print("libesp", esp.version().split(" ")[0], "via", esp.backend_name(), f"; best of {ROUNDS} rounds")
        with esp.Client(base_url=base_url, api_key="sk-bench", max_connections=IN_FLIGHT) as client:
            bench_sequential(base_url, client)
            asyncio.run(bench_concurrent(base_url, client))
    finally:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.close()
        server.wait(timeout=10)
        server.stdout.close()


if __name__ == "__main__":
    main()
