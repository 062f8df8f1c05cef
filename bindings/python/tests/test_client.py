"""esp.Client from synchronous code and threads."""

from __future__ import annotations

import gc
import json
import os
import socket
import threading
import time

import pytest

import esp

CHAT = {"model": "gpt-mock", "messages": [{"role": "user", "content": "hi there"}]}


def test_chat_completion_round_trip(client):
    reply = client.request("chat/completions", json=CHAT)
    assert reply.status == 200 and reply.ok
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json()["choices"][0]["message"]["content"] == "echo: hi there"
    assert reply.attempts == 1
    assert reply.http_version == 11


def test_request_sends_method_headers_body_and_auth(client, mock):
    reply = client.request(
        mock.url("/echo?x=1"),
        method="put",
        content=b"raw \x00 bytes",
        headers={"X-Custom": "value"},
    )
    echoed = reply.json()
    assert echoed["method"] == "PUT"
    assert echoed["query"] == {"x": "1"}
    assert echoed["headers"]["x-custom"] == "value"
    assert echoed["headers"]["authorization"] == "Bearer sk-test"
    assert echoed["body"] == "raw \x00 bytes"


def test_json_body_defaults_to_post_with_content_type(client, mock):
    echoed = client.request(mock.url("/echo"), json={"a": "é"}).json()
    assert echoed["method"] == "POST"
    assert echoed["headers"]["content-type"] == "application/json"
    assert json.loads(echoed["body"]) == {"a": "é"}


def test_http_error_status_is_a_response_not_an_exception(client):
    reply = client.request("chat/completions", json=CHAT, headers={"x-mock-status": "429"})
    assert reply.status == 429 and not reply.ok
    assert "forced HTTP 429" in reply.json()["error"]["message"]


def test_libesp_retries_unless_told_not_to(mock, config):
    key = f"retry-{id(config)}"
    with esp.Client(config, max_retries=2, retry_base_ms=1, retry_max_ms=5) as client:
        reply = client.request("chat/completions", json=CHAT, headers={"x-mock-key": key, "x-mock-fail-times": "1"})
        assert reply.status == 200 and reply.attempts == 2
        once = client.request(
            "chat/completions",
            json=CHAT,
            headers={"x-mock-key": key + "-once", "x-mock-fail-times": "1"},
            retry=False,
        )
        assert once.status == 500 and once.attempts == 1


def test_bad_config_raises_config_error_naming_the_key(mock):
    with pytest.raises(esp.ConfigError, match="no_such_key") as info:
        esp.Client(base_url=mock.base_url, no_such_key=1)
    assert isinstance(info.value, ValueError)
    assert info.value.code == -2


def test_timeout_raises_esp_timeout_error_which_is_a_builtin_timeout(client):
    with pytest.raises(esp.TimeoutError) as info:
        client.request("chat/completions", json=CHAT, headers={"x-mock-hang": "1"}, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert info.value.code == -5


def test_no_rate_limit_budget_raises_rate_limited_error_naming_the_limit(config):
    # A credential of its own, one request per 10 s: the second cannot meet its timeout.
    limited = dict(config, api_key=f"sk-py-rl-{os.getpid()}-{time.monotonic_ns()}", rate_limit={"requests_per_minute": 6})
    with esp.Client(limited) as c:
        assert c.request("models").status == 200
        with pytest.raises(esp.RateLimitedError, match="requests_per_minute 6") as err:
            c.request("models", timeout=0.3)
        assert err.value.code == -17


def test_refused_connection_raises_connect_error_which_is_a_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens
    with esp.Client(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, breaker_failures=0) as client:
        with pytest.raises(esp.ConnectError) as info:
            client.request("models")
    assert isinstance(info.value, ConnectionError)
    assert info.value.message  # libesp's detail, not just the code


def wait_for_requests(mock, count: int) -> None:
    """Wait (boundedly) until the mock server has received count requests."""
    for _ in range(200):
        if mock.stats()["requests"] >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the mock server never saw {count} requests")


def test_no_free_connection_raises_pool_timeout_error(config, mock):
    with esp.Client(config, isolate=True, max_connections=1, pool_timeout_ms=200) as client:
        before = mock.stats()["requests"]
        holder = threading.Thread(
            target=lambda: client.request("models", headers={"x-mock-delay-ms": "1500"}), daemon=True
        )
        holder.start()
        wait_for_requests(mock, before + 1)  # the only connection is now busy
        with pytest.raises(esp.PoolTimeoutError) as info:
            client.request("models")
        holder.join(timeout=30)
    assert isinstance(info.value, esp.TimeoutError) and isinstance(info.value, TimeoutError)
    assert info.value.code == -6


def test_sse_stream_yields_parsed_events(client):
    with client.stream("chat/completions", json={**CHAT, "stream": True}, headers={"x-mock-events": "5"}) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = list(stream)
    assert all(isinstance(e, esp.ServerSentEvent) for e in events)
    assert events[-1].data == "[DONE]"
    chunks = [e.json() for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "tok0 tok1 tok2 tok3 tok4 "


def test_raw_stream_yields_the_bytes(client):
    stream = client.stream("chat/completions", json={**CHAT, "stream": True}, raw=True)
    body = stream.read()
    assert body.startswith(b"data: ") and body.rstrip().endswith(b"data: [DONE]")


def test_closing_a_stream_early_leaves_the_client_usable(client):
    stream = client.stream(
        "chat/completions",
        json={**CHAT, "stream": True},
        headers={"x-mock-events": "1000", "x-mock-chunk-delay-ms": "5"},
    )
    first = next(iter(stream))
    assert first.event == "message"
    stream.close()
    assert list(stream) == []
    assert client.request("models").status == 200


def test_https_with_test_ca_negotiates_http2(mock):
    with esp.Client(base_url=mock.https_base_url, ca_file=mock.ca_file, api_key="sk-test") as client:
        reply = client.request("chat/completions", json=CHAT)
    assert reply.status == 200
    assert reply.http_version == 20


def test_one_client_shared_by_threads_shares_connections(config, mock):
    errors = []
    statuses = []
    with esp.Client(config, isolate=True, max_connections=4) as client:

        def worker():
            try:
                for _ in range(10):
                    statuses.append(client.request("models").status)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        before = mock.stats()["connections"]
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        opened = mock.stats()["connections"] - before
    assert errors == []
    assert statuses == [200] * 80
    assert 1 <= opened <= 4


def test_blocking_calls_release_the_gil(client):
    # While one thread waits 2 s inside esp_request and another about as long in
    # esp_stream_next, this thread must be free to run and make requests.
    slow_done = threading.Event()
    stream_done = threading.Event()

    def slow_request():
        client.request("models", headers={"x-mock-delay-ms": "2000"})
        slow_done.set()

    def slow_stream():
        headers = {"x-mock-events": "0", "x-mock-chunk-delay-ms": "1000"}
        list(client.stream("chat/completions", json={**CHAT, "stream": True}, headers=headers))
        stream_done.set()

    threads = [threading.Thread(target=slow_request), threading.Thread(target=slow_stream)]
    for t in threads:
        t.start()
    statuses = [client.request("models").status for _ in range(10)]
    overlapped = not slow_done.is_set() and not stream_done.is_set()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200] * 10
    assert overlapped, "requests on this thread waited for the blocked threads"
    assert slow_done.is_set() and stream_done.is_set()


def test_close_releases_the_lease_and_a_closed_client_refuses_requests(config):
    client = esp.Client(config)
    client.close()
    client.close()  # a second close is a no-op
    assert client.closed
    with pytest.raises(esp.HandleError):
        client.request("models")


def test_forgotten_client_releases_its_lease_when_collected(config):
    client = esp.Client(config)
    handle = client.handle
    del client
    gc.collect()
    # The lease is gone: libesp no longer knows the handle.
    backend = esp._native.backend()
    assert backend.client_release(handle) == esp.HandleError.status_code


def test_stats_are_json(client):
    client.request("models")
    assert isinstance(client.stats(), dict)
    assert isinstance(esp.stats(), dict)
    assert "esp_" in esp.metrics_prometheus()
