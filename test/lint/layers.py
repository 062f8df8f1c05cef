#!/usr/bin/env python3
"""The dependency direction of src/, checked from its #include lines.

A module is a basename (engine.h + engine.cpp = engine). Each module sits in
one layer of LAYERS; a module may include modules of its own layer or below,
never above, and the include graph between modules has no cycle. A new file
must be given a layer here, so the architecture is decided, not drifted into.
Usage: layers.py [src-dir]   (exit 1 and one line per violation on failure)
"""
import os
import re
import sys

# Top to bottom; the order of docs/DESIGN.md's layer diagram.
LAYERS = [
    ["capi"],
    ["calls", "streams", "stats", "lifecycle"],
    ["request"],
    ["registry", "router"],
    ["engines"],
    ["engine"],
    ["shard"],
    ["client", "origin", "sockets", "transfer", "breaker", "retry", "ratelimit", "deployments", "shared_state", "usage",
     "trust_store"],
    ["config", "config_schema", "metrics", "log", "sse", "status", "handles", "clock", "response", "url", "stream_items",
     "round"],
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"', re.M)


def module_graph(src):
    graph = {}
    for name in sorted(os.listdir(src)):
        base, ext = os.path.splitext(name)
        if ext not in (".h", ".cpp"):
            continue
        with open(os.path.join(src, name), encoding="utf-8") as f:
            deps = set(INCLUDE.findall(f.read())) - {base, "esp"}
        graph.setdefault(base, set()).update(deps)
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    graph = module_graph(src)
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    problems = []
    for module in sorted(graph):
        if module not in rank:
            problems.append(f"{module}: no layer; add it to LAYERS in {sys.argv[0]}")
            continue
        for dep in sorted(graph[module]):
            if dep in rank and rank[dep] < rank[module]:
                problems.append(f"{module} includes {dep}.h, a layer above it")
    cycle = find_cycle(graph)
    if cycle:
        problems.append("include cycle: " + " -> ".join(cycle))
    for p in problems:
        print(f"layers: {p}")
    if not problems:
        print(f"layers: {len(graph)} modules in {len(LAYERS)} layers, no cycle, no upward include")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
