//! Safe Rust binding of libesp: one shared, pooled, config-keyed HTTP client
//! for LLM provider APIs, in native code, for every language in the process.
//!
//! The binding is thin: config validation, retries, timeouts, pooling and
//! SSE parsing all happen in libesp. This crate maps its lifecycle onto Rust:
//! a [`Client`] is a lease (`Clone` takes another, `Drop` releases it), calls
//! are blocking ([`Client::request`], [`Client::stream`]) or futures for any
//! executor ([`Client::send`], [`Client::stream_async`]), and dropping an
//! unfinished future or stream cancels its request.
//!
//! ```no_run
//! use libesp::{Client, Config, Request};
//!
//! # fn main() -> Result<(), libesp::Error> {
//! let client = Client::get(&Config::default().provider("openai").api_key_env("OPENAI_API_KEY"))?;
//! let request = Request::post("chat/completions").json(&serde_json::json!({
//!     "model": "gpt-4o-mini",
//!     "messages": [{"role": "user", "content": "Hello"}],
//! }))?;
//! let response = client.request(&request)?;
//! println!("{} {}", response.status(), response.text());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod asynchronous;
mod client;
mod config;
mod error;
mod request;
mod stream;
pub mod sys;

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::time::Duration;

pub use asynchronous::{AsyncEventStream, ResponseFuture, StreamFuture};
pub use client::Client;
pub use config::{Config, Deployment, RateLimit, SharedState};
pub use error::{Error, Result};
pub use request::{Request, Response};
pub use stream::{Event, EventStream, SseEvent};

/// Call `f` with an out pointer for a library-allocated string, and return
/// that string, freed with esp_free.
pub(crate) fn take_string(f: impl FnOnce(*mut *mut c_char) -> c_int) -> Result<String> {
    let mut raw: *mut c_char = ptr::null_mut();
    error::check(f(&mut raw))?;
    // SAFETY: on success `raw` is a NUL-terminated string we own.
    let text = unsafe { CStr::from_ptr(raw) }
        .to_string_lossy()
        .into_owned();
    unsafe { sys::esp_free(raw.cast()) };
    Ok(text)
}

/// JSON stats of the whole process: the registry, every client and origin.
pub fn stats() -> Result<String> {
    // SAFETY: the library fills `out` with a string we then own.
    take_string(|out| unsafe { sys::esp_stats(out) })
}

/// The same numbers as [`stats`] in the Prometheus text exposition format.
pub fn metrics_prometheus() -> Result<String> {
    // SAFETY: the library fills `out` with a string we then own.
    take_string(|out| unsafe { sys::esp_metrics_prometheus(out) })
}

/// The version number of the loaded library (major * 10000 + minor * 100 + patch).
pub fn version() -> u32 {
    // SAFETY: no arguments, no preconditions.
    unsafe { sys::esp_version() }
}

/// The loaded library's version and libcurl's, e.g. "0.1.0 (libcurl/7.88.1 ...)".
pub fn version_string() -> String {
    // SAFETY: a static NUL-terminated string.
    unsafe { CStr::from_ptr(sys::esp_version_string()) }
        .to_string_lossy()
        .into_owned()
}

/// libesp's table of config keys as JSON (see `esp_config_schema` in esp.h):
/// each key's type, default, bounds and doc. [`Config`] has a field for
/// every key (a test holds it to this).
pub fn config_schema() -> Result<&'static str> {
    // SAFETY: no arguments; the text is static and never freed.
    let text = unsafe { sys::esp_config_schema() };
    if text.is_null() {
        return Err(Error::OutOfMemory(
            "esp_config_schema: out of memory".into(),
        ));
    }
    // SAFETY: a NUL-terminated string that lives as long as the library.
    unsafe { CStr::from_ptr(text) }
        .to_str()
        .map_err(|_| Error::Internal("esp_config_schema: not UTF-8".into()))
}

/// Cancel everything in flight, close every connection and invalidate every
/// lease in the process, waiting up to `timeout` for callbacks to finish.
/// Existing [`Client`]s then fail with [`Error::Handle`]; new ones work.
pub fn shutdown(timeout: Duration) -> Result<()> {
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    // SAFETY: no pointers involved.
    error::check(unsafe { sys::esp_shutdown(timeout_ms) })
}
