"""esp.Client: a lease on a shared libesp client, with sync, threaded and
async (asyncio or trio) APIs.

Nothing here is bound to an event loop or a thread: every asynchronous call
looks up the running loop when it starts, and completions come back to that
loop through its thread-safe scheduling call (see _aio.py). So one Client serves any number of
threads and event loops, one after the other or at once.
"""

from __future__ import annotations

import itertools
import json as _json
import math
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from . import _native
from ._aio import LoopClosed, current_port
from ._errors import InvalidArgumentError, error_for
from ._native import AGAIN, END, MODE_EVENTS, MODE_RAW, RequestSpec
from ._types import Headers, Response, ServerSentEvent

#: Request headers: a mapping or a sequence of (name, value) pairs.
HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None
#: What a stream yields: parsed SSE events, or raw bytes for other bodies.
StreamItem = ServerSentEvent | bytes

# A request's json= body: compact, UTF-8 as is. One encoder for every call
# (json.dumps with options builds a new one each time).
_JSON_BODY = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

# esp_stream_next waits in slices this long so that Ctrl-C (handled by Python
# between C calls) can interrupt a blocked iteration.
_WAIT_SLICE_MS = 500


def _encode_headers(headers: HeadersArg) -> list[tuple[bytes, bytes]]:
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name).encode("latin-1"), str(value).encode("latin-1")) for name, value in pairs]


def _timeout_ms(timeout: float | None, name: str = "timeout") -> int:
    """Seconds -> the milliseconds esp_request_opts wants (0: the client's,
    ESP_NO_TIMEOUT for math.inf: none)."""
    if timeout is None:
        return 0
    if timeout == math.inf:
        return _native.ESP_NO_TIMEOUT
    if not timeout > 0:
        raise ValueError(f"{name} must be positive seconds, math.inf or None, got {timeout!r}")
    return max(1, round(timeout * 1000))


def _refuse(message: str) -> None:
    raise InvalidArgumentError(InvalidArgumentError.status_code, message)


def refuse_nul(spec: RequestSpec) -> RequestSpec:
    """spec, unless one of its strings holds a NUL byte: C would read it only
    up to the NUL and send the rest cut off. Refused as libesp refuses CR or
    LF in a header (InvalidArgumentError, nothing sent), in libesp's words for
    a bad method, path or header name; a header value is not quoted (it may
    be a key)."""
    nul = b"\0"
    if spec.method is not None and nul in spec.method:
        _refuse("method is not a valid HTTP method token")
    if nul in spec.path:
        _refuse("path contains white space or control characters")
    for name, value in spec.headers:
        if nul in name:
            _refuse(f"header {name.decode('latin-1')!r} has an invalid name")
        if nul in value:
            _refuse(f"header '{name.decode('latin-1')}' value contains a NUL byte")
    return spec


def build_spec(
    path: str,
    *,
    method: str | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    headers: HeadersArg = None,
    timeout: float | None = None,
    first_byte_timeout: float | None = None,
    idle_timeout: float | None = None,
    retry: bool = True,
    raw: bool = False,
) -> RequestSpec:
    """Encode the keyword arguments of Client.request into a RequestSpec."""
    encoded = _encode_headers(headers)
    body: bytes | None
    if json is not None:
        if content is not None:
            raise ValueError("pass either json= or content=, not both")
        # libesp sends content-type: application/json with any body unless
        # the caller set another.
        body = _JSON_BODY.encode(json).encode("utf-8")
    elif isinstance(content, str):
        body = content.encode("utf-8")
    else:
        body = content
    flags = (0 if retry else _native.ESP_REQ_NO_RETRY) | (_native.ESP_REQ_STREAM_RAW if raw else 0)
    return refuse_nul(
        RequestSpec(
            method=method.upper().encode("ascii") if method else None,
            path=path.encode("utf-8"),
            headers=encoded,
            body=body,
            timeout_ms=_timeout_ms(timeout),
            flags=flags,
            first_byte_timeout_ms=_timeout_ms(first_byte_timeout, "first_byte_timeout"),
            idle_timeout_ms=_timeout_ms(idle_timeout, "idle_timeout"),
        )
    )


# ---- asynchronous calls ---------------------------------------------------------


def _settle(future: Any, result: Any, error: BaseException | None) -> None:
    """Resolve a future on its loop, unless the awaiting task gave up."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_call(future: Any, resp: _native.PendingResponse | None, error: BaseException | None) -> None:
    """_settle for a call's completion, on its loop: the response is
    converted here, or freed when the awaiting task gave up."""
    if future.done() or error is not None:
        if resp is not None:
            resp.discard()
        _settle(future, None, error)
        return
    try:
        response = resp.take() if resp is not None else None
    except Exception as exc:  # noqa: BLE001 - the awaiting task gets it
        future.set_exception(exc)
        return
    future.set_result(response)


class AsyncCall:
    """One esp_request_async call, as seen from the event loop that made it:
    libesp's I/O thread completes it and posts the response to that loop."""

    def __init__(self, port: Any) -> None:
        #: The event loop (asyncio or trio) that made the call.
        self.port = port
        #: Resolves to the whole Response.
        self.head: Any = port.future()
        #: The esp_call handle, once esp_request_async has returned it.
        self.handle = 0
        #: The request's C buffers, kept until the call completes.
        self.keep: list = []
        self._finished = False

    def on_complete(self, status: int, resp: _native.PendingResponse | None, message: str, sent: bool) -> None:
        error = error_for(status, message, sent) if status < 0 else None
        self._finished = True
        self.keep = []
        try:
            self.port.post(_settle_call, self.head, resp, error)
        except LoopClosed:  # nobody is left to tell
            if resp is not None:
                resp.discard()

    def cancel(self) -> None:
        """Cancel the transfer unless it already completed."""
        if not self._finished and self.handle:
            _native.backend().call_cancel(self.handle)


class _StreamWaker:
    """Wakes the loop reading a libesp stream (esp_stream_start) when
    libesp's ready callback says there is news. libesp buffers the body,
    pauses the transfer while the reader is behind and decides between SSE
    events and raw chunks; this only waits."""

    __slots__ = ("port", "_lock", "_waiter", "_news")

    def __init__(self, port: Any) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._waiter: Any = None
        # A ready that found no waiter: the next wait returns at once.
        self._news = False

    def ready(self) -> None:
        """On libesp's I/O thread."""
        with self._lock:
            waiter, self._waiter = self._waiter, None
            if waiter is None:
                self._news = True
        if waiter is not None:
            try:
                self.port.post(_settle, waiter, None, None)
            except LoopClosed:
                pass

    async def poll(self, attempt: Any) -> Any:
        """attempt() until it returns something other than AGAIN, waiting for
        ready in between."""
        result = attempt()
        if result is AGAIN:
            result = await self.after_again(attempt)
        return result

    async def after_again(self, attempt: Any) -> Any:
        """poll() once attempt() has returned AGAIN: wait for the ready that
        AGAIN armed, then look again. A ready that came before the waiter
        was in place left news behind, so none is missed; stale news costs
        one look."""
        while True:
            with self._lock:
                news, self._news = self._news, False
                waiter = None if news else self.port.future()
                self._waiter = waiter
            if waiter is not None:
                await waiter
            result = attempt()
            if result is not AGAIN:
                return result


class _Dispatcher:
    """Routes the module-level C callbacks to AsyncCall and _StreamWaker
    objects by integer id.

    Plain dict operations are atomic under the GIL, so no lock is needed, and
    none can be left held in a forked child.
    """

    def __init__(self) -> None:
        self.calls: dict[int, AsyncCall] = {}
        self.streams: dict[int, _StreamWaker] = {}
        self._ids = itertools.count(1)

    def register(self, table: dict[int, Any], target: Any) -> int:
        key = next(self._ids)
        table[key] = target
        return key

    def ready(self, stream_id: int) -> None:
        waker = self.streams.get(stream_id)
        if waker is not None:
            waker.ready()

    def complete(
        self, call_id: int, status: int, resp: _native.PendingResponse | None, message: str, sent: bool
    ) -> None:
        call = self.calls.pop(call_id, None)
        if call is not None:
            call.on_complete(status, resp, message, sent)
        elif resp is not None:  # a call forgotten at a fork
            resp.discard()


_dispatcher = _Dispatcher()
_native.set_sink(_dispatcher)


def _forget_parent_calls() -> None:
    # A forked child inherits the parent's pending calls and streams, which
    # will never complete here; their loops are the parent's.
    _dispatcher.calls.clear()
    _dispatcher.streams.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_calls)


async def start_call(client_handle: int, spec: RequestSpec) -> AsyncCall:
    """Start an esp_request_async call bound to the running loop (asyncio or
    trio) and wait for its whole response (in call.head)."""
    call = AsyncCall(current_port())
    call_id = _dispatcher.register(_dispatcher.calls, call)
    try:
        call.handle, call.keep = _native.backend().request_async(client_handle, spec, call_id)
    except BaseException:
        _dispatcher.calls.pop(call_id, None)
        raise
    try:
        await call.head
    except BaseException:
        # Cancelled (asyncio or trio): stop the transfer. After a failure
        # the call is already finished and cancel() does nothing.
        call.cancel()
        raise
    return call


def _close_stream(backend: Any, handle: int, stream_id: int) -> None:
    backend.stream_close(handle)  # ready never runs after this returns
    _dispatcher.streams.pop(stream_id, None)


# ---- streams ------------------------------------------------------------------------


class Stream:
    """A streamed response being read on the calling thread (esp_stream_*).

    Iterating yields ServerSentEvent objects for text/event-stream bodies
    (bytes chunks for other bodies, or for every body when opened with
    raw=True). Close it, or use it in a ``with`` block, to cancel a transfer
    you stop reading; a forgotten stream is closed when garbage-collected.
    """

    def __init__(self, client: Client, spec: RequestSpec) -> None:
        backend = _native.backend()
        self._backend = backend
        self._handle, head, self._item = backend.stream_open(client.handle, spec)
        #: The status and headers (no body).
        self.head: Response = head
        self._finalizer = weakref.finalize(self, backend.stream_close, self._handle)

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.head.status

    @property
    def headers(self) -> Headers:
        """The response headers."""
        return self.head.headers

    def __iter__(self) -> Iterator[StreamItem]:
        return self

    def __next__(self) -> StreamItem:
        while self._finalizer.alive:
            try:
                item = self._backend.stream_next(self._handle, _WAIT_SLICE_MS, self._item)
            except BaseException:
                self.close()
                raise
            if item is AGAIN:
                continue
            if item is END:
                self.close()
                break
            return item
        raise StopIteration

    def read(self) -> bytes:
        """The rest of a raw body, joined (use iteration for SSE)."""
        return b"".join(item for item in self if isinstance(item, bytes))

    def close(self) -> None:
        """Close the stream, cancelling the transfer if it is unfinished."""
        self._finalizer()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class AsyncStream:
    """A streamed response read from an asyncio or trio event loop.

    Use ``async with client.astream(...) as stream`` (the request is sent on
    entry, which returns once the headers are in) and ``async for item in
    stream``; ``async for item in client.astream(...)`` alone also works.
    libesp pauses the transfer while the reader is more than the client's
    stream_buffer_bytes (1 MiB) behind.
    """

    # Thousands may be live at once: no per-instance dict.
    __slots__ = ("_client", "_spec", "_handle", "_item", "_waker", "_head", "_finalizer", "__weakref__")

    def __init__(self, client: Client, spec: RequestSpec, mode: int) -> None:
        # The Client itself, not just its handle: the request is sent later,
        # and the lease must still be held then.
        self._client = client
        if mode == MODE_RAW:
            spec = spec._replace(flags=spec.flags | _native.ESP_REQ_STREAM_RAW)
        self._spec: RequestSpec | None = spec  # dropped once sent: it may hold a large body
        self._handle = 0
        self._item: Any = None
        self._waker: _StreamWaker | None = None
        self._head: Response | None = None
        self._finalizer: weakref.finalize | None = None

    async def start(self) -> AsyncStream:
        """Send the request and wait for the headers (idempotent)."""
        if self._waker is None:
            backend = _native.backend()
            waker = _StreamWaker(current_port())
            stream_id = _dispatcher.register(_dispatcher.streams, waker)
            assert self._spec is not None
            try:
                self._handle, self._item = backend.stream_start(self._client.handle, self._spec, stream_id)
            except BaseException:
                _dispatcher.streams.pop(stream_id, None)
                raise
            self._spec = None
            self._waker = waker
            self._finalizer = weakref.finalize(self, _close_stream, backend, self._handle, stream_id)
        if self._head is None:
            try:
                self._head = await self._waker.poll(lambda: _native.backend().stream_head(self._handle))
            except BaseException:
                await self.aclose()
                raise
        return self

    @property
    def head(self) -> Response:
        """The status and headers (no body); available once started."""
        if self._head is None:
            raise RuntimeError("the stream has not started: use it in 'async with' or iterate it")
        return self._head

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.head.status

    @property
    def headers(self) -> Headers:
        """The response headers."""
        return self.head.headers

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> StreamItem:
        if self._head is None:
            await self.start()
        assert self._waker is not None and self._finalizer is not None
        if not self._finalizer.alive:
            raise StopAsyncIteration
        backend = _native.backend()
        handle, item_buffer = self._handle, self._item
        try:
            # Most items are buffered already: taken without a wait (no
            # future, no closure).
            item = backend.stream_next(handle, 0, item_buffer)
            if item is AGAIN:
                item = await self._waker.after_again(lambda: backend.stream_next(handle, 0, item_buffer))
        except BaseException:
            await self.aclose()
            raise
        if item is END:
            await self.aclose()
            raise StopAsyncIteration
        return item

    async def aread(self) -> bytes:
        """The rest of a raw body, joined (use iteration for SSE)."""
        return b"".join([item async for item in self if isinstance(item, bytes)])

    async def aclose(self) -> None:
        """Cancel the transfer if it is unfinished."""
        if self._finalizer is not None:
            self._finalizer()

    async def __aenter__(self) -> AsyncStream:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


# ---- the client -----------------------------------------------------------------------


def _release(backend: Any, handle: int) -> None:
    backend.client_release(handle)


class Client:
    """A lease on the libesp client for a config.

    Clients with equal configs (key order and defaults do not matter) share
    one native client and its connection pools; connections are shared per
    origin even between different configs. Creating a Client is cheap: make
    one per agent, per request or per process, as suits the code.

    ``config`` is the JSON config of include/esp.h as a dict; keyword
    arguments are merged into it, so ``Client(provider="anthropic",
    api_key_env="ANTHROPIC_API_KEY")`` works. libesp validates it and raises
    ConfigError naming any bad key.

    A Client may be used from any thread and any asyncio or trio event loop. Close it
    with close() / aclose() or a ``with`` / ``async with`` block; a forgotten
    Client releases its lease when garbage-collected. Closing never cuts off
    a request already in flight.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        merged = dict(config or {})
        merged.update(kwargs)
        backend = _native.backend()
        self._handle = backend.client_get(_json.dumps(merged).encode("utf-8"))
        self._finalizer = weakref.finalize(self, _release, backend, self._handle)

    @property
    def handle(self) -> int:
        """The esp_client lease handle (for passing to other libesp users)."""
        return self._handle

    @property
    def closed(self) -> bool:
        """True after close()."""
        return not self._finalizer.alive

    def request(
        self,
        path: str,
        *,
        method: str | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: HeadersArg = None,
        timeout: float | None = None,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
        retry: bool = True,
    ) -> Response:
        """Send a request and return the whole response, blocking this thread
        (other Python threads run meanwhile).

        ``path`` is relative to the config's base_url, or an absolute URL.
        ``method`` defaults to GET, or POST when there is a body. ``json`` is
        serialized; ``content`` is sent as is (with content-type
        application/json unless ``headers`` says otherwise).
        ``timeout`` is the whole request in seconds (None: the config's
        timeout_ms). ``first_byte_timeout`` bounds the wait for the
        response's status and headers, per attempt (None: the config's
        first_byte_timeout_ms); ``idle_timeout`` bounds a silence inside the
        body once the head is in (None: the config's idle_timeout_ms). Each
        is seconds, ``math.inf`` for no limit, and fails with TimeoutError
        saying which ("first-byte timeout", "idle timeout").
        ``retry=False`` sends it once whatever max_retries says. A NUL byte in
        the method, path or a header raises InvalidArgumentError, nothing
        sent.
        Raises an EspError subclass on transport failures; HTTP error
        statuses are returned as responses.
        """
        spec = build_spec(
            path,
            method=method,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=idle_timeout,
            retry=retry,
        )
        return _native.backend().request(self._handle, spec)

    def stream(
        self,
        path: str,
        *,
        method: str | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: HeadersArg = None,
        timeout: float | None = None,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
        retry: bool = True,
        raw: bool = False,
    ) -> Stream:
        """Send a request and return a Stream once the headers are in.

        Iterate it for ServerSentEvent objects (text/event-stream bodies) or
        bytes chunks (other bodies, or every body with ``raw=True``). Other
        arguments as for request().
        """
        spec = build_spec(
            path,
            method=method,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=idle_timeout,
            retry=retry,
            raw=raw,
        )
        return Stream(self, spec)

    async def arequest(
        self,
        path: str,
        *,
        method: str | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: HeadersArg = None,
        timeout: float | None = None,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
        retry: bool = True,
    ) -> Response:
        """request() for asyncio and trio: never blocks the event loop and
        works on whichever loop awaits it. Cancelling the awaiting task
        cancels the transfer."""
        spec = build_spec(
            path,
            method=method,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=idle_timeout,
            retry=retry,
        )
        call = await start_call(self._handle, spec)
        return call.head.result()

    def astream(
        self,
        path: str,
        *,
        method: str | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: HeadersArg = None,
        timeout: float | None = None,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
        retry: bool = True,
        raw: bool = False,
    ) -> AsyncStream:
        """stream() for asyncio and trio: ``async with client.astream(...) as s:
        async for event in s``. Arguments as for stream()."""
        spec = build_spec(
            path,
            method=method,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=idle_timeout,
            retry=retry,
            raw=raw,
        )
        return AsyncStream(self, spec, MODE_RAW if raw else MODE_EVENTS)

    def stats(self) -> dict[str, Any]:
        """This client's libesp stats (origins, requests, connections,
        latency) as a dict."""
        return _json.loads(_native.backend().client_stats(self._handle))

    def close(self) -> None:
        """Release the lease. Requests in flight finish; the shared native
        client lingers for idle_ttl_ms in case another lease comes. Calling
        it again does nothing."""
        self._finalizer()

    async def aclose(self) -> None:
        """close(), for ``async with`` and symmetry with async libraries:
        releasing a lease never waits, so no event loop is needed."""
        self.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"handle={self._handle:#x}"
        return f"<esp.Client {state}>"
