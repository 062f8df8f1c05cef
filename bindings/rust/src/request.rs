use std::borrow::Cow;
use std::ffi::{CStr, CString};
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

    /// The request in C form, valid while the returned value lives.
    pub(crate) fn to_c(&self) -> Result<CRequest<'_>> {
        let cstring = |what: &str, s: &str| {
            CString::new(s)
                .map_err(|_| Error::InvalidArgument(format!("{what} contains a NUL byte")))
        };
        let method = self
            .method
            .as_deref()
            .map(|m| cstring("method", m))
            .transpose()?;
        let path = cstring("path", &self.path)?;
        let header_strings = self
            .headers
            .iter()
            .map(|(name, value)| {
                Ok((
                    cstring("header name", name)?,
                    cstring("header value", value)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // The CStrings' heap buffers do not move when `header_strings` does,
        // so these pointers stay valid as long as the CRequest lives.
        let headers = header_strings
            .iter()
            .map(|(name, value)| sys::esp_header {
                name: name.as_ptr(),
                value: value.as_ptr(),
            })
            .collect();
        Ok(CRequest {
            method,
            path,
            _header_strings: header_strings,
            headers,
            body: &self.body,
            timeout_ms: timeout_millis(self.timeout),
            first_byte_timeout_ms: timeout_millis(self.first_byte_timeout),
            idle_timeout_ms: timeout_millis(self.idle_timeout),
            flags: self.flags,
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
    method: Option<CString>,
    path: CString,
    _header_strings: Vec<(CString, CString)>,
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
            method: self.method.as_ref().map_or(ptr::null(), |m| m.as_ptr()),
            path: self.path.as_ptr(),
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
    body: Vec<u8>,
}

impl Response {
    /// Copy a response the library owns; `raw` must be valid, it is not freed.
    pub(crate) unsafe fn copy_from(raw: *const sys::esp_response) -> Response {
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
        let body = if data.is_null() || len == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec()
        };
        Response {
            status: u16::try_from(sys::esp_response_status(raw)).unwrap_or(0),
            http_version: u8::try_from(sys::esp_response_http_version(raw)).unwrap_or(0),
            attempts: u32::try_from(sys::esp_response_attempts(raw)).unwrap_or(0),
            headers,
            body,
        }
    }

    /// Copy and free a response the library handed over; `raw` must be valid.
    pub(crate) unsafe fn take(raw: *mut sys::esp_response) -> Response {
        let response = Response::copy_from(raw);
        sys::esp_response_free(raw);
        response
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

    /// The body bytes (empty for the head of a stream).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text; invalid UTF-8 is replaced by U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    /// The body, taking it out of the response.
    pub fn into_body(self) -> Vec<u8> {
        self.body
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
