"""A program that knows nothing of libesp: the per-row pattern, a new openai
client for every row, as batch jobs and agent frameworks write it. Prints
one JSON line of what it saw (rows, failures, time, descriptors, memory,
ResourceWarnings). Used by the tests and by `make demo` to compare

    python per_row.py --base-url URL ...              (httpx's own pools)
    python -m esp.run per_row.py --base-url URL ...   (libesp, unchanged code)

A private CA is given the usual way, SSL_CERT_FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import warnings

import openai

CHAT = {"model": "gpt-mock", "messages": [{"role": "user", "content": "hello row"}]}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.failures: dict[str, int] = {}
        self.peak_fds = open_fds()

    def fail(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if exc.__cause__ is not None:
            text += f" <- {type(exc.__cause__).__name__}: {exc.__cause__}"
        self.failures[text[:160]] = self.failures.get(text[:160], 0) + 1

    def sample(self) -> None:
        self.peak_fds = max(self.peak_fds, open_fds())


def run_sync(base_url: str, rows: int, tally: Tally) -> None:
    for _ in range(rows):
        client = openai.OpenAI(base_url=base_url, api_key="sk-row", max_retries=0)
        try:
            client.chat.completions.create(**CHAT)
            tally.ok += 1
        except openai.OpenAIError as exc:
            tally.fail(exc)
        tally.sample()


async def run_async(base_url: str, rows: int, concurrency: int, tally: Tally) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def row() -> None:
        async with gate:
            client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-row", max_retries=0)
            try:
                await client.chat.completions.create(**CHAT)
                tally.ok += 1
            except openai.OpenAIError as exc:
                tally.fail(exc)
            tally.sample()

    await asyncio.gather(*(row() for _ in range(rows)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--mode", choices=("sync", "async"), default="sync")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    tally = Tally()
    fds_before, rss_before = open_fds(), rss_mib()
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        if args.mode == "sync":
            run_sync(args.base_url, args.rows, tally)
        else:
            asyncio.run(run_async(args.base_url, args.rows, args.concurrency, tally))
        seconds = time.monotonic() - started
        gc.collect()
    report = {
        "mode": args.mode,
        "rows": args.rows,
        "ok": tally.ok,
        "failures": tally.failures,
        "seconds": round(seconds, 3),
        "fds_before": fds_before,
        "fds_peak": tally.peak_fds,
        "rss_growth_mib": round(rss_mib() - rss_before, 1),
        "resource_warnings": sum(1 for w in caught if issubclass(w.category, ResourceWarning)),
        "on_libesp": "esp" in sys.modules and sys.modules["esp"].installed(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
