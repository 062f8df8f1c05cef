"""Streaming at scale, Python side (bench/run.py scenario streams): N concurrent SSE streams from
bench/streams/sse_server.go on one asyncio loop, through libesp (client.astream), aiohttp or
httpx, measuring events/s reaching user code, CPU per event, RSS per live stream and the delay
from the server writing an event to user code seeing it.

Usage: pyclient.py esp|aiohttp|httpx <url with ?n=&ms=> <streams>
"""
import asyncio
import json
import resource
import sys
import time
from urllib.parse import urlsplit

delays = []  # every 8th event's delay, in microseconds
state = {"events": 0, "live": 0, "failed": 0}


def seen(data):
    state["events"] += 1
    if state["events"] & 7:
        return
    i = data.find(b'"t":' if isinstance(data, bytes) else '"t":')
    if i >= 0:
        j = data.find(b"," if isinstance(data, bytes) else ",", i)
        delays.append((time.time_ns() - int(data[i + 4:j])) // 1000)


async def via_esp(client, path):
    async with client.astream(path) as s:
        state["live"] += 1
        try:
            async for ev in s:
                seen(ev.data)
        finally:
            state["live"] -= 1


async def via_aiohttp(session, url):
    async with session.get(url) as r:
        state["live"] += 1
        try:
            async for line in r.content:
                if line.startswith(b"data: "):
                    seen(line[6:])
        finally:
            state["live"] -= 1


async def via_httpx(client, url):
    async with client.stream("GET", url) as r:
        state["live"] += 1
        try:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    seen(line[6:])
        finally:
            state["live"] -= 1


def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(v, p):
    if not v:
        return -1
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] / 1000


async def main(mode, url, n):
    u = urlsplit(url)
    path = u.path + "?" + u.query
    if mode == "esp":
        import esp
        client = esp.Client({"provider": "generic", "base_url": f"http://{u.netloc}", "max_connections": n,
                             "max_retries": 0, "timeout_ms": 600000})
        one, close = (lambda: via_esp(client, path)), client.aclose
    elif mode == "aiohttp":
        import aiohttp
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                        timeout=aiohttp.ClientTimeout(total=None))
        one, close = (lambda: via_aiohttp(session, url)), session.close
    elif mode == "httpx":
        import httpx
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                                   timeout=None)
        one, close = (lambda: via_httpx(client, url)), client.aclose
    else:
        raise SystemExit(f"unknown mode {mode}")
    rss0, cpu0, t0 = rss_kb(), cpu_s(), time.monotonic()
    peak = {"live": 0, "rss": 0}

    async def sample():
        while True:
            await asyncio.sleep(0.1)
            # RSS at the most streams open at once (the first may end before the last start).
            if state["live"] > peak["live"]:
                peak["live"], peak["rss"] = state["live"], rss_kb()

    sampler = asyncio.create_task(sample())
    for r in await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True):
        if isinstance(r, BaseException):
            state["failed"] += 1
            print("stream failed:", repr(r), file=sys.stderr)
    secs, cpu = time.monotonic() - t0, cpu_s() - cpu0
    sampler.cancel()
    await close()
    ev = state["events"]
    print("RESULT " + json.dumps({
        "mode": mode, "streams": n, "events": ev, "failed": state["failed"], "secs": secs,
        "events_per_s": ev / secs, "cpu_us_per_event": cpu * 1e6 / max(ev, 1), "peak_live": peak["live"],
        "rss_per_stream_kb": (peak["rss"] - rss0) / peak["live"] if peak["live"] else -1,
        "delay_p50_ms": pct(delays, 0.5), "delay_p99_ms": pct(delays, 0.99)}), flush=True)
    return 1 if state["failed"] else 0


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
