use std::borrow::Cow;
use std::ffi::CStr;
use std::mem;
use std::os::raw::c_char;
use std::ptr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;

/// An HTTP request to send through a [`Client`](crate::Client).
///
/// ```
/// use std::time::Duration;
/// let request = libesp::Request::post("chat/completions")
///     .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": []}))
///     .unwrap()
///     .header("x-trace", "42")
///     .timeout(Duration::from_secs(30));
/// assert_eq!(request.method_name(), "POST");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    method: Option<String>,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    first_byte_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    flags: u32,
}

impl Request {
    /// A request with an explicit method. `path` is relative to the client's
    /// base_url, or an absolute URL.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Request {
        Request {
            method: Some(method.into()),
            path: path.into(),
            ..Request::default()
        }
    }

    /// A GET request.
    pub fn get(path: impl Into<String>) -> Request {
        Request::new("GET", path)
    }

    /// A POST request; give it a body with [`body`](Self::body) or [`json`](Self::json).
    pub fn post(path: impl Into<String>) -> Request {
        Request::new("POST", path)
    }

    /// Add a header; it overrides a default header of the client with that name.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body bytes.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Set the body to `value` as JSON, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Request> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::InvalidArgument(format!("request body: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Total timeout of this request, instead of the client's timeout_ms
    /// ([`Duration::MAX`]: no limit).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Longest wait for the response's status and headers, per attempt,
    /// instead of the client's first_byte_timeout_ms ([`Duration::MAX`]: no
    /// limit). A slow first token is bounded apart from the silences inside
    /// the body (see [`idle_timeout`](Self::idle_timeout)); when it fires the
    /// request fails with [`Error::TimedOut`] saying "first-byte timeout".
    #[must_use]
    pub fn first_byte_timeout(mut self, timeout: Duration) -> Request {
        self.first_byte_timeout = Some(timeout);
        self
    }

    /// Longest silence between body bytes once the head has arrived (not
    /// before it), instead of the client's idle_timeout_ms ([`Duration::MAX`]:
    /// no limit); when it fires the request fails with [`Error::TimedOut`]
    /// saying "idle timeout".
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Request {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Never retry this request, whatever the client's max_retries.
    #[must_use]
    pub fn no_retry(mut self) -> Request {
        self.flags |= sys::ESP_REQ_NO_RETRY;
        self
    }

    /// Streams of this request yield raw [`Event::Chunk`](crate::Event::Chunk)s even for
    /// text/event-stream responses.
    #[must_use]
    pub fn raw_stream(mut self) -> Request {
        self.flags |= sys::ESP_REQ_STREAM_RAW;
        self
    }

    /// The method as it will be sent: the one set, or GET / POST by body.
    pub fn method_name(&self) -> &str {
        match &self.method {
            Some(method) => method,
            None if self.body.is_empty() => "GET",
            None => "POST",
        }
    }

    /// The request in C form, valid while the returned value lives: every
    /// string NUL-terminated in one buffer, so a request costs two
    /// allocations (the strings and the header array) whatever its headers.
    pub(crate) fn to_c(&self) -> Result<CRequest<'_>> {
        let mut strings = Vec::with_capacity(
            self.method.as_ref().map_or(0, |m| m.len() + 1)
                + self.path.len()
                + 1
                + self
                    .headers
                    .iter()
                    .map(|(name, value)| name.len() + value.len() + 2)
                    .sum::<usize>(),
        );
        let mut put = |what: &str, s: &str| {
            if s.as_bytes().contains(&0) {
                return Err(Error::InvalidArgument(format!(
                    "{what} contains a NUL byte"
                )));
            }
            let at = strings.len();
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            Ok(at)
        };
        let method = self
            .method
            .as_deref()
            .map(|m| put("method", m))
            .transpose()?;
        let path = put("path", &self.path)?;
        let header_offsets = self
            .headers
            .iter()
            .map(|(name, value)| Ok((put("header name", name)?, put("header value", value)?)))
            .collect::<Result<Vec<_>>>()?;
        // `strings` is complete: its heap buffer no longer moves, not even
        // when the CRequest does, so these pointers live as long as it.
        let at = |offset: usize| strings[offset..].as_ptr().cast::<c_char>();
        let headers = header_offsets
            .iter()
            .map(|&(name, value)| sys::esp_header {
                name: at(name),
                value: at(value),
            })
            .collect();
        Ok(CRequest {
            method: method.map(at),
            path: at(path),
            headers,
            body: &self.body,
            timeout_ms: timeout_millis(self.timeout),
            first_byte_timeout_ms: timeout_millis(self.first_byte_timeout),
            idle_timeout_ms: timeout_millis(self.idle_timeout),
            flags: self.flags,
            _strings: strings,
        })
    }
}

/// A timeout in libesp's milliseconds: `None` is the client's (0),
/// [`Duration::MAX`] none at all, and a positive duration under a millisecond
/// 1 ms rather than 0 (which would mean the client's).
fn timeout_millis(timeout: Option<Duration>) -> i64 {
    match timeout {
        None => 0,
        Some(Duration::MAX) => sys::ESP_NO_TIMEOUT,
        Some(t) => i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1),
    }
}

/// A [`Request`] converted to the C strings and arrays `esp_request_opts` points into.
pub(crate) struct CRequest<'a> {
    /// What `method`, `path` and `headers` point into.
    _strings: Vec<u8>,
    method: Option<*const c_char>,
    path: *const c_char,
    headers: Vec<sys::esp_header>,
    body: &'a [u8],
    timeout_ms: i64,
    first_byte_timeout_ms: i64,
    idle_timeout_ms: i64,
    flags: u32,
}

impl CRequest<'_> {
    /// The options struct; its pointers borrow from `self`.
    pub(crate) fn opts(&self) -> sys::esp_request_opts {
        sys::esp_request_opts {
            struct_size: mem::size_of::<sys::esp_request_opts>() as u32,
            method: self.method.unwrap_or(ptr::null()),
            path: self.path,
            headers: self.headers.as_ptr(),
            header_count: self.headers.len(),
            body: self.body.as_ptr().cast(),
            body_len: self.body.len(),
            timeout_ms: self.timeout_ms,
            flags: self.flags,
            connect_timeout_ms: 0,
            read_timeout_ms: 0,
            write_timeout_ms: 0,
            pool_timeout_ms: 0,
            first_byte_timeout_ms: self.first_byte_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
        }
    }
}

/// An HTTP response: status, headers and the whole body. Any status, 4xx
/// and 5xx included, is a response, not an [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    http_version: u8,
    attempts: u32,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Response {
    /// Take over a response the library handed over; `raw` must be valid.
    /// The status and headers are copied; the body stays where libesp put
    /// it, lent by the esp_response this Response now owns and frees when
    /// dropped (a large completion is never copied).
    pub(crate) unsafe fn take(raw: *mut sys::esp_response) -> Response {
        let count = sys::esp_response_header_count(raw);
        let mut headers = Vec::with_capacity(count);
        for i in 0..count {
            let (mut name, mut value): (*const c_char, *const c_char) = (ptr::null(), ptr::null());
            if sys::esp_response_header_at(raw, i, &mut name, &mut value) == sys::ESP_OK {
                headers.push((lossy(name).into_owned(), lossy(value).into_owned()));
            }
        }
        let mut len = 0usize;
        let data = sys::esp_response_body(raw, &mut len);
        let status = u16::try_from(sys::esp_response_status(raw)).unwrap_or(0);
        let http_version = u8::try_from(sys::esp_response_http_version(raw)).unwrap_or(0);
        let attempts = u32::try_from(sys::esp_response_attempts(raw)).unwrap_or(0);
        let body = if data.is_null() || len == 0 {
            sys::esp_response_free(raw);
            Body::Owned(Vec::new())
        } else {
            Body::Lent(LentBody {
                raw,
                data: data.cast(),
                len,
            })
        };
        Response {
            status,
            http_version,
            attempts,
            headers,
            body,
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// 10 for HTTP/1.0, 11 for HTTP/1.1, 20 for HTTP/2.
    pub fn http_version(&self) -> u8 {
        self.http_version
    }

    /// How many attempts this response took (1 when it was not retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// All headers in arrival order, names in lower case.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header of that name (case-insensitive), or `None`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body bytes (empty for the head of a stream), read in place.
    pub fn body(&self) -> &[u8] {
        self.body.as_slice()
    }

    /// The body as text; invalid UTF-8 is replaced by U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.body())
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(self.body())
    }

    /// The body, taking it out of the response (this copies it out of
    /// libesp's memory; [`body`](Self::body) does not).
    pub fn into_body(self) -> Vec<u8> {
        match self.body {
            Body::Owned(body) => body,
            Body::Lent(lent) => lent.as_slice().to_vec(),
        }
    }
}

/// A response body: lent by the esp_response libesp handed over, or owned
/// (empty bodies, and clones).
enum Body {
    Owned(Vec<u8>),
    Lent(LentBody),
}

impl Body {
    fn as_slice(&self) -> &[u8] {
        match self {
            Body::Owned(body) => body,
            Body::Lent(lent) => lent.as_slice(),
        }
    }
}

impl Clone for Body {
    fn clone(&self) -> Body {
        Body::Owned(self.as_slice().to_vec())
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Body {}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// The body of an esp_response, which this owns and frees when dropped.
struct LentBody {
    raw: *mut sys::esp_response,
    data: *const u8,
    len: usize,
}

// SAFETY: an esp_response is plain memory that nothing changes after libesp
// handed it over; libesp keeps no reference to it, so it may be read from
// any thread and freed from any thread.
unsafe impl Send for LentBody {}
// SAFETY: as above, shared reads of immutable memory.
unsafe impl Sync for LentBody {}

impl LentBody {
    fn as_slice(&self) -> &[u8] {
        // SAFETY: `data` and `len` are the body of `raw`, alive until drop.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for LentBody {
    fn drop(&mut self) {
        // SAFETY: owned since `Response::take`, freed only here.
        unsafe { sys::esp_response_free(self.raw) };
    }
}

/// A C string from the library as text; NULL reads as "".
pub(crate) unsafe fn lossy<'a>(s: *const c_char) -> Cow<'a, str> {
    if s.is_null() {
        Cow::Borrowed("")
    } else {
        CStr::from_ptr(s).to_string_lossy()
    }
}
