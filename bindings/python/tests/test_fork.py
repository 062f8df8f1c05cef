"""fork() after the parent has made requests: the child must not reuse the
parent's connections (shared sockets, TLS state) nor wait on its I/O thread."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time

import pytest

import esp

CHAT = {"model": "gpt-mock", "messages": [{"role": "user", "content": "fork"}]}

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# Set before forking; the children of multiprocessing's fork method inherit them.
_inherited_client: esp.Client | None = None
_inherited_client_config: dict = {}


def _use_inherited_client(n: int) -> str:
    assert _inherited_client is not None
    messages = [{"role": "user", "content": str(n)}]
    sync = _inherited_client.request("chat/completions", json={**CHAT, "messages": messages})
    async_reply = asyncio.run(_inherited_client.arequest("models"))
    with esp.Client(_inherited_client_config) as fresh:
        fresh_status = fresh.request("models").status
    events = list(_inherited_client.stream("chat/completions", json={**CHAT, "stream": True}))
    assert async_reply.status == 200 and fresh_status == 200 and events[-1].data == "[DONE]"
    return sync.json()["choices"][0]["message"]["content"]


def _wait_child(pid: int, limit_s: float = 60.0) -> int:
    """The child's exit code; kills it if it is still running after limit_s."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"forked child {pid} hung for {limit_s} s")


@pytest.fixture
def inherited(config):
    global _inherited_client, _inherited_client_config
    _inherited_client_config = config
    _inherited_client = esp.Client(config)
    # Warm the pool and leave a stream half-read, so the fork happens with
    # idle and busy connections and a live I/O thread.
    assert _inherited_client.request("models").status == 200
    assert asyncio.run(_inherited_client.arequest("models")).status == 200
    half_read = _inherited_client.stream(
        "chat/completions",
        json={**CHAT, "stream": True},
        headers={"x-mock-events": "200", "x-mock-chunk-delay-ms": "5"},
    )
    next(iter(half_read))
    yield _inherited_client
    half_read.close()
    _inherited_client.close()
    _inherited_client = None


def test_os_fork_child_and_parent_both_succeed(inherited):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if _use_inherited_client(1) == "echo: 1" else 1
        finally:
            os._exit(code)
    assert _wait_child(pid) == 0
    assert _use_inherited_client(2) == "echo: 2"


def test_multiprocessing_fork_workers_and_parent_succeed(inherited):
    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        replies = pool.map_async(_use_inherited_client, range(6)).get(timeout=120)
    assert replies == [f"echo: {n}" for n in range(6)]
    assert _use_inherited_client(7) == "echo: 7"
