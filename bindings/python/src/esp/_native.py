"""Loading libesp and calling it: cffi in ABI mode, ctypes as a fallback.

Both backends expose the same small set of methods, taking and returning
Python values only, so the rest of the package never touches C types.
cffi is preferred because a callback from libesp's I/O thread costs about a
quarter of what it costs through ctypes (ctypes builds a new Python thread
state for every callback from a foreign thread; cffi keeps one per thread).

Asynchronous calls and streams: every esp_request_async call and every
esp_stream_start stream gets the same module-level callbacks, kept alive for
the life of the process, and only an integer id crosses into C as the `user`
pointer. The callbacks copy what C hands them
(pointers are valid only during the callback) and pass it on to the sink set
with set_sink().
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

from ._errors import LibraryNotFoundError, error_for
from ._types import Response, ServerSentEvent, new_event

# Copied from include/esp.h (the parts a binding calls), minus the macros cffi
# cannot parse. Keep in step with the header.
CDEF = """
typedef uint64_t esp_client;
typedef uint64_t esp_call;
typedef uint64_t esp_stream;

uint32_t esp_version(void);
const char *esp_version_string(void);
const char *esp_config_schema(void);
const char *esp_strerror(int status);
const char *esp_last_error(void);
int esp_last_error_sent(void);

int esp_client_get(const char *config_json, esp_client *out);
int esp_client_release(esp_client client);

typedef struct esp_header {
  const char *name;
  const char *value;
} esp_header;

typedef struct esp_request_opts {
  uint32_t struct_size;
  const char *method;
  const char *path;
  const esp_header *headers;
  size_t header_count;
  const void *body;
  size_t body_len;
  int64_t timeout_ms;
  uint32_t flags;
  int64_t connect_timeout_ms;
  int64_t read_timeout_ms;
  int64_t write_timeout_ms;
  int64_t pool_timeout_ms;
  int64_t first_byte_timeout_ms;
  int64_t idle_timeout_ms;
} esp_request_opts;

typedef struct esp_response esp_response;

int esp_request(esp_client client, const esp_request_opts *req,
                esp_response **out);
int esp_response_status(const esp_response *r);
const void *esp_response_body(const esp_response *r, size_t *len);
const char *esp_response_header(const esp_response *r, const char *name);
size_t esp_response_header_count(const esp_response *r);
int esp_response_header_at(const esp_response *r, size_t i,
                           const char **name, const char **value);
int esp_response_http_version(const esp_response *r);
int esp_response_attempts(const esp_response *r);
void esp_response_free(esp_response *r);

typedef struct esp_sse_event {
  const char *event;
  const char *data;
  size_t data_len;
  const char *id;
  int64_t retry_ms;
} esp_sse_event;

typedef struct esp_callbacks {
  uint32_t struct_size;
  void (*on_headers)(void *user, const esp_response *head);
  void (*on_data)(void *user, const void *chunk, size_t len);
  void (*on_event)(void *user, const esp_sse_event *ev);
  void (*on_complete)(void *user, int status, esp_response *resp);
} esp_callbacks;

int esp_request_async(esp_client client, const esp_request_opts *req,
                      const esp_callbacks *cb, void *user, esp_call *out);
int esp_call_cancel(esp_call call);

typedef struct esp_stream_item {
  uint32_t struct_size;
  int kind;
  esp_sse_event event;
  const void *chunk;
  size_t chunk_len;
  const esp_sse_event *ev;
} esp_stream_item;

int esp_stream_open(esp_client client, const esp_request_opts *req,
                    esp_stream *out, esp_response **head);
int esp_stream_next(esp_stream stream, int64_t timeout_ms,
                    esp_stream_item *item);
int esp_stream_close(esp_stream stream);
typedef void (*esp_stream_ready_fn)(void *user);
int esp_stream_start(esp_client client, const esp_request_opts *req,
                     esp_stream_ready_fn ready, void *user, esp_stream *out);
int esp_stream_head(esp_stream stream, esp_response **head);

int esp_client_stats(esp_client client, char **json);
int esp_stats(char **json);
int esp_metrics_prometheus(char **text);

void esp_free(void *p);
int esp_shutdown(int64_t timeout_ms);
"""

ESP_EAGAIN = -16
#: A timeout field's value for "no limit" (timeout_ms and the per-phase ones).
ESP_NO_TIMEOUT = -1
ESP_REQ_NO_RETRY = 0x1
ESP_REQ_STREAM_RAW = 0x2
ESP_ITEM_EVENT = 1

#: What an asynchronous call delivers: the whole response ...
MODE_WHOLE = 0
#: ... or, as a stream, raw body chunks (bytes) whatever the body ...
MODE_RAW = 1
#: ... or parsed SSE events (ServerSentEvent) for text/event-stream bodies
#: and raw chunks for others (libesp decides).
MODE_EVENTS = 2

#: esp_stream_next results that are not items.
END = object()
AGAIN = object()


class RequestSpec(NamedTuple):
    """Everything esp_request_opts carries, already encoded to bytes."""

    method: bytes | None
    path: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    timeout_ms: int
    flags: int
    #: The per-phase timeouts (0: the client's; ESP_NO_TIMEOUT: none).
    connect_timeout_ms: int = 0
    read_timeout_ms: int = 0
    write_timeout_ms: int = 0
    pool_timeout_ms: int = 0
    first_byte_timeout_ms: int = 0
    idle_timeout_ms: int = 0


class PendingResponse:
    """The esp_response of a completed call, converted where it is consumed:
    on the event loop, not in on_complete on libesp's I/O thread. There every
    foreign call would release the GIL, and the I/O thread, with every other
    transfer, would then wait to take it back. take() or discard() it once."""

    __slots__ = ("_backend", "_resp")

    def __init__(self, backend: Any, resp: Any) -> None:
        self._backend = backend
        self._resp = resp

    def take(self) -> Response:
        """The Response (the C response is freed)."""
        resp, self._resp = self._resp, None
        address = self._backend._address(resp)
        try:
            return self._backend._quick.read(address, with_body=True)
        finally:
            self._backend._quick.response_free(address)

    def discard(self) -> None:
        """Free it unread (nobody is waiting for it any more)."""
        resp, self._resp = self._resp, None
        if resp is not None:
            self._backend._quick.response_free(self._backend._address(resp))


class _NoSink:
    """Drops callbacks that arrive before a sink is set (none should)."""

    def ready(self, stream_id: int) -> None:
        pass

    def complete(
        self, call_id: int, status: int, resp: PendingResponse | None, message: str, sent: bool
    ) -> None:
        if resp is not None:
            resp.discard()


def _event_from(event: Any, data: bytes, ident: Any, retry_ms: int, to_str) -> ServerSentEvent:
    return new_event(
        to_str(event) if event else "message",
        data.decode("utf-8", errors="replace"),
        to_str(ident) if ident else "",
        retry_ms if retry_ms >= 0 else None,
    )


# Header fields decoded once and shared by every head that has them: a live
# stream keeps its head for its whole life, and thousands of heads then hold
# one copy of each name and of the pairs that repeat (content-type, server,
# the same date), not one each. Bounded: pairs with unique values (request
# ids) refill the pairs and empty them now and then; names stay.
_header_pairs: dict[tuple[bytes, bytes], tuple[str, str]] = {}
_header_names: dict[bytes, str] = {}
_HEADER_PAIRS_KEPT = 1024
_HEADER_NAMES_KEPT = 512


def _header_pair(name: bytes, value: bytes) -> tuple[str, str]:
    key = (name, value)
    pair = _header_pairs.get(key)
    if pair is None:
        text = _header_names.get(name)
        if text is None:
            text = name.decode("latin-1")
            if len(_header_names) < _HEADER_NAMES_KEPT:
                _header_names[name] = text
        pair = (text, value.decode("latin-1"))
        if len(_header_pairs) >= _HEADER_PAIRS_KEPT:
            _header_pairs.clear()
        _header_pairs[key] = pair
    return pair


class _GilHeldCalls:
    """Quick libesp calls made without releasing the GIL (ctypes.PyDLL): a
    response's accessors (they read memory the caller owns) and
    esp_stream_next / esp_stream_head with no wait (esp.h allows them inside
    callbacks, so libesp's I/O thread holds no lock they need while it runs
    a callback, which here waits for the GIL). cffi and CDLL release the GIL
    on every call: that lets the I/O thread, waiting to deliver a callback,
    take it, and the calling thread then waits to win it back, up to the
    interpreter's switch interval, on every call. esp_request_async,
    esp_call_cancel and esp_response_free are among the calls esp.h allows
    inside callbacks too, and none of them waits for the network."""

    def __init__(self, path: str) -> None:
        lib = ctypes.PyDLL(path)
        vp, u64 = ctypes.c_void_p, ctypes.c_uint64
        for fname, restype, argtypes in (
            ("esp_stream_next", ctypes.c_int, [u64, ctypes.c_int64, vp]),
            ("esp_stream_head", ctypes.c_int, [u64, ctypes.POINTER(vp)]),
            ("esp_response_status", ctypes.c_int, [vp]),
            ("esp_response_body", vp, [vp, ctypes.POINTER(ctypes.c_size_t)]),
            ("esp_response_header_count", ctypes.c_size_t, [vp]),
            ("esp_response_header_at", ctypes.c_int, [vp, ctypes.c_size_t, _c_char_p_p, _c_char_p_p]),
            ("esp_response_http_version", ctypes.c_int, [vp]),
            ("esp_response_attempts", ctypes.c_int, [vp]),
            ("esp_response_free", None, [vp]),
            ("esp_request_async", ctypes.c_int, [u64, vp, vp, vp, vp]),
            ("esp_call_cancel", ctypes.c_int, [u64]),
        ):
            fn = getattr(lib, fname)
            fn.restype = restype
            fn.argtypes = argtypes
        self._lib = lib
        self.stream_next = lib.esp_stream_next
        self.stream_head = lib.esp_stream_head
        self.response_free = lib.esp_response_free
        self.request_async = lib.esp_request_async
        self.call_cancel = lib.esp_call_cancel

    def read(self, address: int, with_body: bool) -> Response:
        lib = self._lib
        name, value = ctypes.c_char_p(), ctypes.c_char_p()
        name_ref, value_ref = ctypes.byref(name), ctypes.byref(value)
        headers = []
        for i in range(lib.esp_response_header_count(address)):
            if lib.esp_response_header_at(address, i, name_ref, value_ref) == 0:
                headers.append(_header_pair(name.value or b"", value.value or b""))
        content = b""
        if with_body:
            length = ctypes.c_size_t()
            body = lib.esp_response_body(address, ctypes.byref(length))
            if body and length.value:
                content = ctypes.string_at(body, length.value)
        return Response(
            lib.esp_response_status(address),
            headers,
            content,
            lib.esp_response_http_version(address),
            lib.esp_response_attempts(address),
        )


class _CffiBackend:
    """libesp through cffi in ABI mode (ffi.dlopen: no compiler needed).

    cffi releases the GIL around every C call, so blocking calls
    (esp_request, esp_stream_open, esp_stream_next) let other threads run.
    """

    name = "cffi"

    def __init__(self, path: str) -> None:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(CDEF)
        self.ffi = ffi
        self.lib = ffi.dlopen(path)
        self._quick = _GilHeldCalls(path)
        self.sink: Any = _NoSink()
        self._opts_size = ffi.sizeof("esp_request_opts")
        self._item_size = ffi.sizeof("esp_stream_item")
        # The callbacks live as long as this backend, i.e. the process.
        self._c_complete = ffi.callback("void(void *, int, esp_response *)", self._on_complete)
        self._c_ready = ffi.callback("void(void *)", self._on_ready)
        self._callbacks = ffi.new("esp_callbacks *")
        self._callbacks.struct_size = ffi.sizeof("esp_callbacks")
        self._callbacks.on_complete = self._c_complete
        self._callbacks_address = self._address(self._callbacks)

    # -- helpers ------------------------------------------------------------

    def _sent(self) -> bool:
        return bool(self.lib.esp_last_error_sent())

    def _str(self, p: Any) -> str:
        return self.ffi.string(p).decode("utf-8", errors="replace")

    def _error(self, status: int) -> Exception:
        # esp_last_error is per thread and we are still on the failing thread.
        detail = self._str(self.lib.esp_last_error())
        return error_for(status, detail or self.strerror(status), self._sent())

    def _complete_message(self, status: int) -> str:
        # libesp sets the call's error as this thread's last error just
        # before on_complete.
        if status >= 0:
            return ""
        return self._str(self.lib.esp_last_error()) or self.strerror(status)

    def _check(self, status: int) -> int:
        if status < 0:
            raise self._error(status)
        return status

    def _opts(self, spec: RequestSpec) -> tuple[Any, list]:
        """esp_request_opts for spec, plus the buffers it points into (keep
        them alive as long as the opts)."""
        ffi = self.ffi
        keep: list = []
        opts = ffi.new("esp_request_opts *")
        opts.struct_size = self._opts_size
        if spec.method is not None:
            method = ffi.new("char[]", spec.method)
            keep.append(method)
            opts.method = method
        path = ffi.new("char[]", spec.path)
        keep.append(path)
        opts.path = path
        if spec.headers:
            array = ffi.new("esp_header[]", len(spec.headers))
            keep.append(array)
            for slot, (name, value) in zip(array, spec.headers, strict=False):
                c_name = ffi.new("char[]", name)
                c_value = ffi.new("char[]", value)
                keep.append(c_name)
                keep.append(c_value)
                slot.name = c_name
                slot.value = c_value
            opts.headers = array
            opts.header_count = len(spec.headers)
        if spec.body is not None:
            body = ffi.from_buffer(spec.body)
            keep.append(body)
            opts.body = body
            opts.body_len = len(spec.body)
        _fill_timeouts(opts, spec)
        return opts, keep

    def _address(self, p: Any) -> int:
        """A C pointer as the integer the GIL-holding ctypes calls take."""
        return int(self.ffi.cast("uintptr_t", p))

    def _response(self, r: Any, with_body: bool) -> Response:
        """Copy a C response into a Response (the caller frees r)."""
        return self._quick.read(self._address(r), with_body)

    def _take_string(self, fill: Any) -> str:
        out = self.ffi.new("char **")
        self._check(fill(out))
        try:
            return self._str(out[0])
        finally:
            self.lib.esp_free(out[0])

    # -- calls ----------------------------------------------------------------

    def version_string(self) -> str:
        return self._str(self.lib.esp_version_string())

    def config_schema(self) -> str:
        text = self.lib.esp_config_schema()
        if not text:
            raise MemoryError("esp_config_schema: out of memory")
        return self._str(text)

    def strerror(self, status: int) -> str:
        return self._str(self.lib.esp_strerror(status))

    def client_get(self, config_json: bytes) -> int:
        out = self.ffi.new("esp_client *")
        self._check(self.lib.esp_client_get(config_json, out))
        return int(out[0])

    def client_release(self, client: int) -> int:
        return self.lib.esp_client_release(client)

    def request(self, client: int, spec: RequestSpec) -> Response:
        opts, _keep = self._opts(spec)
        out = self.ffi.new("esp_response **")
        self._check(self.lib.esp_request(client, opts, out))
        try:
            return self._response(out[0], with_body=True)
        finally:
            self.lib.esp_response_free(out[0])

    def stream_open(self, client: int, spec: RequestSpec) -> tuple[int, Response, Any]:
        """Returns (stream handle, head, per-stream item buffer)."""
        opts, _keep = self._opts(spec)
        out = self.ffi.new("esp_stream *")
        head = self.ffi.new("esp_response **")
        self._check(self.lib.esp_stream_open(client, opts, out, head))
        try:
            response = self._response(head[0], with_body=False)
        finally:
            self.lib.esp_response_free(head[0])
        item = self.ffi.new("esp_stream_item *")
        item.struct_size = self._item_size
        return int(out[0]), response, item

    def stream_next(self, stream: int, wait_ms: int, item: Any) -> Any:
        """The next bytes chunk or ServerSentEvent, END, or AGAIN."""
        if wait_ms == 0:
            status = self._quick.stream_next(stream, 0, int(self.ffi.cast("uintptr_t", item)))
        else:  # a wait: the GIL must go
            status = self.lib.esp_stream_next(stream, wait_ms, item)
        if status == 1:
            if item.kind == ESP_ITEM_EVENT:
                # Per event: as few cdata reads and conversions as possible.
                ev = item.event
                name = self.ffi.string(ev.event)
                ident = ev.id
                retry_ms = ev.retry_ms
                return new_event(
                    "message" if name == b"message" else name.decode("utf-8", errors="replace"),
                    self.ffi.unpack(ev.data, ev.data_len).decode("utf-8", errors="replace"),
                    "" if ident[0] == b"\0" else self._str(ident),
                    retry_ms if retry_ms >= 0 else None,
                )
            return self.ffi.buffer(item.chunk, item.chunk_len)[:]
        if status == 0:
            return END
        if status == ESP_EAGAIN:
            return AGAIN
        raise self._error(status)

    def stream_close(self, stream: int) -> int:
        return self.lib.esp_stream_close(stream)

    def stream_start(self, client: int, spec: RequestSpec, stream_id: int) -> tuple[int, Any]:
        """Start a non-blocking stream whose ready callback reaches the sink
        with stream_id; returns (stream handle, per-stream item buffer)."""
        opts, _keep = self._opts(spec)
        out = self.ffi.new("esp_stream *")
        user = self.ffi.cast("void *", stream_id)
        self._check(self.lib.esp_stream_start(client, opts, self._c_ready, user, out))
        item = self.ffi.new("esp_stream_item *")
        item.struct_size = self._item_size
        return int(out[0]), item

    def stream_head(self, stream: int) -> Any:
        """The head (status and headers) of a started stream, or AGAIN."""
        head = ctypes.c_void_p()
        status = self._quick.stream_head(stream, ctypes.byref(head))
        if status == ESP_EAGAIN:
            return AGAIN
        self._check(status)
        try:
            return self._quick.read(head.value, with_body=False)
        finally:
            self.lib.esp_response_free(self.ffi.cast("esp_response *", head.value))

    def request_async(self, client: int, spec: RequestSpec, call_id: int) -> tuple[int, list]:
        """Start a call; returns (esp_call, buffers to keep until it completes)."""
        opts, keep = self._opts(spec)
        out = self.ffi.new("esp_call *")
        address = self._address
        self._check(
            self._quick.request_async(client, address(opts), self._callbacks_address, call_id, address(out))
        )
        return int(out[0]), keep

    def call_cancel(self, call: int) -> int:
        return self._quick.call_cancel(call)

    def client_stats(self, client: int) -> str:
        return self._take_string(lambda out: self.lib.esp_client_stats(client, out))

    def stats(self) -> str:
        return self._take_string(self.lib.esp_stats)

    def metrics_prometheus(self) -> str:
        return self._take_string(self.lib.esp_metrics_prometheus)

    def shutdown(self, timeout_ms: int) -> None:
        self._check(self.lib.esp_shutdown(timeout_ms))

    # -- callbacks, on a libesp I/O thread -----------------------------------

    def _id(self, user: Any) -> int:
        return int(self.ffi.cast("uintptr_t", user))

    def _on_ready(self, user: Any) -> None:
        self.sink.ready(self._id(user))

    def _on_complete(self, user: Any, status: int, resp: Any) -> None:
        # Only what must be read on this thread (a failure's detail is its
        # last error): no foreign call at all for a success.
        message = self._complete_message(status)
        sent = status < 0 and self._sent()
        pending = PendingResponse(self, resp) if resp != self.ffi.NULL else None
        self.sink.complete(self._id(user), status, pending, message, sent)


def _fill_timeouts(opts: Any, spec: RequestSpec) -> None:
    opts.timeout_ms = spec.timeout_ms
    opts.flags = spec.flags
    opts.connect_timeout_ms = spec.connect_timeout_ms
    opts.read_timeout_ms = spec.read_timeout_ms
    opts.write_timeout_ms = spec.write_timeout_ms
    opts.pool_timeout_ms = spec.pool_timeout_ms
    opts.first_byte_timeout_ms = spec.first_byte_timeout_ms
    opts.idle_timeout_ms = spec.idle_timeout_ms


# ---- ctypes fallback -----------------------------------------------------------

_c_char_p_p = ctypes.POINTER(ctypes.c_char_p)


class _Header(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]


class _Opts(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("method", ctypes.c_char_p),
        ("path", ctypes.c_char_p),
        ("headers", ctypes.POINTER(_Header)),
        ("header_count", ctypes.c_size_t),
        ("body", ctypes.c_void_p),
        ("body_len", ctypes.c_size_t),
        ("timeout_ms", ctypes.c_int64),
        ("flags", ctypes.c_uint32),
        ("connect_timeout_ms", ctypes.c_int64),
        ("read_timeout_ms", ctypes.c_int64),
        ("write_timeout_ms", ctypes.c_int64),
        ("pool_timeout_ms", ctypes.c_int64),
        ("first_byte_timeout_ms", ctypes.c_int64),
        ("idle_timeout_ms", ctypes.c_int64),
    ]


class _SseEvent(ctypes.Structure):
    _fields_ = [
        ("event", ctypes.c_char_p),
        ("data", ctypes.c_void_p),
        ("data_len", ctypes.c_size_t),
        ("id", ctypes.c_char_p),
        ("retry_ms", ctypes.c_int64),
    ]


class _StreamItem(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("kind", ctypes.c_int),
        ("event", _SseEvent),
        ("chunk", ctypes.c_void_p),
        ("chunk_len", ctypes.c_size_t),
        ("ev", ctypes.POINTER(_SseEvent)),
    ]


_OnHeaders = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_OnData = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_OnEvent = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_SseEvent))
_OnComplete = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
_OnReady = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Callbacks(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("on_headers", _OnHeaders),
        ("on_data", _OnData),
        ("on_event", _OnEvent),
        ("on_complete", _OnComplete),
    ]


class _CtypesBackend(_CffiBackend):
    """libesp through ctypes, for when cffi is not installed.

    Only the C-facing helpers differ from the cffi backend; the calls that
    merely pass integers through are inherited. ctypes (CDLL) also releases
    the GIL around every call.
    """

    name = "ctypes"

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        u64, i64, c_int, vp = ctypes.c_uint64, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
        signatures = {
            "esp_version": (ctypes.c_uint32, []),
            "esp_version_string": (vp, []),
            "esp_config_schema": (vp, []),
            "esp_strerror": (vp, [c_int]),
            "esp_last_error": (vp, []),
            "esp_last_error_sent": (c_int, []),
            "esp_client_get": (c_int, [ctypes.c_char_p, ctypes.POINTER(u64)]),
            "esp_client_release": (c_int, [u64]),
            "esp_request": (c_int, [u64, ctypes.POINTER(_Opts), ctypes.POINTER(vp)]),
            "esp_response_status": (c_int, [vp]),
            "esp_response_body": (vp, [vp, ctypes.POINTER(ctypes.c_size_t)]),
            "esp_response_header_count": (ctypes.c_size_t, [vp]),
            "esp_response_header_at": (c_int, [vp, ctypes.c_size_t, _c_char_p_p, _c_char_p_p]),
            "esp_response_http_version": (c_int, [vp]),
            "esp_response_attempts": (c_int, [vp]),
            "esp_response_free": (None, [vp]),
            "esp_request_async": (
                c_int,
                [u64, ctypes.POINTER(_Opts), ctypes.POINTER(_Callbacks), vp, ctypes.POINTER(u64)],
            ),
            "esp_call_cancel": (c_int, [u64]),
            "esp_stream_open": (c_int, [u64, ctypes.POINTER(_Opts), ctypes.POINTER(u64), ctypes.POINTER(vp)]),
            "esp_stream_next": (c_int, [u64, i64, ctypes.POINTER(_StreamItem)]),
            "esp_stream_close": (c_int, [u64]),
            "esp_stream_start": (c_int, [u64, ctypes.POINTER(_Opts), _OnReady, vp, ctypes.POINTER(u64)]),
            "esp_stream_head": (c_int, [u64, ctypes.POINTER(vp)]),
            "esp_client_stats": (c_int, [u64, ctypes.POINTER(vp)]),
            "esp_stats": (c_int, [ctypes.POINTER(vp)]),
            "esp_metrics_prometheus": (c_int, [ctypes.POINTER(vp)]),
            "esp_free": (None, [vp]),
            "esp_shutdown": (c_int, [i64]),
        }
        for fname, (restype, argtypes) in signatures.items():
            fn = getattr(lib, fname)
            fn.restype = restype
            fn.argtypes = argtypes
        self.lib = lib
        self._quick = _GilHeldCalls(path)
        self.sink = _NoSink()
        self._c_complete = _OnComplete(self._on_complete)
        self._c_ready = _OnReady(self._on_ready)
        self._callbacks = _Callbacks(ctypes.sizeof(_Callbacks), _OnHeaders(), _OnData(), _OnEvent(), self._c_complete)

    def _str(self, p: Any) -> str:
        raw = ctypes.string_at(p) if p else b""
        return raw.decode("utf-8", errors="replace")

    def _opts(self, spec: RequestSpec) -> tuple[Any, list]:
        keep: list = []
        opts = _Opts()
        opts.struct_size = ctypes.sizeof(_Opts)
        opts.method = spec.method
        opts.path = spec.path
        if spec.headers:
            array = (_Header * len(spec.headers))(*[_Header(n, v) for n, v in spec.headers])
            keep.append(array)
            opts.headers = array
            opts.header_count = len(spec.headers)
        if spec.body is not None:
            body = ctypes.create_string_buffer(spec.body, len(spec.body))
            keep.append(body)
            opts.body = ctypes.cast(body, ctypes.c_void_p)
            opts.body_len = len(spec.body)
        _fill_timeouts(opts, spec)
        # The Structure keeps the bytes it was given for char* fields alive.
        keep.append(spec)
        return ctypes.byref(opts), [opts] + keep

    @staticmethod
    def _address(p: Any) -> int:
        return p.value if isinstance(p, ctypes.c_void_p) else p

    def _response(self, r: Any, with_body: bool) -> Response:
        return self._quick.read(self._address(r), with_body)

    def _take_string(self, fill: Any) -> str:
        out = ctypes.c_void_p()
        self._check(fill(ctypes.byref(out)))
        try:
            return self._str(out.value)
        finally:
            self.lib.esp_free(out)

    def client_get(self, config_json: bytes) -> int:
        out = ctypes.c_uint64()
        self._check(self.lib.esp_client_get(config_json, ctypes.byref(out)))
        return out.value

    def request(self, client: int, spec: RequestSpec) -> Response:
        opts, _keep = self._opts(spec)
        out = ctypes.c_void_p()
        self._check(self.lib.esp_request(client, opts, ctypes.byref(out)))
        try:
            return self._response(out, with_body=True)
        finally:
            self.lib.esp_response_free(out)

    def stream_open(self, client: int, spec: RequestSpec) -> tuple[int, Response, Any]:
        opts, _keep = self._opts(spec)
        out = ctypes.c_uint64()
        head = ctypes.c_void_p()
        self._check(self.lib.esp_stream_open(client, opts, ctypes.byref(out), ctypes.byref(head)))
        try:
            response = self._response(head, with_body=False)
        finally:
            self.lib.esp_response_free(head)
        item = _StreamItem()
        item.struct_size = ctypes.sizeof(_StreamItem)
        return out.value, response, item

    def stream_next(self, stream: int, wait_ms: int, item: Any) -> Any:
        status = self.lib.esp_stream_next(stream, wait_ms, ctypes.byref(item))
        if status == 1:
            if item.kind == ESP_ITEM_EVENT:
                ev = item.event
                data = ctypes.string_at(ev.data, ev.data_len) if ev.data_len else b""
                return _event_from(ev.event, data, ev.id, ev.retry_ms, self._bytes_str)
            return ctypes.string_at(item.chunk, item.chunk_len) if item.chunk_len else b""
        if status == 0:
            return END
        if status == ESP_EAGAIN:
            return AGAIN
        raise self._error(status)

    def stream_start(self, client: int, spec: RequestSpec, stream_id: int) -> tuple[int, Any]:
        opts, _keep = self._opts(spec)
        out = ctypes.c_uint64()
        self._check(self.lib.esp_stream_start(client, opts, self._c_ready, ctypes.c_void_p(stream_id), ctypes.byref(out)))
        item = _StreamItem()
        item.struct_size = ctypes.sizeof(_StreamItem)
        return out.value, item

    def stream_head(self, stream: int) -> Any:
        head = ctypes.c_void_p()
        status = self.lib.esp_stream_head(stream, ctypes.byref(head))
        if status == ESP_EAGAIN:
            return AGAIN
        self._check(status)
        try:
            return self._response(head, with_body=False)
        finally:
            self.lib.esp_response_free(head)

    def request_async(self, client: int, spec: RequestSpec, call_id: int) -> tuple[int, list]:
        opts, keep = self._opts(spec)
        out = ctypes.c_uint64()
        status = self.lib.esp_request_async(
            client, opts, ctypes.byref(self._callbacks), ctypes.c_void_p(call_id), ctypes.byref(out)
        )
        self._check(status)
        return out.value, keep

    @staticmethod
    def _bytes_str(raw: bytes) -> str:
        # ctypes already turned the char* fields into bytes.
        return raw.decode("utf-8", errors="replace")

    def _id(self, user: Any) -> int:
        return int(user or 0)

    def _on_complete(self, user: Any, status: int, resp: Any) -> None:
        message = self._complete_message(status)
        sent = status < 0 and self._sent()
        self.sink.complete(self._id(user), status, PendingResponse(self, resp) if resp else None, message, sent)


# ---- finding and loading the library ------------------------------------------

if sys.platform == "darwin":
    _FILE_NAMES = ("libesp.0.dylib", "libesp.dylib")
elif sys.platform == "win32":
    _FILE_NAMES = ("esp.dll", "libesp.dll")
else:
    _FILE_NAMES = ("libesp.so.0", "libesp.so")

_lock = threading.Lock()
_backend: _CffiBackend | None = None
_loaded_from = ""


def _backend_class() -> type:
    """cffi unless it is missing or ESP_PYTHON_BACKEND=ctypes asks otherwise."""
    if os.environ.get("ESP_PYTHON_BACKEND", "").lower() == "ctypes":
        return _CtypesBackend
    try:
        import cffi  # noqa: F401
    except ImportError:
        return _CtypesBackend
    return _CffiBackend


def _pkg_config_libdir(tried: list[str]) -> str | None:
    try:
        result = subprocess.run(
            ["pkg-config", "--variable=libdir", "esp"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        tried.append(f"pkg-config --variable=libdir esp: {exc}")
        return None
    libdir = result.stdout.strip()
    if result.returncode != 0 or not libdir:
        tried.append("pkg-config --variable=libdir esp: no esp.pc on PKG_CONFIG_PATH")
        return None
    return libdir


def _already_loaded(name: str, tried: list[str]) -> bool:
    """Whether a library with this soname is loaded in the process already
    (dlopen with RTLD_NOLOAD: never loads anything itself)."""
    noload = getattr(os, "RTLD_NOLOAD", None)
    if noload is None:
        return False
    try:
        ctypes.CDLL(name, mode=noload)
    except OSError:
        tried.append(f"{name} already in this process: no")
        return False
    return True


def _candidates(path: str | os.PathLike[str] | None, tried: list[str]) -> Iterator[tuple[str, str]]:
    """(origin, path) pairs to try, in order. An explicit path or ESP_LIBRARY
    is the only candidate: silently loading some other libesp instead of the
    one asked for would be worse than failing."""
    if path:
        yield "esp.load(path)", os.fspath(path)
        return
    env = os.environ.get("ESP_LIBRARY")
    if env:
        yield "ESP_LIBRARY", env
        return
    tried.append("ESP_LIBRARY: not set")
    # One libesp per process: if something loaded one already (a C extension,
    # ctypes, another language's binding), share its registry and pools rather
    # than load a second copy with pools of its own.
    if _already_loaded(_FILE_NAMES[0], tried):
        yield "already loaded in this process", _FILE_NAMES[0]
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib", _FILE_NAMES[0])
    if os.path.exists(bundled):
        yield "bundled with this package", bundled
    else:
        tried.append(f"bundled {bundled!r}: not in this installation")
    libdir = _pkg_config_libdir(tried)
    if libdir:
        for name in _FILE_NAMES:
            yield "pkg-config libdir", os.path.join(libdir, name)
    for name in _FILE_NAMES:
        yield "system loader", name
    found = ctypes.util.find_library("esp")
    if found:
        yield "ctypes.util.find_library", found
    else:
        tried.append("ctypes.util.find_library('esp'): not found")


def load(path: str | os.PathLike[str] | None = None) -> str:
    """Load libesp and return where it was loaded from.

    Looks at ``path`` if given, else the ESP_LIBRARY environment variable if
    set, else a libesp.so.0 already loaded in the process (so languages in one
    process share one pool), else the copy bundled in the wheel, else
    ``pkg-config --variable=libdir esp``, else the system loader
    (LD_LIBRARY_PATH, ld.so.cache). Called implicitly by the first Client;
    call it yourself to choose the file. Loading a second, different file in
    one process is an error: the process shares one libesp.
    """
    global _backend, _loaded_from
    with _lock:
        if _backend is not None:
            if path and os.path.realpath(os.fspath(path)) != os.path.realpath(_loaded_from):
                raise LibraryNotFoundError(
                    f"libesp is already loaded from {_loaded_from!r}; cannot also load {os.fspath(path)!r}"
                )
            return _loaded_from
        cls = _backend_class()
        tried: list[str] = []
        for origin, candidate in _candidates(path, tried):
            try:
                backend = cls(candidate)
            except OSError as exc:
                # cffi appends a paragraph about find_library that repeats
                # what the next candidates say.
                reason = str(exc).split("  Additionally,")[0]
                tried.append(f"{origin} {candidate!r}: {reason}")
                continue
            backend.sink = _pending_sink
            _backend, _loaded_from = backend, candidate
            return candidate
        raise LibraryNotFoundError(
            "could not load libesp. Set ESP_LIBRARY to the path of libesp.so, call "
            "esp.load(path), or install libesp where pkg-config or the system loader "
            "finds it. Tried: " + "; ".join(tried)
        )


def backend() -> _CffiBackend:
    """The loaded backend, loading libesp the default way on first use."""
    if _backend is None:
        load()
    assert _backend is not None
    return _backend


_pending_sink: Any = _NoSink()


def set_sink(sink: Any) -> None:
    """Route asynchronous callbacks to sink (set once, by the client module)."""
    global _pending_sink
    _pending_sink = sink
    if _backend is not None:
        _backend.sink = sink
