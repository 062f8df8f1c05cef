#!/usr/bin/env python3
"""The fleet scenario of `make bench SCEN=fleet`: 4 processes x 100 agents
(build/fleet_worker) share one API key against the mock server's
rate-limited mode (test/mock/server.js --rpm), in four set-ups:

  shared       rate_limit + shared_state: one limit for the fleet, in Redis
  retries      no limiter: libesp's retries (honouring retry-after) alone
  per-process  each process limits itself to the whole limit
  quarter      each process limits itself to a quarter of the limit

Reported per set-up (medians over the repetitions): completed requests per
minute as a share of the limit, the share of the server's answers that were
429, the 429s it sent, p50/p99 latency of completed requests, retries, and
requests that failed (429 returned after the retries, ESP_ERATELIMITED).
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

PROCESSES, AGENTS = 4, 100
RPM = 6000                # 100 requests a second for the key
WINDOW_MS = 5000          # the server's bucket holds 5 s worth (see the notes)
SECONDS = 10
STEADY_FROM = 4           # seconds into a run: the steady rate is measured after it
SETUPS = ["shared", "retries", "per-process", "quarter"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_redis():
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--logfile", "/dev/null"])
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return p, port
        except OSError:
            time.sleep(0.01)
    p.kill()
    raise SystemExit("bench fleet: redis-server did not start")


def start_mock(root):
    p = subprocess.Popen(["node", os.path.join(root, "test/mock/server.js"), "--rpm", str(RPM),
                          "--rl-window-ms", str(WINDOW_MS), "--rl-headers", "none"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    info = json.loads(p.stdout.readline())
    return p, info["http_url"]


def control(base, path, body=None):
    import urllib.request
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def config(setup, base, redis_port, run_id):
    c = {"base_url": base + "/v1", "api_key": "sk-bench-fleet", "max_connections": 128}
    if setup == "shared":
        c["rate_limit"] = {"requests_per_minute": RPM}
        c["shared_state"] = {"redis": f"redis://127.0.0.1:{redis_port}/0", "namespace": f"bench-{run_id}"}
    elif setup == "per-process":
        c["rate_limit"] = {"requests_per_minute": RPM}
    elif setup == "quarter":
        c["rate_limit"] = {"requests_per_minute": RPM // PROCESSES}
    return json.dumps(c)


def run_once(root, setup, base, redis_port, run_id):
    control(base, "/_mock/rate-limit", {})   # every key afresh, counts zeroed
    worker = os.path.join(root, "build/fleet_worker")
    cfg = config(setup, base, redis_port, run_id)
    procs = [subprocess.Popen([worker, cfg, str(SECONDS * 1000), str(AGENTS)], stdout=subprocess.PIPE, text=True)
             for _ in range(PROCESSES)]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=SECONDS + 120)
        if p.returncode != 0:
            return {"error": f"fleet_worker exit {p.returncode}"}
        outs.append(json.loads(out))
    rl = control(base, "/_mock/rate-limit")
    key = next(iter(rl["keys"].values()), {"requests": 0, "first_ms": 0, "last_ms": 0})
    window = max(1e-3, (key["last_ms"] - key["first_ms"]) / 1000)
    # Past the first bursts: the whole seconds from STEADY_FROM to the last full one.
    per_second = key.get("admitted_per_second", [])[STEADY_FROM:-1]
    steady = 60 * sum(per_second) / max(1, len(per_second))
    ok = sum(o["ok"] for o in outs)
    sent_429 = rl["sent_429"]
    failed = sum(o["http_429"] + o["http_other"] + sum(o["failures"].values()) for o in outs)
    return {
        "ok": ok,
        # The server admits at most its bucket plus the refill over the window.
        "share_of_limit": key["requests"] / (RPM / 60 * window + RPM / 60 * WINDOW_MS / 1000),
        "per_minute": key["requests"] / window * 60,
        "steady_share": steady / RPM,
        "server_429": sent_429,
        "pct_429": 100 * sent_429 / max(1, sent_429 + key["requests"]),
        "p50_ms": statistics.median(o["p50_ms"] for o in outs),
        "p99_ms": max(o["p99_ms"] for o in outs),
        "retries": sum(o["retries"] for o in outs),
        "failed": failed,
    }


def run(root, reps, log=print):
    redis, redis_port = start_redis()
    mock, base = start_mock(root)
    results = {s: [] for s in SETUPS}
    try:
        for rep in range(reps):
            for s in SETUPS:
                log(f"bench fleet: {s} ({rep + 1}/{reps})")
                results[s].append(run_once(root, s, base, redis_port, f"{os.getpid()}-{rep}"))
    finally:
        mock.stdin.close()
        mock.terminate()
        redis.kill()
        mock.wait()
        redis.wait()

    def med(s, k):
        vals = [r[k] for r in results[s] if "error" not in r]
        return statistics.median(vals) if vals else None

    def f(v, fmt):
        return "-" if v is None else fmt.format(v)

    rows = []
    for s in SETUPS:
        rows.append([s, f(med(s, "steady_share"), "{:.1%}"), f(med(s, "per_minute"), "{:.0f}"),
                     f(med(s, "share_of_limit"), "{:.1%}"),
                     f(med(s, "pct_429"), "{:.2f} %"), f(med(s, "server_429"), "{:.0f}"), f(med(s, "p50_ms"), "{:.0f}"),
                     f(med(s, "p99_ms"), "{:.0f}"), f(med(s, "retries"), "{:.0f}"), f(med(s, "failed"), "{:.0f}")])
    header = ["set-up", "steady rate / limit", "completed/min", "admitted / server capacity", "answers 429", "server 429s", "p50 ms", "p99 ms",
              "retries", "failed"]
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                      ["| " + " | ".join(r) + " |" for r in rows])
    notes = [f"{PROCESSES} fleet_worker processes x {AGENTS} agents, one API key, {SECONDS} s per run, limit {RPM} "
             f"requests/minute enforced by the mock server per key with a bucket of {WINDOW_MS / 1000:.0f} s "
             "(providers enforce a minute's limit over shorter periods too). "
             f"`steady rate / limit`: requests the server admitted per minute from {STEADY_FROM} s into the run to "
             "its end, over the limit; `completed/min`: over the whole run, first bursts included; "
             "`admitted / server capacity`: over the server's bucket plus its refill during the run (libesp bursts "
             "one second's worth, not the server's five); `answers 429`: the share of the server's answers that "
             "were 429. libesp's default max_retries (2) everywhere; `failed`: requests that still ended in a 429 "
             "or an error. Medians of the repetitions; p99 is the worst process's. With a closed loop of 400 agents "
             "and 100 requests a second, a request waits about 4 s for its turn (Little's law): the limiter queues "
             "where the retries-only fleet spins."]
    errors = [r["error"] for s in SETUPS for r in results[s] if "error" in r]
    return {"table": table, "notes": notes, "data": results, "errors": errors}


if __name__ == "__main__":
    r = run(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "."), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    print(r["table"])
    for n in r["notes"]:
        print("\n" + n)
