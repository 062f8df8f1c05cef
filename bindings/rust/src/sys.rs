//! Raw FFI declarations matching `include/esp.h`, one for one.
//!
//! Everything here is `unsafe` to call and follows the C contract: see the
//! header for the meaning of each function. The safe API of this crate is
//! built on these; use them directly only for what the safe API lacks.

#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::os::raw::{c_char, c_int, c_void};

/// A lease on a shared client; 0 is never valid.
pub type esp_client = u64;
/// An asynchronous request; 0 is never valid.
pub type esp_call = u64;
/// A blocking pull reader; 0 is never valid.
pub type esp_stream = u64;

/// Success.
pub const ESP_OK: c_int = 0;
/// Bad argument: NULL, CR/LF in a header, bad size.
pub const ESP_EINVAL: c_int = -1;
/// Config JSON malformed, unknown key, wrong type.
pub const ESP_ECONFIG: c_int = -2;
/// Handle released, stale or never valid.
pub const ESP_EHANDLE: c_int = -3;
/// Out of memory.
pub const ESP_ENOMEM: c_int = -4;
/// Total, connect, first-byte or idle timeout.
pub const ESP_ETIMEDOUT: c_int = -5;
/// No connection slot within pool_timeout_ms.
pub const ESP_EPOOLTIMEOUT: c_int = -6;
/// DNS, TCP connect, connection refused or reset.
pub const ESP_ECONNECT: c_int = -7;
/// TLS handshake or certificate verification.
pub const ESP_ETLS: c_int = -8;
/// Send/receive failure on an established connection.
pub const ESP_EIO: c_int = -9;
/// The server did not speak HTTP.
pub const ESP_EPROTOCOL: c_int = -10;
/// esp_call_cancel / esp_stream_close.
pub const ESP_ECANCELLED: c_int = -11;
/// The origin's circuit breaker is open.
pub const ESP_ECIRCUIT: c_int = -12;
/// Response larger than max_response_bytes.
pub const ESP_ETOOLARGE: c_int = -13;
/// esp_shutdown ran while the call was in flight.
pub const ESP_ESHUTDOWN: c_int = -14;
/// A bug in libesp.
pub const ESP_EINTERNAL: c_int = -15;
/// esp_stream_next: nothing arrived within its wait.
pub const ESP_EAGAIN: c_int = -16;
/// rate_limit: no budget before the request's timeout.
pub const ESP_ERATELIMITED: c_int = -17;

/// A timeout value meaning "no limit" (timeout_ms and the per-phase ones).
pub const ESP_NO_TIMEOUT: i64 = -1;

/// Do not retry this request, whatever the client's max_retries.
pub const ESP_REQ_NO_RETRY: u32 = 0x1;
/// Streams deliver raw body chunks even for text/event-stream responses.
pub const ESP_REQ_STREAM_RAW: u32 = 0x2;

/// esp_stream_next item kind: `event` is set.
pub const ESP_ITEM_EVENT: c_int = 1;
/// esp_stream_next item kind: `chunk` / `chunk_len` are set.
pub const ESP_ITEM_CHUNK: c_int = 2;

/// Log level: debug.
pub const ESP_LOG_DEBUG: c_int = 10;
/// Log level: info.
pub const ESP_LOG_INFO: c_int = 20;
/// Log level: warn.
pub const ESP_LOG_WARN: c_int = 30;
/// Log level: error.
pub const ESP_LOG_ERROR: c_int = 40;

/// One request header.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct esp_header {
    /// NUL-terminated header name.
    pub name: *const c_char,
    /// NUL-terminated header value.
    pub value: *const c_char,
}

/// A request: see esp.h for each field. The fields after `flags` came in
/// 0.2.0 (`struct_size` tells the library which ones a caller has).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct esp_request_opts {
    /// `size_of::<esp_request_opts>()`.
    pub struct_size: u32,
    /// NULL: GET, or POST when there is a body.
    pub method: *const c_char,
    /// Relative to base_url, or an absolute URL.
    pub path: *const c_char,
    /// Extra headers; they override the client's.
    pub headers: *const esp_header,
    /// Number of `headers`.
    pub header_count: usize,
    /// Body bytes, may be NULL when `body_len` is 0.
    pub body: *const c_void,
    /// Body length.
    pub body_len: usize,
    /// Total timeout; 0: the client's timeout_ms; ESP_NO_TIMEOUT: none.
    pub timeout_ms: i64,
    /// `ESP_REQ_*` flags.
    pub flags: u32,
    /// 0: the client's connect_timeout_ms; ESP_NO_TIMEOUT: none.
    pub connect_timeout_ms: i64,
    /// Longest silence between response bytes; 0: the client's idle_timeout_ms.
    pub read_timeout_ms: i64,
    /// Longest stall while sending the request body; 0: none.
    pub write_timeout_ms: i64,
    /// Longest wait for a connection slot; 0: the client's pool_timeout_ms.
    pub pool_timeout_ms: i64,
    /// Longest wait for the response head, per attempt; 0: the client's
    /// first_byte_timeout_ms; ESP_NO_TIMEOUT: none.
    pub first_byte_timeout_ms: i64,
    /// Longest silence between body bytes once the head arrived; 0: the
    /// client's idle_timeout_ms (none when read_timeout_ms is set).
    pub idle_timeout_ms: i64,
}

/// An opaque response owned by the library.
#[repr(C)]
pub struct esp_response {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// One parsed Server-Sent Event; pointers valid only during the callback
/// or until the next esp_stream_next.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct esp_sse_event {
    /// "message" when the stream named none.
    pub event: *const c_char,
    /// NUL-terminated; `data_len` excludes the NUL.
    pub data: *const c_char,
    /// Length of `data`.
    pub data_len: usize,
    /// Last event id, "" when none.
    pub id: *const c_char,
    /// -1 when this event set none.
    pub retry_ms: i64,
}

/// Callbacks of an asynchronous call; all run on a libesp I/O thread.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct esp_callbacks {
    /// `size_of::<esp_callbacks>()`.
    pub struct_size: u32,
    /// Status and headers, no body; optional.
    pub on_headers: Option<unsafe extern "C" fn(user: *mut c_void, head: *const esp_response)>,
    /// Raw body bytes as they arrive; optional.
    pub on_data: Option<unsafe extern "C" fn(user: *mut c_void, chunk: *const c_void, len: usize)>,
    /// Parsed Server-Sent Events; optional.
    pub on_event: Option<unsafe extern "C" fn(user: *mut c_void, ev: *const esp_sse_event)>,
    /// Required; exactly once per accepted call. `resp` is the callee's to free.
    pub on_complete:
        Option<unsafe extern "C" fn(user: *mut c_void, status: c_int, resp: *mut esp_response)>,
}

/// One item of esp_stream_next.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct esp_stream_item {
    /// `size_of::<esp_stream_item>()`, set by the caller.
    pub struct_size: u32,
    /// ESP_ITEM_EVENT or ESP_ITEM_CHUNK.
    pub kind: c_int,
    /// Set when `kind` is ESP_ITEM_EVENT: the event's 0.1.0 fields.
    pub event: esp_sse_event,
    /// Set when `kind` is ESP_ITEM_CHUNK.
    pub chunk: *const c_void,
    /// Length of `chunk`.
    pub chunk_len: usize,
    /// 0.2.0: the whole event (fields added to esp_sse_event later are read
    /// through it), library-owned and valid like the item; NULL for a chunk.
    pub ev: *const esp_sse_event,
}

/// Tells a non-blocking stream reader that its stream has news (0.2.0).
pub type esp_stream_ready_fn = Option<unsafe extern "C" fn(user: *mut c_void)>;

/// A log sink: one line, key=value fields, no trailing newline.
pub type esp_log_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, level: c_int, line: *const c_char)>;

extern "C" {
    /// ESP_VERSION_NUMBER of the library actually loaded.
    pub fn esp_version() -> u32;
    /// This library's version and libcurl's.
    pub fn esp_version_string() -> *const c_char;

    /// Every config key as JSON: static, never freed; NULL only when memory ran out.
    pub fn esp_config_schema() -> *const c_char;

    /// A fixed, static description of a status code.
    pub fn esp_strerror(status: c_int) -> *const c_char;
    /// The detail of the last failure on this thread; never NULL.
    pub fn esp_last_error() -> *const c_char;

    /// Take a lease on the client for `config_json`.
    pub fn esp_client_get(config_json: *const c_char, out: *mut esp_client) -> c_int;
    /// Drop a lease.
    pub fn esp_client_release(client: esp_client) -> c_int;

    /// Send a request and wait for the whole response.
    pub fn esp_request(
        client: esp_client,
        req: *const esp_request_opts,
        out: *mut *mut esp_response,
    ) -> c_int;

    /// HTTP status of a response.
    pub fn esp_response_status(r: *const esp_response) -> c_int;
    /// The body; `len` may be NULL.
    pub fn esp_response_body(r: *const esp_response, len: *mut usize) -> *const c_void;
    /// A header by case-insensitive name, or NULL.
    pub fn esp_response_header(r: *const esp_response, name: *const c_char) -> *const c_char;
    /// Number of headers.
    pub fn esp_response_header_count(r: *const esp_response) -> usize;
    /// The i-th header in arrival order.
    pub fn esp_response_header_at(
        r: *const esp_response,
        i: usize,
        name: *mut *const c_char,
        value: *mut *const c_char,
    ) -> c_int;
    /// 10, 11 or 20.
    pub fn esp_response_http_version(r: *const esp_response) -> c_int;
    /// Attempts this response took.
    pub fn esp_response_attempts(r: *const esp_response) -> c_int;
    /// Free a response; NULL is a no-op.
    pub fn esp_response_free(r: *mut esp_response);

    /// Start a request; returns at once.
    pub fn esp_request_async(
        client: esp_client,
        req: *const esp_request_opts,
        cb: *const esp_callbacks,
        user: *mut c_void,
        out: *mut esp_call,
    ) -> c_int;
    /// Cancel a call.
    pub fn esp_call_cancel(call: esp_call) -> c_int;
    /// Pause (1) or resume (0) the delivery of a call's body.
    pub fn esp_call_pause(call: esp_call, paused: c_int) -> c_int;

    /// Open a blocking pull reader.
    pub fn esp_stream_open(
        client: esp_client,
        req: *const esp_request_opts,
        out: *mut esp_stream,
        head: *mut *mut esp_response,
    ) -> c_int;
    /// Wait for the next item: 1 item, 0 end, negative failure.
    pub fn esp_stream_next(
        stream: esp_stream,
        timeout_ms: i64,
        item: *mut esp_stream_item,
    ) -> c_int;
    /// Close the reader, cancelling the transfer if unfinished.
    pub fn esp_stream_close(stream: esp_stream) -> c_int;
    /// Start a non-blocking reader; `ready` says when to look (0.2.0).
    pub fn esp_stream_start(
        client: esp_client,
        req: *const esp_request_opts,
        ready: esp_stream_ready_fn,
        user: *mut c_void,
        out: *mut esp_stream,
    ) -> c_int;
    /// The status and headers of a stream, or ESP_EAGAIN (0.2.0).
    pub fn esp_stream_head(stream: esp_stream, head: *mut *mut esp_response) -> c_int;

    /// JSON stats of one client.
    pub fn esp_client_stats(client: esp_client, json: *mut *mut c_char) -> c_int;
    /// JSON stats of the whole process.
    pub fn esp_stats(json: *mut *mut c_char) -> c_int;
    /// Prometheus text exposition.
    pub fn esp_metrics_prometheus(text: *mut *mut c_char) -> c_int;
    /// Install a log sink.
    pub fn esp_set_logger(f: esp_log_fn, user: *mut c_void, min_level: c_int) -> c_int;

    /// Free a string returned by the library.
    pub fn esp_free(p: *mut c_void);
    /// Cancel everything, close every connection, join the I/O threads.
    pub fn esp_shutdown(timeout_ms: i64) -> c_int;
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Sizes and offsets printed by a C program compiled against esp.h on x86_64.
    #[test]
    fn struct_layouts_match_the_c_header() {
        assert_eq!(size_of::<esp_header>(), 16);
        assert_eq!(size_of::<esp_request_opts>(), 120);
        assert_eq!(offset_of!(esp_request_opts, flags), 64);
        assert_eq!(offset_of!(esp_request_opts, connect_timeout_ms), 72);
        assert_eq!(offset_of!(esp_request_opts, first_byte_timeout_ms), 104);
        assert_eq!(offset_of!(esp_request_opts, idle_timeout_ms), 112);
        assert_eq!(size_of::<esp_sse_event>(), 40);
        assert_eq!(size_of::<esp_callbacks>(), 40);
        assert_eq!(size_of::<esp_stream_item>(), 72);
        assert_eq!(offset_of!(esp_stream_item, kind), 4);
        assert_eq!(offset_of!(esp_stream_item, event), 8);
        assert_eq!(offset_of!(esp_stream_item, chunk), 48);
        assert_eq!(offset_of!(esp_stream_item, chunk_len), 56);
        assert_eq!(offset_of!(esp_stream_item, ev), 64);
    }
}
