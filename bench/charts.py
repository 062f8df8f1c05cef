#!/usr/bin/env python3
"""Charts of the libesp benchmarks: reads build/bench/results/*.json, writes
bench/*.png. Run by bench/run.py with the matplotlib venv under build/."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RDIR, OUT = sys.argv[1], sys.argv[2]
ESP, BASE, TOOL = "#1f77b4", "#999999", "#ff7f0e"


def load(name):
    p = os.path.join(RDIR, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None


def save(fig, name):
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, name), dpi=110)
    plt.close(fig)


def bars(ax, labels, series, ylabel, title):
    n = len(series)
    w = 0.8 / n
    for i, (name, vals, color) in enumerate(series):
        xs = [j + (i - (n - 1) / 2) * w for j in range(len(labels))]
        b = ax.bar(xs, [v or 0 for v in vals], w, label=name, color=color)
        for rect, v in zip(b, vals):
            if v:
                ax.annotate(f"{v:,.0f}", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


r = load("seq")
if r:
    d = r["data"]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars(ax, [x["name"] for x in d], [("libesp esp_request", [x["esp_rps"] for x in d], ESP),
                                       ("raw libcurl, one easy handle", [x["curl_rps"] for x in d], BASE)],
         "requests/s (median)", "1. Sequential, one keep-alive connection")
    save(fig, "seq.png")

r = load("conc")
if r:
    d = r["data"]
    fig, ax = plt.subplots(figsize=(8, 4))
    bars(ax, [x["name"].replace(", ", "\n") for x in d],
         [("libesp async", [x["esp"] for x in d], ESP), ("raw curl multi", [x["multi"] for x in d], BASE),
          ("wrk / h2load", [x["tool"] for x in d], TOOL)],
         "requests/s (median)", "2. Concurrency")
    save(fig, "conc.png")

r = load("pool")
if r:
    d = r["data"]
    fig, ax = plt.subplots(figsize=(8, 4))
    short = {"esp-shared": "esp\nshared client", "esp-lease": "esp\nget + release\nper request",
             "curl-reuse": "raw curl\none easy handle", "esp-isolated": "esp\nnew client\nper request",
             "curl-new": "raw curl\nnew handle\nper request"}
    labels = [short.get(x["mode"], x["mode"]) for x in d]
    vals = [x["rps"] or 0 for x in d]
    colors = [ESP if x["mode"].startswith("esp") else BASE for x in d]
    b = ax.bar(range(len(d)), vals, color=colors)
    for rect, x in zip(b, d):
        ax.annotate(f"{x['rps'] or 0:,.0f}/s\n{x['connections'] or 0:,.0f} conns",
                    (rect.get_x() + rect.get_width() / 2, rect.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(top=max(vals + [1]) * 3)
    ax.set_xticks(range(len(d)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("HTTPS requests/s (median, log)")
    ax.set_title("3. Pooling: shared client vs a client per request", fontsize=10)
    save(fig, "pool.png")

r = load("agents")
if r:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, color in (("esp", ESP), ("curl-new", BASE)):
        s = (r["data"].get(mode) or {}).get("series") or []
        if not s:
            continue
        end = max(p[0] for p in s) or 1
        t = [p[0] / end * 100 for p in s]  # the runs differ 30x in length: plot % of each run
        label = f"{mode} ({end:.1f} s)"
        a1.plot(t, [p[1] for p in s], label=label, color=color)
        a2.plot(t, [p[2] / 1024 for p in s], label=label, color=color)
    a1.set_xlabel("% of the run (10,000 agents)")
    a1.set_ylabel("open sockets")
    a1.set_title("4. Agents: open sockets", fontsize=10)
    a1.legend(fontsize=8)
    a2.set_xlabel("% of the run (10,000 agents)")
    a2.set_ylabel("RSS MiB")
    a2.set_title("4. Agents: RSS", fontsize=10)
    a2.legend(fontsize=8)
    save(fig, "agents.png")

r = load("h2")
if r:
    d = r["data"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    names = [x["mode"] for x in d]
    colors = [ESP if n == "esp" else BASE for n in names]
    b = a1.bar(names, [x["connections"] or 0 for x in d], color=colors)
    for rect, x in zip(b, d):
        a1.annotate(f"{x['connections'] or 0:,.0f}", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    ha="center", va="bottom", fontsize=8)
    a1.set_title("5. Connections for 256 streams", fontsize=10)
    bars(a2, names, [("first wave (cold)", [x["first"] for x in d], TOOL),
                     ("later waves", [x["warm"] for x in d], ESP)], "ms (median)", "5. Time per wave of 256")
    save(fig, "h2.png")

r = load("streams")
if r:
    d = r["data"]
    sizes = sorted({x["streams"] for x in d})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, ylabel in ((axes[0], "cpu_us_per_event", "CPU us per event (median)"),
                            (axes[1], "rss_per_stream_kb", "RSS KiB per live stream (median)")):
        labels = [f"{x['lang']}\n{x['client'].split(' ')[0]}" for x in d if x["streams"] == sizes[0]]
        series = [(f"{n:,} streams", [x[key] for x in d if x["streams"] == n], c)
                  for n, c in zip(sizes, (ESP, TOOL, BASE))]
        bars(ax, labels, series, ylabel, "9. Streaming at scale: " + ylabel.split(" (")[0])
    save(fig, "streams.png")

r = load("bindings")
rows = [x for b in (r or {}).get("data", {}).values() for x in (b or {}).get("rows", []) if x.get("goal")]
if rows:
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(rows) + 1.5))
    labels = [f"{x['binding']}: {x['scenario'] if ' vs ' in x['scenario'] else x['scenario'] + ' vs ' + x['peer']}"
              for x in rows]
    ratios = [x["ratio"] for x in rows]
    ys = range(len(rows))[::-1]
    ax.barh(list(ys), ratios, color=[ESP if v >= 1 else TOOL for v in ratios])
    for y, x in zip(ys, rows):  # every round's ratio, to show the spread behind the median
        ax.plot(x["ratios"], [y] * len(x["ratios"]), "k.", markersize=3)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("libesp / the other client, req/s (median bar, dots: each round; goal >= 1)")
    ax.set_title("7. Each binding against its ecosystem's clients", fontsize=10)
    save(fig, "bindings.png")
