use std::ffi::CString;
use std::ptr;
use std::sync::Arc;

use crate::asynchronous::{ResponseFuture, StreamFuture};
use crate::config::Config;
use crate::error::{check, Error, Result};
use crate::request::{Request, Response};
use crate::stream::EventStream;
use crate::sys;

/// A lease on a shared, pooled libesp client.
///
/// Clients with configs equal in canonical form share one pool of
/// connections; each `Client` value is its own lease. `Clone` takes a new
/// lease on the same client and `Drop` releases it; requests in flight
/// finish, and the client lingers `idle_ttl_ms` after its last lease so the
/// next `Client::get` with that config finds its connections warm.
///
/// A `Client` is `Send + Sync`: share it by reference or `Arc`, or clone it.
#[derive(Debug)]
pub struct Client {
    handle: sys::esp_client,
    config_json: Arc<CString>,
}

impl Client {
    /// Take a lease on the client for `config`.
    pub fn get(config: &Config) -> Result<Client> {
        Client::from_json(&config.to_json())
    }

    /// Take a lease on the client for a JSON config (see the README's
    /// config table); a bad config fails with [`Error::Config`] naming the key.
    pub fn from_json(config_json: &str) -> Result<Client> {
        let config_json = CString::new(config_json)
            .map_err(|_| Error::InvalidArgument("config contains a NUL byte".into()))?;
        Client::lease(Arc::new(config_json))
    }

    fn lease(config_json: Arc<CString>) -> Result<Client> {
        let mut handle: sys::esp_client = 0;
        // SAFETY: a valid C string and out pointer.
        check(unsafe { sys::esp_client_get(config_json.as_ptr(), &mut handle) })?;
        Ok(Client {
            handle,
            config_json,
        })
    }

    /// The raw lease handle, for calling [`sys`](crate::sys) functions directly.
    pub fn as_raw(&self) -> sys::esp_client {
        self.handle
    }

    /// Send a request and wait for the whole response, blocking this thread.
    pub fn request(&self, req: &Request) -> Result<Response> {
        let c_request = req.to_c()?;
        let mut raw = ptr::null_mut();
        // SAFETY: the options point into `c_request`, alive for the call.
        check(unsafe { sys::esp_request(self.handle, &c_request.opts(), &mut raw) })?;
        // SAFETY: on success `raw` is a valid response that is ours to free.
        Ok(unsafe { Response::take(raw) })
    }

    /// Send a request and read its body as it arrives, blocking this thread:
    /// returns once the status and headers are in.
    pub fn stream(&self, req: &Request) -> Result<EventStream> {
        let c_request = req.to_c()?;
        let mut handle: sys::esp_stream = 0;
        let mut head = ptr::null_mut();
        // SAFETY: the options point into `c_request`, alive for the call.
        check(unsafe {
            sys::esp_stream_open(self.handle, &c_request.opts(), &mut handle, &mut head)
        })?;
        // SAFETY: on success `head` is a valid response that is ours to free.
        Ok(EventStream::new(handle, unsafe { Response::take(head) }))
    }

    /// Send a request without blocking; the future resolves to the whole
    /// response. Works on any executor (it is woken from libesp's I/O
    /// thread). The request is sent now, not on first poll; dropping the
    /// future before it resolves cancels it.
    pub fn send(&self, req: &Request) -> ResponseFuture {
        ResponseFuture::start(self.handle, req)
    }

    /// Send a request without blocking; the future resolves to an
    /// [`AsyncEventStream`](crate::AsyncEventStream) once the status and
    /// headers are in. Dropping the future or the stream cancels the request.
    pub fn stream_async(&self, req: &Request) -> StreamFuture {
        StreamFuture::start(self.handle, req)
    }

    /// JSON stats of this client: its origins, requests, connections, latency.
    pub fn stats(&self) -> Result<String> {
        // SAFETY: the library fills `out` with a string we then own.
        crate::take_string(|out| unsafe { sys::esp_client_stats(self.handle, out) })
    }
}

impl Clone for Client {
    /// A new lease on the same client.
    ///
    /// # Panics
    /// If libesp refuses a new lease for a config it accepted before, which
    /// only running out of memory can cause.
    fn clone(&self) -> Client {
        Client::lease(Arc::clone(&self.config_json))
            .unwrap_or_else(|error| panic!("libesp refused a new lease on a client: {error}"))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // ESP_EHANDLE here means `shutdown` already invalidated the lease.
        // SAFETY: the handle is ours and released only here.
        unsafe { sys::esp_client_release(self.handle) };
    }
}
