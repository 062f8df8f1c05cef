"""httpx transports over libesp, so SDKs built on httpx or httpx2 (openai,
anthropic, LangChain, ...) send their requests through libesp's shared pools:

    openai.OpenAI(http_client=httpx2.Client(transport=esp.HTTPTransport()))

or, for every client in the process, esp.install() (see _install.py).

One class serves httpx and httpx2, sync and async: each request is answered
with the response and exception types of the library that made it, from a
plain thread, an asyncio loop or a trio run. It takes httpx's own transport
arguments with httpx's meaning and defaults (see HTTPTransport).

Sharing: a transport takes its libesp lease when it first sends and gives
it back on close(); a request after close() takes a new one. So one
transport handed to several httpx clients keeps working when one of them is
closed or collected, as httpx's own transport does.

Failure handling is the SDK's, as with httpx: a transport's libesp client
defaults to ``max_retries: 0`` (the SDKs retry on their own; two layers
would multiply) and ``breaker_failures: 0`` (no circuit breaker: a server's
500s never turn later healthy calls into connection errors). Pass either
config key to opt in; an open breaker then fails with httpx.ConnectError
whose text names it.

Timeouts: httpx's per-request connect, read, write and pool timeouts become
libesp's per-request ones (None: no limit), and httpx has no total limit,
so neither does the request. Timeout keys set explicitly in the transport's
config (timeout_ms, connect_timeout_ms, idle_timeout_ms for reads,
pool_timeout_ms) win over the request's.
Each firing raises its httpx exception (ConnectTimeout, ReadTimeout,
WriteTimeout, PoolTimeout).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import importlib
import os
import ssl
import stat
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any, NamedTuple

from . import _errors
from ._client import AsyncStream, Client, Stream, refuse_nul
from ._native import ESP_NO_TIMEOUT, ESP_REQ_STREAM_RAW, MODE_RAW, RequestSpec
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
#: Config keys a transport's client gets unless the caller sets them: the
#: SDK (or httpx's caller) does the retrying and failure handling.
_TRANSPORT_DEFAULTS = {"max_retries": 0, "breaker_failures": 0}
#: httpx.Limits(max_connections=None) means no limit; libesp's largest.
_UNLIMITED_CONNECTIONS = 10000
#: keepalive_expiry=None means connections never expire; libesp's longest,
#: and its shortest (it counts whole seconds).
_LONGEST_IDLE_MS = 86_400_000
_SHORTEST_IDLE_MS = 1000
#: httpcore's connect retries wait 0, 0.5, 1, 2, ... seconds.
_RETRY_BACKOFF_S = 0.5


class UnsupportedOption(ValueError):
    """An httpx transport argument libesp cannot honour (uds, local_address,
    proxy headers, a socket option with a bytes value). esp.install() leaves
    clients that use one on httpx's own transport."""


# ---- errors -----------------------------------------------------------------


def _timeout_error_name(message: str) -> str:
    if message.startswith("connect timeout"):
        return "ConnectTimeout"
    if message.startswith("write timeout"):
        return "WriteTimeout"
    return "ReadTimeout"


def _httpx_error_name(exc: _errors.EspError) -> str:
    """The name of the httpx exception an SDK expects for exc."""
    if isinstance(exc, (_errors.PoolTimeoutError, _errors.RateLimitedError)):
        # Both waited for local capacity (a connection slot, the rate
        # limit's budget) until the timeout; nothing was sent.
        return "PoolTimeout"
    if isinstance(exc, _errors.TimeoutError):
        return _timeout_error_name(exc.message)
    if isinstance(exc, _errors.InvalidArgumentError):
        return "UnsupportedProtocol" if "unsupported URL scheme" in exc.message else "LocalProtocolError"
    if isinstance(exc, _errors.ConfigError) and "'socket_options'" in exc.message:
        return "ConnectError"  # httpcore's, for a setsockopt that fails as it connects
    if isinstance(exc, _errors.ProtocolError):
        return "RemoteProtocolError"
    if isinstance(exc, (_errors.ConnectError, _errors.TLSError, _errors.CircuitOpenError, _errors.HandleError)):
        return "ConnectError"
    if isinstance(exc, (_errors.NetworkError, _errors.ResponseTooLargeError, _errors.CancelledError)):
        return "ReadError"
    return "TransportError"


def _httpx_error(exc: _errors.EspError, request: Any) -> Exception:
    """The httpx exception for exc, carrying libesp's message in its text
    (exc stays its __cause__, with code and request_sent)."""
    module = _kit_for(request).module
    return getattr(module, _httpx_error_name(exc))(str(exc), request=request)


def _is_connect_failure(exc: _errors.EspError) -> bool:
    """What httpcore's ``retries`` retries: no connection was made."""
    if exc.request_sent:
        return False
    if isinstance(exc, _errors.ConnectError):
        return True
    return isinstance(exc, _errors.TimeoutError) and exc.message.startswith("connect timeout")


def _backoff(attempt: int) -> float:
    return 0.0 if attempt == 0 else _RETRY_BACKOFF_S * 2 ** (attempt - 1)


# ---- bodies and responses -----------------------------------------------------


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


def _head_trace(kit: _FlavourKit, head: Response, request: Any) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    """The request's httpcore-style ``trace`` callback and the response-head
    events for it (what httpx's CLI and tracing tools read); libesp has no
    connection-level events to report."""
    trace = request.extensions.get("trace")
    if trace is None:
        return None, []
    prefix = "http2" if head.http_version == 20 else "http11"
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in head.headers.multi_items()]
    reason = kit.module.codes.get_reason_phrase(head.status).encode("ascii")
    version = _HTTP_VERSIONS.get(head.http_version, b"HTTP/1.1")
    return trace, [
        (f"{prefix}.receive_response_headers.started", {"request": request}),
        (
            f"{prefix}.receive_response_headers.complete",
            {"request": request, "return_value": (version, head.status, reason, headers)},
        ),
    ]


def _response(kit: _FlavourKit, head: Response, body: Any, request: Any) -> Any:
    return kit.module.Response(
        head.status,
        headers=head.headers.multi_items(),
        stream=body,
        request=request,
        extensions={"http_version": _HTTP_VERSIONS.get(head.http_version, b"HTTP/1.1")},
    )


# ---- requests -------------------------------------------------------------------


def _check_url(request: Any) -> None:
    """Refuse what httpx's transport refuses, before anything is sent: a
    scheme other than http(s) (UnsupportedProtocol: never resolved against
    a base URL), a port out of range (ConnectError)."""
    module = _kit_for(request).module
    url = request.url
    if url.scheme not in ("http", "https"):
        if not url.scheme:
            raise module.UnsupportedProtocol(
                "Request URL is missing an 'http://' or 'https://' protocol.", request=request
            )
        raise module.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.", request=request)
    if url.port is not None and not 0 < url.port < 65536:
        raise module.ConnectError(f"port {url.port} is out of range (1-65535)", request=request)


def _ms(seconds: float | None) -> int:
    return ESP_NO_TIMEOUT if seconds is None else max(1, round(seconds * 1000))


#: httpx's timeout phases, and the libesp config key that, set explicitly on
#: a transport, wins over the request's value for that phase.
_PHASE_CONFIG_KEYS = {
    "connect": "connect_timeout_ms",
    "read": "idle_timeout_ms",
    "write": None,
    "pool": "pool_timeout_ms",
}


def _spec(request: Any, body: bytes, configured: frozenset[str]) -> RequestSpec:
    """The request for libesp; ``configured`` holds the timeout config keys
    the transport's caller set (their values win: 0 means the client's)."""
    headers = [(name, value) for name, value in request.headers.raw if name.lower() not in _DROPPED_REQUEST_HEADERS]
    timeout = request.extensions.get("timeout") or {}
    phases = {
        f"{phase}_timeout_ms": _ms(timeout[phase])
        for phase, key in _PHASE_CONFIG_KEYS.items()
        if phase in timeout and key not in configured
    }
    spec = RequestSpec(
        method=request.method.encode("ascii"),
        path=str(request.url).encode("utf-8"),
        headers=headers,
        body=body if body or request.method not in ("GET", "HEAD") else None,
        # httpx has no whole-request limit: only the phases are bounded.
        timeout_ms=0 if "timeout_ms" in configured else ESP_NO_TIMEOUT,
        flags=ESP_REQ_STREAM_RAW,
        **phases,
    )
    try:
        return refuse_nul(spec)
    except _errors.EspError as exc:
        raise _httpx_error(exc, request) from exc


# ---- httpx's transport arguments -> a libesp config ---------------------------


def _private_dir() -> str:
    """A directory only this user can write (CA bundles in a shared temp dir
    could be planted by another user)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = os.path.join(tempfile.gettempdir(), f"libesp-{uid}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != uid) or info.st_mode & 0o022:
        raise PermissionError(f"{path} is not a private directory of this user")
    return path


def _pem_bundle(pems: Iterable[bytes]) -> str:
    """A CA file holding pems, for libcurl (which takes files, not
    SSLContexts): written once per distinct content, in a private directory."""
    data = b"".join(pem if pem.endswith(b"\n") else pem + b"\n" for pem in pems)
    path = os.path.join(_private_dir(), f"ca-{hashlib.sha256(data).hexdigest()[:32]}.pem")
    if not os.path.exists(path):
        partial = f"{path}.{os.getpid()}.{threading.get_ident()}"
        with open(partial, "wb") as f:
            f.write(data)
        os.replace(partial, path)
    return path


def _ca_dir_bundle(directory: str) -> str:
    pems = []
    for name in sorted(glob.glob(os.path.join(directory, "*"))):
        if os.path.isfile(name):
            with open(name, "rb") as f:
                content = f.read()
            if b"-----BEGIN CERTIFICATE-----" in content:
                pems.append(content)
    return _pem_bundle(pems)


def _context_settings(context: ssl.SSLContext) -> dict[str, Any]:
    if context.verify_mode == ssl.CERT_NONE:
        return {"verify_tls": False}
    cas = context.get_ca_certs(binary_form=True)
    if not cas:  # the context trusts the system store, as libcurl does
        return {}
    return {"ca_file": _pem_bundle(ssl.DER_cert_to_PEM_cert(der).encode("ascii") for der in cas)}


def _trust_settings(verify: Any, trust_env: bool) -> dict[str, Any]:
    """verify as httpx2 reads it: False, a CA file or directory, an
    SSLContext, or True: SSL_CERT_FILE, else SSL_CERT_DIR (when trust_env),
    else the platform trust store (libcurl's default CA bundle)."""
    if verify is False:
        return {"verify_tls": False}
    if isinstance(verify, ssl.SSLContext):
        return _context_settings(verify)
    if isinstance(verify, (str, os.PathLike)):
        path = os.fspath(verify)
        return {"ca_file": _ca_dir_bundle(path) if os.path.isdir(path) else path}
    if verify is not True:
        raise TypeError(f"verify must be True, False, a CA path or an ssl.SSLContext, not {verify!r}")
    if trust_env and os.environ.get("SSL_CERT_FILE"):
        return {"ca_file": os.environ["SSL_CERT_FILE"]}
    if trust_env and os.environ.get("SSL_CERT_DIR"):
        return {"ca_file": _ca_dir_bundle(os.environ["SSL_CERT_DIR"])}
    return {}


def _cert_settings(cert: Any) -> dict[str, Any]:
    if not cert:
        return {}
    if isinstance(cert, str):
        return {"client_cert": cert}
    if len(cert) == 3 and cert[2] is not None:
        raise UnsupportedOption("cert=(certfile, keyfile, password): libesp cannot use encrypted client keys")
    return {"client_cert": cert[0], "client_key": cert[1]} if cert[1] else {"client_cert": cert[0]}


def _proxy_setting(proxy: Any) -> dict[str, Any]:
    if proxy is None:
        return {}
    if isinstance(proxy, str) or type(proxy).__name__ == "URL":
        return {"proxy": str(proxy)}
    if dict(proxy.headers) or proxy.ssl_context is not None:
        raise UnsupportedOption("proxy headers and proxy ssl_context are not supported by libesp")
    url = proxy.url
    if proxy.auth:
        user, password = proxy.auth
        url = url.copy_with(username=user, password=password)
    return {"proxy": str(url)}


def _limits_settings(limits: Any) -> dict[str, Any]:
    if limits is None:  # httpx's defaults: 100 connections, 5 s keep-alive
        return {"max_connections": 100, "conn_max_idle_ms": 5000}
    max_connections = limits.max_connections
    expiry = limits.keepalive_expiry
    idle_ms = _LONGEST_IDLE_MS if expiry is None else max(_SHORTEST_IDLE_MS, round(expiry * 1000))
    return {
        "max_connections": _UNLIMITED_CONNECTIONS if max_connections is None else max(1, max_connections),
        "conn_max_idle_ms": min(idle_ms, _LONGEST_IDLE_MS),
    }


def _socket_options_setting(socket_options: Any) -> dict[str, Any]:
    """httpx's socket_options as libesp's ``socket_options`` key, which sets
    them on every socket the client opens. libesp sets integer values only:
    a bytes value or a (level, option, None, length) entry raises
    UnsupportedOption (esp.install() then leaves that client on httpcore)."""
    options = []
    for option in socket_options or ():
        if not isinstance(option, tuple) or len(option) not in (3, 4):
            raise TypeError(f"socket option {option!r} is not a (level, option, value) tuple")
        level, name, value = option[:3]
        if not isinstance(level, int) or not isinstance(name, int):
            raise TypeError(f"socket option {option!r}: level and option must be integers")
        if len(option) == 4 or not isinstance(value, int):
            raise UnsupportedOption(f"socket option {option!r}: libesp sets integer values only")
        options.append([level, name, int(value)])
    return {"socket_options": options} if options else {}


def httpx_config(
    verify: Any = True,
    cert: Any = None,
    trust_env: bool = True,
    http1: bool = True,
    http2: bool = False,
    limits: Any = None,
    proxy: Any = None,
    uds: str | None = None,
    local_address: str | None = None,
    socket_options: Any = None,
) -> dict[str, Any]:
    """The libesp config keys for httpx's transport arguments.

    Raises UnsupportedOption for what libesp cannot do (uds, local_address,
    an encrypted client key, proxy headers, a socket option whose value is
    not an integer)."""
    if uds is not None:
        raise UnsupportedOption("uds= (Unix domain sockets) is not supported by libesp")
    if local_address is not None:
        raise UnsupportedOption("local_address= is not supported by libesp")
    if not http1 and not http2:
        raise ValueError("At least one of http1 or http2 must be True.")
    config: dict[str, Any] = {"http2": bool(http2) or not http1}
    config.update(_socket_options_setting(socket_options))
    config.update(_trust_settings(verify, trust_env))
    config.update(_cert_settings(cert))
    config.update(_proxy_setting(proxy))
    config.update(_limits_settings(limits))
    return config


# ---- the transport ----------------------------------------------------------------


class HTTPTransport(
    *(flavour.BaseTransport for flavour in _FLAVOURS),  # type: ignore[misc]
    *(flavour.AsyncBaseTransport for flavour in _FLAVOURS),
):
    """An httpx / httpx2 transport that sends requests through libesp; one
    object serves httpx.Client and httpx.AsyncClient (and httpx2's) alike.

    Takes httpx's transport arguments, with httpx's meaning and defaults:
    ``verify`` (True: SSL_CERT_FILE, else SSL_CERT_DIR when ``trust_env``,
    else the platform store; False; a CA file or directory; an
    ssl.SSLContext, whose CA certificates are used), ``cert``, ``http1``,
    ``http2`` (False: HTTP/1.1, as httpx), ``limits`` (max_connections per
    origin; keepalive_expiry, at least 1 s), ``proxy``, ``retries``
    (connection failures only, as httpcore) and ``socket_options`` (set on
    every socket the transport's client opens; integer values only, others
    raise UnsupportedOption, as do ``uds`` and ``local_address``).

    ``config`` (a dict, also the first positional argument) and extra
    keyword arguments are libesp config keys and win over the above, e.g.
    ``esp.HTTPTransport(max_connections=32, http2=True)``. Or pass an
    existing ``client=``, which the transport uses but never closes.
    """

    def __init__(
        self,
        config: Any = None,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: Any = None,
        proxy: Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Any = None,
        *,
        verify: Any = True,
        client: Client | None = None,
        **kwargs: Any,
    ) -> None:
        if config is not None and not isinstance(config, Mapping):
            # httpx's first positional argument is verify.
            verify, config = config, None
        self._retries = retries
        self._lock = threading.Lock()
        self._borrowed = client
        self._lease: Client | None = None
        if client is not None:
            if config or kwargs:
                raise ValueError("pass either client= or a config, not both")
            self._config: dict[str, Any] = {}
            self._configured_timeouts: frozenset[str] = frozenset()
            return
        httpx_keys = httpx_config(
            verify, cert, trust_env, http1, http2, limits, proxy, uds, local_address, socket_options
        )
        merged = {**_TRANSPORT_DEFAULTS, **httpx_keys, **(config or {}), **kwargs}
        self._config = merged
        self._configured_timeouts = frozenset(
            key for key in ("timeout_ms", *_PHASE_CONFIG_KEYS.values()) if key and key in {**(config or {}), **kwargs}
        )
        # Take the lease now, so that a bad config fails here, not at the
        # first request.
        self._client()

    def _client(self) -> Client:
        if self._borrowed is not None:
            return self._borrowed
        with self._lock:
            if self._lease is None:
                self._lease = Client(self._config)
            return self._lease

    def _spec(self, request: Any, body: bytes) -> RequestSpec:
        return _spec(request, body, self._configured_timeouts)

    def handle_request(self, request: Any) -> Any:
        """Send the request; the body is streamed as it arrives."""
        _check_url(request)
        kit = _kit_for(request)
        spec = self._spec(request, request.read())
        attempt = 0
        while True:
            try:
                stream = Stream(self._client(), spec)
                break
            except _errors.EspError as exc:
                if attempt >= self._retries or not _is_connect_failure(exc):
                    raise _httpx_error(exc, request) from exc
            attempt += 1
            time.sleep(_backoff(attempt))
        trace, events = _head_trace(kit, stream.head, request)
        for name, info in events:
            trace(name, info)
        return _response(kit, stream.head, kit.sync_body(stream, request), request)

    async def handle_async_request(self, request: Any) -> Any:
        """Send the request; the body is streamed as it arrives. Works on
        asyncio and trio."""
        _check_url(request)
        kit = _kit_for(request)
        spec = self._spec(request, await request.aread())
        attempt = 0
        while True:
            stream = AsyncStream(self._client(), spec, MODE_RAW)
            try:
                await stream.start()
                break
            except _errors.EspError as exc:
                if attempt >= self._retries or not _is_connect_failure(exc):
                    raise _httpx_error(exc, request) from exc
            attempt += 1
            import anyio  # httpx's own dependency, so there whenever httpx is

            await anyio.sleep(_backoff(attempt))
        trace, events = _head_trace(kit, stream.head, request)
        for name, info in events:
            await trace(name, info)
        return _response(kit, stream.head, kit.async_body(stream, request), request)

    def close(self) -> None:
        """Give the lease back (requests in flight finish). The transport
        stays usable: its next request takes a new lease."""
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is not None:
            lease.close()

    async def aclose(self) -> None:
        """close(): releasing a lease never waits."""
        self.close()

    def __enter__(self) -> HTTPTransport:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def __aenter__(self) -> HTTPTransport:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()


class AsyncHTTPTransport(HTTPTransport):
    """HTTPTransport under the name httpx gives its async transport: the same
    object already serves both."""
