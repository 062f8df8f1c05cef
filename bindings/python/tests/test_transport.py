"""The official openai and anthropic SDKs on esp.HTTPTransport /
esp.AsyncHTTPTransport, against the mock server. The current SDKs are built
on httpx2; openai also still takes clients of the original httpx: both
flavours are tested."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import httpx2
import openai
import pytest

import esp

MESSAGES = [{"role": "user", "content": "hello sdk"}]
# The fault tests would open libesp's per-origin circuit breaker for the
# tests after them.
NO_BREAKER = {"breaker_failures": 0}


@pytest.fixture(params=[httpx2, httpx], ids=["httpx2", "httpx"])
def flavour(request):
    """The HTTP library under the SDK: httpx2 or the original httpx."""
    return request.param


@pytest.fixture
def openai_client(mock, flavour):
    client = openai.OpenAI(
        base_url=mock.base_url, api_key="sk-test", http_client=flavour.Client(transport=esp.HTTPTransport(NO_BREAKER))
    )
    yield client
    client.close()


@pytest.fixture
def async_openai_client(mock, flavour):
    return openai.AsyncOpenAI(
        base_url=mock.base_url,
        api_key="sk-test",
        http_client=flavour.AsyncClient(transport=esp.AsyncHTTPTransport(NO_BREAKER)),
    )


def test_openai_chat_completion(openai_client):
    completion = openai_client.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hello sdk"
    assert completion.usage.completion_tokens == 3  # "echo: ", "hello ", "sdk"


def test_openai_streamed_chat_completion(openai_client):
    stream = openai_client.chat.completions.create(model="gpt-mock", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "echo: hello sdk"


def test_openai_embeddings_and_models(openai_client):
    embedding = openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(embedding.data) == 2 and len(embedding.data[0].embedding) == 8
    assert "gpt-mock" in [m.id for m in openai_client.models.list()]


def test_openai_sees_http_errors_as_its_own_exceptions(mock):
    client = openai.OpenAI(
        base_url=mock.base_url,
        api_key="sk-test",
        max_retries=0,
        http_client=httpx2.Client(transport=esp.HTTPTransport(NO_BREAKER)),
        default_headers={"x-mock-status": "404"},
    )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-mock", messages=MESSAGES)


def _requests_seen(mock, key: str) -> int:
    with httpx2.Client() as plain:
        return len(plain.get(mock.url("/_mock/requests"), params={"key": key}).json())


def test_sdk_retries_are_the_only_retries_by_default(mock):
    # Two failures, one SDK retry: with libesp's retries left at 0 the SDK
    # sees both failures (2 requests). Stacked retries would have hidden
    # them behind libesp's third attempt.
    key = "sdk-retries-only"
    client = openai.OpenAI(
        base_url=mock.base_url,
        api_key="sk-test",
        max_retries=1,
        http_client=httpx2.Client(transport=esp.HTTPTransport(NO_BREAKER)),
        default_headers={"x-mock-key": key, "x-mock-fail-times": "2", "x-mock-retry-after-ms": "1"},
    )
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert _requests_seen(mock, key) == 2


def test_libesp_retries_instead_of_the_sdk(mock):
    key = "libesp-retries-only"
    transport = esp.HTTPTransport(NO_BREAKER, max_retries=2, retry_base_ms=1, retry_max_ms=5)
    client = openai.OpenAI(
        base_url=mock.base_url,
        api_key="sk-test",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
        default_headers={"x-mock-key": key, "x-mock-fail-times": "2"},
    )
    completion = client.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hello sdk"
    assert _requests_seen(mock, key) == 3


def test_request_timeout_becomes_the_sdk_timeout_error(mock):
    client = openai.OpenAI(
        base_url=mock.base_url,
        api_key="sk-test",
        max_retries=0,
        timeout=0.5,
        http_client=httpx2.Client(transport=esp.HTTPTransport(NO_BREAKER)),
    )
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-mock", messages=MESSAGES, extra_headers={"x-mock-hang": "1"})


def test_transport_errors_map_to_httpx_exceptions(mock, flavour):
    with flavour.Client(transport=esp.HTTPTransport(NO_BREAKER)) as client:
        with pytest.raises(flavour.ReadTimeout):
            client.get(mock.url("/echo"), headers={"x-mock-hang": "1"}, timeout=0.3)
        with pytest.raises(flavour.TransportError):
            client.get(mock.url("/echo"), headers={"x-mock-drop": "before-headers"})
        with pytest.raises(flavour.ConnectError):
            client.get("http://127.0.0.1:1/nothing-listens-here")


def test_openai_over_https_and_http2(mock):
    transport = esp.HTTPTransport(NO_BREAKER, ca_file=mock.ca_file, http2=True)
    client = openai.OpenAI(
        base_url=mock.https_base_url, api_key="sk-test", http_client=httpx2.Client(transport=transport)
    )
    raw = client.chat.completions.with_raw_response.create(model="gpt-mock", messages=MESSAGES)
    assert raw.http_response.http_version == "HTTP/2"
    assert raw.parse().choices[0].message.content == "echo: hello sdk"


def test_pool_exhaustion_is_httpx_pool_timeout(mock, flavour):
    transport = esp.HTTPTransport(NO_BREAKER, isolate=True, max_connections=1, pool_timeout_ms=200)
    with flavour.Client(transport=transport) as client:
        slow_body = {"x-mock-events": "3", "x-mock-chunk-delay-ms": "1000"}
        chat = {"model": "gpt-mock", "messages": MESSAGES, "stream": True}
        with client.stream("POST", mock.base_url + "/chat/completions", json=chat, headers=slow_body):
            # The only connection still carries that response's body.
            with pytest.raises(flavour.PoolTimeout):
                client.get(mock.url("/echo"))
        # Leaving the block cancelled the slow response and freed the connection.
        assert client.get(mock.url("/echo")).status_code == 200


def test_httpx_streaming_response_through_the_transport(mock, flavour):
    with flavour.Client(transport=esp.HTTPTransport(NO_BREAKER)) as client:
        with client.stream("GET", mock.url("/echo"), headers={"x-mock-body-bytes": "300000"}) as response:
            assert response.status_code == 200
            assert response.http_version == "HTTP/1.1"
            total = sum(len(chunk) for chunk in response.iter_bytes())
    assert total == 300000


async def test_async_openai_chat_completion(async_openai_client):
    completion = await async_openai_client.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hello sdk"


async def test_async_openai_streamed_chat_completion(async_openai_client):
    stream = await async_openai_client.chat.completions.create(model="gpt-mock", messages=MESSAGES, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "echo: hello sdk"


async def test_async_transport_timeout_and_errors(mock, flavour):
    async with flavour.AsyncClient(transport=esp.AsyncHTTPTransport(NO_BREAKER)) as client:
        with pytest.raises(flavour.ReadTimeout):
            await client.get(mock.url("/echo"), headers={"x-mock-hang": "1"}, timeout=0.3)
        with pytest.raises(flavour.ConnectError):
            await client.get("http://127.0.0.1:1/nothing-listens-here")
        response = await client.get(mock.url("/echo"), headers={"x-mock-body-bytes": "300000"})
        assert len(response.content) == 300000


def test_one_async_openai_client_across_two_asyncio_runs(async_openai_client):
    client = async_openai_client

    async def ask(content: str) -> str:
        completion = await client.chat.completions.create(
            model="gpt-mock", messages=[{"role": "user", "content": content}]
        )
        return completion.choices[0].message.content

    assert asyncio.run(ask("one")) == "echo: one"
    assert asyncio.run(ask("two")) == "echo: two"


def test_anthropic_message(mock):
    client = anthropic.Anthropic(
        base_url=f"http://127.0.0.1:{mock.http_port}",
        api_key="sk-ant-test",
        http_client=httpx2.Client(transport=esp.HTTPTransport(NO_BREAKER)),
    )
    message = client.messages.create(
        model="claude-mock", max_tokens=64, messages=[{"role": "user", "content": "hello claude"}]
    )
    assert message.content[0].text == "echo: hello claude"


async def test_async_anthropic_streamed_message(mock):
    client = anthropic.AsyncAnthropic(
        base_url=f"http://127.0.0.1:{mock.http_port}",
        api_key="sk-ant-test",
        http_client=httpx2.AsyncClient(transport=esp.AsyncHTTPTransport(NO_BREAKER)),
    )
    async with client.messages.stream(
        model="claude-mock", max_tokens=64, messages=[{"role": "user", "content": "hello stream"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert text == "echo: hello stream"


def test_transport_can_share_an_existing_client(config, mock):
    with esp.Client(config) as shared:
        transport = esp.HTTPTransport(client=shared)
        with httpx2.Client(transport=transport) as client:
            assert client.get(mock.url("/echo")).status_code == 200
        assert not shared.closed  # the transport borrowed it
        with pytest.raises(ValueError):
            esp.HTTPTransport({"max_retries": 1}, client=shared)
