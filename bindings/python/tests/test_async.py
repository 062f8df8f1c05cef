"""esp.Client from asyncio: any loop, many loops, threads, cancellation,
backpressure."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading

import pytest

import esp

CHAT = {"model": "gpt-mock", "messages": [{"role": "user", "content": "hi there"}]}


async def test_arequest_returns_the_response(client):
    reply = await client.arequest("chat/completions", json=CHAT)
    assert reply.status == 200
    assert reply.json()["choices"][0]["message"]["content"] == "echo: hi there"


async def test_arequest_http_error_is_a_response(client):
    reply = await client.arequest("chat/completions", json=CHAT, headers={"x-mock-status": "503"})
    assert reply.status == 503


async def test_arequest_failure_raises_the_mapped_error(client):
    with pytest.raises(esp.TimeoutError):
        await client.arequest("chat/completions", json=CHAT, headers={"x-mock-hang": "1"}, timeout=0.3)


async def test_64_concurrent_requests_on_one_loop(client):
    replies = await asyncio.gather(
        *(
            client.arequest("chat/completions", json={**CHAT, "messages": [{"role": "user", "content": str(i)}]})
            for i in range(64)
        )
    )
    contents = [r.json()["choices"][0]["message"]["content"] for r in replies]
    assert contents == [f"echo: {i}" for i in range(64)]


def _os_thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
async def test_no_thread_per_request(client):
    await client.arequest("models")  # libesp's I/O thread exists from here on
    before = _os_thread_count()
    replies = await asyncio.gather(*(client.arequest("models", headers={"x-mock-delay-ms": "200"}) for _ in range(64)))
    assert [r.status for r in replies] == [200] * 64
    assert _os_thread_count() <= before + 1


async def test_astream_yields_sse_events(client):
    async with client.astream(
        "chat/completions", json={**CHAT, "stream": True}, headers={"x-mock-events": "7"}
    ) as stream:
        assert stream.status == 200
        events = [event async for event in stream]
    assert events[-1].data == "[DONE]"
    assert len(events) == 1 + 7 + 1 + 1  # role chunk, 7 tokens, finish chunk, [DONE]


async def test_astream_without_async_with(client):
    events = [e async for e in client.astream("chat/completions", json={**CHAT, "stream": True})]
    assert events[-1].data == "[DONE]"


async def test_astream_holds_its_client_until_sent(config):
    # The Client is garbage before the request is sent; the stream's lease
    # must still be good when iteration sends it.
    stream = esp.Client(config).astream("chat/completions", json={**CHAT, "stream": True})
    gc.collect()
    events = [event async for event in stream]
    assert events[-1].data == "[DONE]"


async def test_astream_failure_mid_body_raises(client):
    with pytest.raises(esp.EspError):
        async with client.astream(
            "chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-mock-events": "50", "x-mock-chunk-delay-ms": "2", "x-mock-drop": "mid-body"},
        ) as stream:
            async for _ in stream:
                pass


async def test_raw_astream_with_slow_consumer_pauses_and_gets_every_byte(client, mock):
    # 8 MiB against libesp's 1 MiB stream_buffer_bytes: while the consumer
    # dawdles libesp must hold the transfer paused (its stats say so), resume
    # once drained, and still deliver everything.
    size = 8 << 20
    received = 0
    async with client.astream(mock.url("/echo"), headers={"x-mock-body-bytes": str(size)}, raw=True) as stream:
        async for chunk in stream:
            assert set(chunk) == {ord("x")}
            if received == 0:
                await asyncio.sleep(0.5)  # long enough for well over 1 MiB to arrive
                held = client.stats()["client"]
                assert held["streams_paused"] == 1
                # Paused at 1 MiB buffered; this chunk may have been taken
                # from it after the pause (a slow start of the loop).
                assert (1 << 20) - len(chunk) <= held["stream_buffered_bytes"] < (2 << 20)
            received += len(chunk)
    assert received == size
    assert client.stats()["client"]["streams_paused"] == 0


async def test_astream_of_a_non_sse_body_yields_raw_chunks(client):
    # A JSON 2xx body on an event stream: raw bytes as they come, the same in
    # every binding (libesp decides, not Python).
    chunks = [item async for item in client.astream("chat/completions", json=CHAT)]
    assert chunks and all(isinstance(chunk, bytes) for chunk in chunks)
    assert json.loads(b"".join(chunks))["object"] == "chat.completion"


async def test_cancelling_the_awaiting_task_cancels_the_call(client):
    task = asyncio.ensure_future(client.arequest("chat/completions", json=CHAT, headers={"x-mock-hang": "1"}))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await client.arequest("models")).status == 200


async def test_wait_for_timeout_on_arequest(client):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.arequest("chat/completions", json=CHAT, headers={"x-mock-hang": "1"}), 0.2)


def test_one_client_across_event_loops_and_threads(config):
    """The failure this prevents: a cached async client used from a second
    asyncio.run() raises "Event loop is closed"."""
    client = esp.Client(config)

    async def chat(content: str) -> str:
        messages = [{"role": "user", "content": content}]
        reply = await client.arequest("chat/completions", json={**CHAT, "messages": messages})
        return reply.json()["choices"][0]["message"]["content"]

    assert asyncio.run(chat("first loop")) == "echo: first loop"
    assert asyncio.run(chat("second loop")) == "echo: second loop"

    results = {}

    def in_thread(n: int) -> None:
        results[n] = asyncio.run(chat(f"thread {n}"))
        results[-n - 1] = client.request("models").status

    threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert {n: results[n] for n in range(4)} == {n: f"echo: thread {n}" for n in range(4)}
    assert [results[-n - 1] for n in range(4)] == [200] * 4
    client.close()


def test_completion_for_a_closed_loop_is_dropped_quietly(config, capfd):
    client = esp.Client(config)
    loop = asyncio.new_event_loop()

    async def start_and_abandon():
        # Started, never awaited to the end: the loop closes under it.
        asyncio.ensure_future(client.arequest("chat/completions", json=CHAT, headers={"x-mock-delay-ms": "300"}))
        await asyncio.sleep(0.05)

    loop.run_until_complete(start_and_abandon())
    loop.close()
    # The completion arrives after the close; the library must not complain.
    assert asyncio.run(asyncio.sleep(0.6, result=True))
    assert client.request("models").status == 200
    client.close()
    gc.collect()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Event loop is closed" not in err


def test_each_event_loops_completion_descriptor_goes_with_the_loop(config):
    """Completions wake an asyncio loop through an eventfd of the binding's,
    one per loop: 30 loops one after another leave none of them open."""
    client = esp.Client(config)

    async def one() -> int:
        return (await client.arequest("models")).status

    assert asyncio.run(one()) == 200
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    assert [asyncio.run(one()) for _ in range(30)] == [200] * 30
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2
    client.close()


async def test_a_burst_of_completions_all_reach_the_loop(client):
    """Completions that arrive together share one wake-up of the loop; none
    is left behind in the queue (1,000 calls, 200 at a time)."""
    for _ in range(5):
        replies = await asyncio.gather(*(client.arequest("models") for _ in range(200)))
        assert [r.status for r in replies] == [200] * 200


async def test_async_with_client_and_aclose(config):
    async with esp.Client(config) as client:
        assert (await client.arequest("models")).status == 200
    assert client.closed
    other = esp.Client(config)
    await other.aclose()
    assert other.closed
