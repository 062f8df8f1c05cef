"""httpx transports over libesp, so SDKs built on httpx or httpx2 (openai,
anthropic, ...) send their requests through libesp's shared pools:

    openai.OpenAI(http_client=httpx2.Client(transport=esp.HTTPTransport()))
    openai.AsyncOpenAI(http_client=httpx2.AsyncClient(transport=esp.AsyncHTTPTransport()))

The same classes serve httpx and its successor httpx2 (which the current
openai and anthropic releases use): each request is answered with the
response and exception types of the library that made it.

Retries: the SDKs retry on their own (2 times by default). So that the two
layers do not multiply, a transport's libesp client defaults to
``max_retries: 0`` and leaves retrying to the SDK. To have libesp retry
instead (with its per-origin circuit breaker), pass ``max_retries=N`` to the
transport AND ``max_retries=0`` to the SDK.

Timeouts: httpx's per-request timeout (request.extensions["timeout"])
becomes libesp's whole-request timeout, the largest of its connect, read,
write and pool values; a request whose read timeout is None (no limit) gets
the libesp config's timeout_ms instead. The connect and pool limits are the
config's connect_timeout_ms and pool_timeout_ms.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from types import ModuleType
from typing import Any, NamedTuple

from . import _errors
from ._client import AsyncStream, Client, Stream
from ._native import ESP_REQ_STREAM_RAW, MODE_RAW, RequestSpec
from ._types import Response


def _installed_flavours() -> list[ModuleType]:
    flavours = []
    for name in ("httpx", "httpx2"):
        try:
            flavours.append(importlib.import_module(name))
        except ImportError:
            pass
    if not flavours:
        raise ImportError("esp.HTTPTransport and esp.AsyncHTTPTransport need httpx or httpx2 installed")
    return flavours


_FLAVOURS = _installed_flavours()

# Hop-by-hop and framing headers: libcurl writes its own from the URL and the
# body it is given, and HTTP/2 forbids the connection-specific ones.
_DROPPED_REQUEST_HEADERS = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"proxy-connection", b"upgrade"}
)
_HTTP_VERSIONS = {10: b"HTTP/1.0", 11: b"HTTP/1.1", 20: b"HTTP/2", 30: b"HTTP/3"}
#: Config keys a transport's client gets unless the caller sets them.
_TRANSPORT_DEFAULTS = {"max_retries": 0}

# EspError classes -> the name of the httpx exception an SDK expects for that
# failure. Order matters: PoolTimeoutError is a TimeoutError.
_HTTPX_ERRORS: list[tuple[type, str]] = [
    (_errors.PoolTimeoutError, "PoolTimeout"),
    (_errors.TimeoutError, "ReadTimeout"),
    (_errors.ConnectError, "ConnectError"),
    (_errors.TLSError, "ConnectError"),
    (_errors.CircuitOpenError, "ConnectError"),
    (_errors.NetworkError, "ReadError"),
    (_errors.ProtocolError, "RemoteProtocolError"),
    (_errors.ResponseTooLargeError, "ReadError"),
    (_errors.CancelledError, "ReadError"),
    (_errors.ShutdownError, "ReadError"),
    (_errors.InvalidArgumentError, "LocalProtocolError"),
]


class _SyncBody:
    """A response body read with esp_stream_next (mixed into the flavour's
    SyncByteStream by _flavour_kit)."""

    def __init__(self, stream: Stream, request: Any) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream  # type: ignore[misc]
        except _errors.EspError as exc:
            raise _httpx_error(exc, self._request) from exc

    def close(self) -> None:
        self._stream.close()


class _AsyncBody:
    """A response body delivered by async callbacks (mixed into the
    flavour's AsyncByteStream)."""

    def __init__(self, stream: AsyncStream, request: Any) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk  # type: ignore[misc]
        except _errors.EspError as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


class _FlavourKit(NamedTuple):
    module: ModuleType
    sync_body: type
    async_body: type


@functools.cache
def _flavour_kit(module: ModuleType) -> _FlavourKit:
    return _FlavourKit(
        module,
        type("SyncBody", (_SyncBody, module.SyncByteStream), {}),
        type("AsyncBody", (_AsyncBody, module.AsyncByteStream), {}),
    )


def _kit_for(request: Any) -> _FlavourKit:
    """The kit of the library (httpx or httpx2) whose Request this is."""
    return _flavour_kit(sys.modules[type(request).__module__.partition(".")[0]])


def _httpx_error(exc: _errors.EspError, request: Any) -> Exception:
    """The httpx exception for exc (exc itself for errors that are bugs or
    misconfiguration rather than transport failures)."""
    module = _kit_for(request).module
    for esp_class, name in _HTTPX_ERRORS:
        if isinstance(exc, esp_class):
            return getattr(module, name)(str(exc), request=request)
    return exc


def _timeout_ms(request: Any) -> int:
    timeout = request.extensions.get("timeout") or {}
    if timeout.get("read") is None:
        return 0
    longest = max(value for value in timeout.values() if value is not None)
    return max(1, round(longest * 1000))


def _spec(request: Any, body: bytes) -> RequestSpec:
    headers = [(name, value) for name, value in request.headers.raw if name.lower() not in _DROPPED_REQUEST_HEADERS]
    return RequestSpec(
        method=request.method.encode("ascii"),
        path=str(request.url).encode("utf-8"),
        headers=headers,
        body=body if body or request.method not in ("GET", "HEAD") else None,
        timeout_ms=_timeout_ms(request),
        flags=ESP_REQ_STREAM_RAW,
    )


def _response(kit: _FlavourKit, head: Response, body: Any, request: Any) -> Any:
    return kit.module.Response(
        head.status,
        headers=head.headers.multi_items(),
        stream=body,
        request=request,
        extensions={"http_version": _HTTP_VERSIONS.get(head.http_version, b"HTTP/1.1")},
    )


def _transport_client(
    config: Mapping[str, Any] | None, client: Client | None, kwargs: dict[str, Any]
) -> tuple[Client, bool]:
    if client is not None:
        if config or kwargs:
            raise ValueError("pass either client= or a config, not both")
        return client, False
    merged = dict(_TRANSPORT_DEFAULTS)
    merged.update(config or {})
    merged.update(kwargs)
    return Client(merged), True


class HTTPTransport(*(flavour.BaseTransport for flavour in _FLAVOURS)):  # type: ignore[misc]
    """An httpx / httpx2 transport that sends requests through libesp.

    ``config`` (plus keyword arguments) is a libesp client config as for
    esp.Client, with ``max_retries`` defaulting to 0 (see the module doc);
    or pass an existing ``client=``, which the transport then uses but does
    not close. Request URLs are absolute, so base_url and the provider's
    auth are the SDK's business; set transport matters (ca_file, proxy,
    max_connections, http2, timeouts) in the config.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, *, client: Client | None = None, **kwargs: Any):
        self._client, self._owns_client = _transport_client(config, client, kwargs)

    def handle_request(self, request: Any) -> Any:
        """Send the request; the body is streamed as it arrives."""
        kit = _kit_for(request)
        spec = _spec(request, request.read())
        try:
            stream = Stream(self._client, spec)
        except _errors.EspError as exc:
            raise _httpx_error(exc, request) from exc
        return _response(kit, stream.head, kit.sync_body(stream, request), request)

    def close(self) -> None:
        """Release the transport's libesp lease (if it made the client)."""
        if self._owns_client:
            self._client.close()


class AsyncHTTPTransport(*(flavour.AsyncBaseTransport for flavour in _FLAVOURS)):  # type: ignore[misc]
    """The asyncio counterpart of HTTPTransport, for httpx.AsyncClient and
    httpx2.AsyncClient.

    It works from any event loop, so one transport (and the SDK client on
    top of it) can be reused across asyncio.run() calls.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, *, client: Client | None = None, **kwargs: Any):
        self._client, self._owns_client = _transport_client(config, client, kwargs)

    async def handle_async_request(self, request: Any) -> Any:
        """Send the request; the body is streamed as it arrives."""
        kit = _kit_for(request)
        stream = AsyncStream(self._client, _spec(request, await request.aread()), MODE_RAW)
        try:
            await stream.start()
        except _errors.EspError as exc:
            raise _httpx_error(exc, request) from exc
        return _response(kit, stream.head, kit.async_body(stream, request), request)

    async def aclose(self) -> None:
        """Release the transport's libesp lease (if it made the client)."""
        if self._owns_client:
            self._client.close()
