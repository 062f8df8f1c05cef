"""esp.HTTPTransport as httpx's own transport: httpx's arguments with httpx's
meaning, one object shared by several clients and by sync and async, the
exceptions httpx raises, trio as well as asyncio."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import threading
import time

import anyio
import httpx
import httpx2
import openai
import pytest

import esp
from esp import _native

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(params=[httpx2, httpx], ids=["httpx2", "httpx"])
def flavour(request):
    return request.param


def _api_requests(mock) -> int:
    return mock.stats()["requests"]


# ---- sharing ----------------------------------------------------------------------


def test_closing_one_client_leaves_the_others_on_the_same_transport_working(mock, flavour):
    transport = esp.HTTPTransport()
    first, second = flavour.Client(transport=transport), flavour.Client(transport=transport)
    assert first.get(mock.url("/echo")).status_code == 200
    first.close()
    assert second.get(mock.url("/echo")).status_code == 200
    second.close()
    # A client closed with the transport is closed; the transport is not.
    assert flavour.Client(transport=transport).get(mock.url("/echo")).status_code == 200


def test_sdk_clients_collected_one_by_one_never_break_the_shared_transport(mock):
    transport = esp.HTTPTransport()
    survivor = openai.OpenAI(base_url=mock.base_url, api_key="sk-test", http_client=httpx2.Client(transport=transport))
    for _ in range(3):
        row = openai.OpenAI(base_url=mock.base_url, api_key="sk-test", http_client=httpx2.Client(transport=transport))
        row.models.list()
        row.close()
        del row
    assert survivor.chat.completions.create(model="gpt-mock", messages=MESSAGES).choices[0].message.content


async def test_one_transport_object_serves_sync_and_async_clients(mock, flavour):
    transport = esp.HTTPTransport()
    with flavour.Client(transport=transport) as sync_client:
        assert sync_client.get(mock.url("/echo")).status_code == 200
    async with flavour.AsyncClient(transport=transport) as async_client:
        assert (await async_client.get(mock.url("/echo"))).status_code == 200
    assert isinstance(esp.AsyncHTTPTransport(), flavour.BaseTransport)


# ---- httpx's arguments ---------------------------------------------------------------


def test_verify_false_and_a_ca_file_and_an_ssl_context(mock, flavour):
    url = mock.https_base_url + "/models"
    for verify in (False, mock.ca_file, ssl.create_default_context(cafile=mock.ca_file)):
        with flavour.Client(transport=esp.HTTPTransport(verify=verify)) as client:
            assert client.get(url).status_code == 200, verify


def test_default_verify_rejects_an_unknown_ca_as_connect_error(mock, flavour, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        with pytest.raises(flavour.ConnectError, match="certificate"):
            client.get(mock.https_base_url + "/models")


def test_ssl_cert_file_and_ssl_cert_dir_are_honoured_unless_trust_env_is_false(mock, flavour, monkeypatch, tmp_path):
    url = mock.https_base_url + "/models"
    monkeypatch.setenv("SSL_CERT_FILE", mock.ca_file)
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        assert client.get(url).status_code == 200
    with flavour.Client(transport=esp.HTTPTransport(trust_env=False)) as client:
        with pytest.raises(flavour.ConnectError):
            client.get(url)
    monkeypatch.delenv("SSL_CERT_FILE")
    shutil.copy(mock.ca_file, tmp_path / "ca.pem")
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        assert client.get(url).status_code == 200


def test_http2_is_off_by_default_as_in_httpx_and_on_when_asked(mock, flavour):
    url = mock.https_base_url + "/models"
    # One origin, both clients in use on the shared engine: each gets the
    # protocol it asked for, never the other's pooled connection.
    with flavour.Client(transport=esp.HTTPTransport(verify=mock.ca_file)) as h1, flavour.Client(
        transport=esp.HTTPTransport(verify=mock.ca_file, http2=True)
    ) as h2:
        for _ in range(3):
            assert h1.get(url).http_version == "HTTP/1.1"
            assert h2.get(url).http_version == "HTTP/2"


def test_limits_bound_the_connections(mock, flavour):
    transport = esp.HTTPTransport(limits=flavour.Limits(max_connections=1), isolate=True, pool_timeout_ms=200)
    with flavour.Client(transport=transport) as client:
        slow = {"x-mock-events": "3", "x-mock-chunk-delay-ms": "1000"}
        chat = {"model": "gpt-mock", "messages": MESSAGES, "stream": True}
        with client.stream("POST", mock.base_url + "/chat/completions", json=chat, headers=slow):
            with pytest.raises(flavour.PoolTimeout):
                client.get(mock.url("/echo"))


def test_transport_arguments_httpx_accepts_are_accepted(mock, flavour):
    transport = esp.HTTPTransport(
        verify=True,
        cert=None,
        trust_env=True,
        http1=True,
        http2=False,
        limits=flavour.Limits(max_connections=10, keepalive_expiry=None),
        proxy=None,
        retries=1,
        socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
    )
    with flavour.Client(transport=transport) as client:
        assert client.get(mock.url("/echo")).status_code == 200


def _tcp_options_of_sockets_to(port: int) -> list[tuple[int, int]]:
    """(TCP_KEEPIDLE, TCP_NODELAY) of this process's sockets connected to
    127.0.0.1:port: libesp's sockets are the process's own."""
    seen = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with sock:  # closes the duplicate only
            try:
                if sock.family == socket.AF_INET and sock.getpeername()[1] == port:
                    seen.append(
                        (
                            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                        )
                    )
            except OSError:
                pass
    return seen


def test_socket_options_are_set_on_the_sockets_the_transport_opens(mock, flavour):
    # libesp's own keepalive idle is 30 s and libcurl turns TCP_NODELAY on:
    # 23 and 0 can only come from the transport's socket_options.
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 23),
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, False),
    ]
    with flavour.Client(transport=esp.HTTPTransport(socket_options=options)) as client:
        assert client.get(mock.url("/echo")).status_code == 200
        tuned = [nodelay for keepidle, nodelay in _tcp_options_of_sockets_to(mock.http_port) if keepidle == 23]
    assert tuned and all(nodelay == 0 for nodelay in tuned), _tcp_options_of_sockets_to(mock.http_port)


def test_a_socket_option_the_kernel_refuses_is_a_connect_error_naming_it(mock, flavour):
    refused = (socket.IPPROTO_TCP, 54321, 1)
    with flavour.Client(transport=esp.HTTPTransport(socket_options=[refused])) as client:
        with pytest.raises(flavour.ConnectError, match=r"socket option \[6, 54321, 1\] refused") as exc:
            client.get(mock.url("/echo"))
    # libesp's own word: the config's fault, so never retried nor held against the origin.
    assert isinstance(exc.value.__cause__, esp.ConfigError)


def test_what_libesp_cannot_do_is_refused_up_front(flavour):
    with pytest.raises(esp.UnsupportedOption):
        esp.HTTPTransport(uds="/tmp/socket")
    with pytest.raises(esp.UnsupportedOption):
        esp.HTTPTransport(local_address="0.0.0.0")
    with pytest.raises(ValueError, match="http1 or http2"):
        esp.HTTPTransport(http1=False, http2=False)
    with pytest.raises(TypeError):
        esp.HTTPTransport(socket_options=["not an option"])
    with pytest.raises(esp.UnsupportedOption, match="integer values only"):
        esp.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")])
    with pytest.raises(esp.UnsupportedOption, match="integer values only"):
        esp.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_LINGER, None, 8)])


def test_proxy_goes_through_the_proxy(mock, flavour):
    # The mock's plain port serves absolute-form requests as a proxy would.
    with flavour.Client(transport=esp.HTTPTransport(proxy=mock.url(""))) as client:
        echoed = client.get("http://proxied.example/echo").json()
    assert echoed["url"] == "http://proxied.example/echo"


def test_retries_retry_connection_failures_only(flavour):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens: refused at once
    with flavour.Client(transport=esp.HTTPTransport(retries=2)) as client:
        started = time.monotonic()
        with pytest.raises(flavour.ConnectError):
            client.get(f"http://127.0.0.1:{port}/")
    # httpcore's backoff: 0.5 s, then 1 s.
    assert 1.4 < time.monotonic() - started < 5


# ---- requests only where the caller pointed --------------------------------------


@pytest.mark.parametrize("url", ["invalid://example.org/x", "htps://api.anthropic.com/v1/messages", "ftp://x/y"])
def test_non_http_urls_raise_unsupported_protocol_and_send_nothing(mock, flavour, url):
    before = _api_requests(mock)
    with flavour.Client(transport=esp.HTTPTransport(), headers={"authorization": "Bearer sk-secret"}) as client:
        with pytest.raises(flavour.UnsupportedProtocol):
            client.get(url)
    assert _api_requests(mock) == before


def test_a_port_out_of_range_is_a_connect_error(flavour):
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        with pytest.raises(flavour.ConnectError, match="out of range"):
            client.get("http://127.0.0.1:70000/x")


# ---- failures as httpx names them, libesp's message in the text ------------------


def test_http_500s_never_turn_healthy_calls_into_connection_errors(mock, flavour):
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        for _ in range(8):
            assert client.get(mock.url("/echo"), headers={"x-mock-status": "500"}).status_code == 500
        assert client.get(mock.url("/echo")).status_code == 200


def test_an_opted_in_breaker_names_itself_in_the_exception_text(flavour):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    transport = esp.HTTPTransport(breaker_failures=2, breaker_cooldown_ms=60000)
    with flavour.Client(transport=transport) as client:
        for _ in range(2):
            with pytest.raises(flavour.ConnectError):
                client.get(f"http://127.0.0.1:{port}/")
        with pytest.raises(flavour.ConnectError, match="circuit breaker"):
            client.get(f"http://127.0.0.1:{port}/")


def test_libesp_errors_reaching_the_sdk_are_its_exceptions_with_the_message(mock):
    client = openai.OpenAI(
        base_url=mock.base_url,
        api_key="sk-test",
        max_retries=0,
        timeout=0.3,
        http_client=httpx2.Client(transport=esp.HTTPTransport()),
    )
    with pytest.raises(openai.APITimeoutError) as caught:
        client.models.list(extra_headers={"x-mock-hang": "1"})
    cause = caught.value.__cause__
    assert isinstance(cause, httpx2.ReadTimeout)
    assert "timeout" in str(cause) and "esp status -5" in str(cause)


# ---- per-phase timeouts (contracts.md #1) ------------------------------------------


def test_read_timeout_is_the_read_phase_not_the_largest(mock, flavour):
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        started = time.monotonic()
        with pytest.raises(flavour.ReadTimeout):
            client.get(mock.url("/echo"), headers={"x-mock-hang": "1"}, timeout=flavour.Timeout(5, read=0.2))
        assert time.monotonic() - started < 1.5


def test_pool_timeout_per_request(mock, flavour):
    transport = esp.HTTPTransport(limits=flavour.Limits(max_connections=1), isolate=True)
    with flavour.Client(transport=transport) as client:
        slow = {"x-mock-events": "3", "x-mock-chunk-delay-ms": "1000"}
        chat = {"model": "gpt-mock", "messages": MESSAGES, "stream": True}
        with client.stream("POST", mock.base_url + "/chat/completions", json=chat, headers=slow):
            started = time.monotonic()
            with pytest.raises(flavour.PoolTimeout):
                client.get(mock.url("/echo"), timeout=flavour.Timeout(5, pool=0.1))
            assert time.monotonic() - started < 0.9


@pytest.fixture
def silent_server():
    """A TCP server that accepts and then neither reads nor writes: a TLS
    handshake with it stalls, and so does a large request body."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    yield listener.getsockname()[1]
    stop.set()
    acceptor.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_connect_timeout_is_connect_timeout(flavour, silent_server):
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        started = time.monotonic()
        with pytest.raises(flavour.ConnectTimeout, match="connect timeout"):
            client.get(f"https://127.0.0.1:{silent_server}/", timeout=flavour.Timeout(5, connect=0.3))
        assert time.monotonic() - started < 1.5


@pytest.fixture
def full_backlog_server():
    """A listener whose accept queue is full: the kernel drops new SYNs, so a
    connect hangs before any byte of TLS or HTTP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.05)  # the fillers' handshakes settle
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


@pytest.mark.parametrize("total", [None, 5], ids=["no-total", "total-5s"])
def test_a_hung_syn_is_a_connect_timeout(flavour, full_backlog_server, total):
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        started = time.monotonic()
        with pytest.raises(flavour.ConnectTimeout, match="connect timeout: no connection within 300 ms"):
            client.get(f"http://127.0.0.1:{full_backlog_server}/", timeout=flavour.Timeout(total, connect=0.3))
        assert time.monotonic() - started < 1.5


def test_write_timeout_is_write_timeout(flavour, silent_server):
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        started = time.monotonic()
        with pytest.raises(flavour.WriteTimeout, match="write timeout"):
            client.post(
                f"http://127.0.0.1:{silent_server}/", content=b"x" * (64 << 20), timeout=flavour.Timeout(5, write=0.3)
            )
        assert time.monotonic() - started < 2.5


def test_no_timeout_means_no_total_limit(mock, flavour):
    request = flavour.Request("GET", mock.url("/echo"), extensions={"timeout": flavour.Timeout(None).as_dict()})
    from esp import _httpx

    spec = _httpx._spec(request, b"", frozenset())
    assert spec.timeout_ms == _native.ESP_NO_TIMEOUT
    assert spec.read_timeout_ms == spec.connect_timeout_ms == _native.ESP_NO_TIMEOUT
    # Keys the transport's caller set win: 0 sends the client's own.
    spec = _httpx._spec(request, b"", frozenset({"timeout_ms", "pool_timeout_ms"}))
    assert spec.timeout_ms == 0 and spec.pool_timeout_ms == 0 and spec.read_timeout_ms == _native.ESP_NO_TIMEOUT


# ---- trio ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_transport_runs_on_every_anyio_backend(mock, flavour, backend):
    async def main():
        async with flavour.AsyncClient(transport=esp.HTTPTransport()) as client:
            response = await client.get(mock.url("/echo"), headers={"x-mock-body-bytes": "200000"})
            assert len(response.content) == 200000
            async with client.stream(
                "POST", mock.base_url + "/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}
            ) as stream:
                lines = [line async for line in stream.aiter_lines() if line.startswith("data:")]
            assert lines[-1] == "data: [DONE]"
            with pytest.raises(flavour.ConnectError):
                await client.get("http://127.0.0.1:1/")
            # A cancelled request is cancelled at once, not left hanging.
            started = time.monotonic()
            with anyio.move_on_after(0.2):
                await client.get(mock.url("/echo"), headers={"x-mock-hang": "1"})
            assert time.monotonic() - started < 1

    anyio.run(main, backend=backend)


def test_openai_async_on_trio(mock):
    async def main():
        client = openai.AsyncOpenAI(
            base_url=mock.base_url, api_key="sk-test", http_client=httpx2.AsyncClient(transport=esp.HTTPTransport())
        )
        completion = await client.chat.completions.create(model="gpt-mock", messages=MESSAGES)
        await client.close()
        return completion.choices[0].message.content

    assert anyio.run(main, backend="trio") == "echo: hello"


def test_a_failure_after_the_request_went_out_says_so(mock, flavour):
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        with pytest.raises(flavour.ReadError) as caught:
            client.get(mock.url("/echo"), headers={"x-mock-drop": "mid-body", "x-mock-body-bytes": "100000"}).read()
    assert caught.value.__cause__.request_sent is True
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        with pytest.raises(flavour.ConnectError) as caught:
            client.get("http://127.0.0.1:1/")
    assert caught.value.__cause__.request_sent is False


async def test_the_trace_extension_sees_the_response_head(mock, flavour):
    seen = []
    with flavour.Client(transport=esp.HTTPTransport()) as client:
        client.get(mock.url("/echo"), extensions={"trace": lambda name, info: seen.append((name, info))})

    async def async_trace(name, info):
        seen.append((name, info))

    async with flavour.AsyncClient(transport=esp.HTTPTransport()) as client:
        await client.get(mock.url("/echo"), extensions={"trace": async_trace})
    completes = [info["return_value"] for name, info in seen if name == "http11.receive_response_headers.complete"]
    assert len(completes) == 2
    version, status, reason, headers = completes[0]
    assert (version, status, reason) == (b"HTTP/1.1", 200, b"OK") and (b"content-type", b"application/json") in headers


def test_an_exhausted_rate_limit_is_a_pool_timeout_naming_the_limit(mock, flavour):
    # The budget belongs to the credential: one per flavour.
    credential = f"sk-rate-limit-{flavour.__name__}"
    transport = esp.HTTPTransport(rate_limit={"requests_per_minute": 1}, timeout_ms=300, api_key=credential)
    with flavour.Client(transport=transport) as client:
        assert client.get(mock.url("/echo")).status_code == 200
        before = _api_requests(mock)
        with pytest.raises(flavour.PoolTimeout) as caught:
            client.get(mock.url("/echo"))
    assert isinstance(caught.value.__cause__, esp.RateLimitedError) and "esp status -17" in str(caught.value)
    assert _api_requests(mock) == before
