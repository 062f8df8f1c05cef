"""The per-row pattern in each framework, as its users write it: a new agent
or model object for every row, sync and async, nothing closed by hand.

    python scenarios.py FRAMEWORK MODE --base-url URL [--rows N] [--concurrency N] [--batches N] [--esp]

runs it and prints one JSON line (rows ok, failures, time, descriptors,
memory, ResourceWarnings, "Event loop is closed" errors). --esp adds the
one line of the recipe, esp.install(http2=True), before anything else; the
code below never mentions libesp. The async mode runs its rows in --batches
asyncio.run() calls, as scripts and notebooks do.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

PROMPT = "hello row"
API_KEY = "sk-frameworks"


def _openai(base_url: str) -> tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]:
    import openai

    chat = {"model": "gpt-mock", "messages": [{"role": "user", "content": PROMPT}]}

    def row() -> Any:
        return openai.OpenAI(base_url=base_url, api_key=API_KEY).chat.completions.create(**chat)

    async def arow() -> Any:
        return await openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY).chat.completions.create(**chat)

    return row, arow


def _anthropic(base_url: str) -> tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]:
    import anthropic

    root = base_url.removesuffix("/v1")
    message = {"model": "claude-mock", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}

    def row() -> Any:
        return anthropic.Anthropic(base_url=root, api_key=API_KEY).messages.create(**message)

    async def arow() -> Any:
        return await anthropic.AsyncAnthropic(base_url=root, api_key=API_KEY).messages.create(**message)

    return row, arow


def _langchain(base_url: str) -> tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]:
    from langchain_openai import ChatOpenAI

    def model() -> Any:
        return ChatOpenAI(model="gpt-mock", base_url=base_url, api_key=API_KEY)

    return (lambda: model().invoke(PROMPT)), (lambda: model().ainvoke(PROMPT))


def _llamaindex(base_url: str) -> tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]:
    from llama_index.llms.openai import OpenAI

    def model() -> Any:
        return OpenAI(model="gpt-4o-mini", api_base=base_url, api_key=API_KEY)

    return (lambda: model().complete(PROMPT)), (lambda: model().acomplete(PROMPT))


def _esperanto(base_url: str) -> tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]:
    from esperanto.factory import AIFactory

    messages = [{"role": "user", "content": PROMPT}]

    def model() -> Any:
        return AIFactory.create_language("openai", "gpt-mock", config={"base_url": base_url, "api_key": API_KEY})

    return (lambda: model().chat_complete(messages)), (lambda: model().achat_complete(messages))


def _offline_tiktoken() -> None:
    """Langroid counts tokens with tiktoken, which downloads its BPE tables
    on first use; this machine has no internet. A byte-level encoding built
    locally stands in (token counts do not matter to connections)."""
    import tiktoken

    encoding = tiktoken.Encoding(
        name="bytes", pat_str=r"\S+|\s+", mergeable_ranks={bytes([i]): i for i in range(256)}, special_tokens={}
    )
    tiktoken.get_encoding = lambda name: encoding
    tiktoken.encoding_for_model = lambda model: encoding


def _langroid(base_url: str) -> tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]:
    _offline_tiktoken()
    import langroid.language_models as lm

    def model() -> Any:
        # Langroid streams by default; its response cache is off so every
        # row reaches the server.
        config = lm.OpenAIGPTConfig(chat_model="gpt-4o-mini", api_base=base_url, api_key=API_KEY, cache_config=None)
        return lm.OpenAIGPT(config)

    return (lambda: model().chat(PROMPT, max_tokens=32)), (lambda: model().achat(PROMPT, max_tokens=32))


FRAMEWORKS = {
    "openai": _openai,
    "anthropic": _anthropic,
    "langchain": _langchain,
    "llamaindex": _llamaindex,
    "esperanto": _esperanto,
    "langroid": _langroid,
}


def open_fds() -> int:
    """Descriptors open now; 0 when none is left to list them with (the
    failures then say "Too many open files")."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _LoopClosedLog(logging.Handler):
    """Counts 'Event loop is closed' reported through logging (asyncio's
    'Task exception was never retrieved', frameworks' own handlers)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        if "Event loop is closed" in text:
            self.count += 1


def run(framework: str, mode: str, base_url: str, rows: int, concurrency: int, batches: int) -> dict[str, Any]:
    row, arow = FRAMEWORKS[framework](base_url)
    failures: dict[str, int] = {}
    ok = 0
    peak_fds = open_fds()

    def fail(exc: BaseException) -> None:
        cause = exc.__cause__ or exc.__context__
        text = f"{type(exc).__name__}: {exc}" + (f" <- {cause!r}" if cause else "")
        failures[text[:200]] = failures.get(text[:200], 0) + 1

    async def batch(count: int) -> None:
        nonlocal ok, peak_fds
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            nonlocal ok, peak_fds
            async with gate:
                try:
                    await arow()
                    ok += 1
                except Exception as exc:  # every failure is counted, by kind
                    fail(exc)
                peak_fds = max(peak_fds, open_fds())

        await asyncio.gather(*(one() for _ in range(count)))

    loop_closed = _LoopClosedLog()
    logging.getLogger().addHandler(loop_closed)
    fds_before, rss_before = open_fds(), rss_mib()
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        if mode == "sync":
            for _ in range(rows):
                try:
                    row()
                    ok += 1
                except Exception as exc:
                    fail(exc)
                peak_fds = max(peak_fds, open_fds())
        else:
            for index in range(batches):
                asyncio.run(batch(rows // batches + (1 if index < rows % batches else 0)))
        seconds = time.monotonic() - started
        gc.collect()
    return {
        "framework": framework,
        "mode": mode,
        "rows": rows,
        "ok": ok,
        "failures": failures,
        "seconds": round(seconds, 3),
        "fds_before": fds_before,
        "fds_peak": peak_fds,
        "fds_after": open_fds(),
        "rss_growth_mib": round(rss_mib() - rss_before, 1),
        "resource_warnings": sum(1 for w in caught if issubclass(w.category, ResourceWarning)),
        "event_loop_closed": loop_closed.count
        + sum(n for text, n in failures.items() if "Event loop is closed" in text),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=sorted(FRAMEWORKS))
    parser.add_argument("mode", choices=("sync", "async"))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--esp", action="store_true", help="esp.install(http2=True) first")
    args = parser.parse_args()
    if args.esp:
        import esp

        esp.install(http2=True)
    report = run(args.framework, args.mode, args.base_url, args.rows, args.concurrency, args.batches)
    report["on_libesp"] = args.esp
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
