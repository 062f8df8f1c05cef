//! Futures over `esp_request_async` and async streams over
//! `esp_stream_start`, for any executor.
//!
//! Each call or stream shares an `Arc<Mutex<..>>` with the C side:
//! `Arc::into_raw` is the user pointer, and that reference belongs to C
//! until `on_complete` (exactly once) or `esp_stream_close` gives it back.
//! Callbacks run on a libesp I/O thread: they only store and wake the task.

use std::future::Future;
use std::mem;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use crate::error::{Error, Result};
use crate::request::{Request, Response};
use crate::stream::Event;
use crate::sys;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held cannot leave these plain fields torn.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Replace the stored waker unless it would wake the same task.
fn store_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

/// The failure on_complete reported; libesp sets the call's detail as the
/// I/O thread's last error right before calling it.
fn completion_error(status: c_int) -> Error {
    Error::last(status)
}

/// Start `req` with `callbacks` and `state` as the user pointer. On success
/// the C call owns one reference to `state`.
fn start<T>(
    client: sys::esp_client,
    req: &Request,
    callbacks: &sys::esp_callbacks,
    state: &Arc<Mutex<T>>,
) -> Result<sys::esp_call> {
    let c_request = req.to_c()?;
    let user = Arc::into_raw(Arc::clone(state)) as *mut c_void;
    let mut call: sys::esp_call = 0;
    // SAFETY: the options and callbacks are valid for the call (libesp copies
    // what it keeps); `user` is a live Arc reference handed to the C call.
    let rc =
        unsafe { sys::esp_request_async(client, &c_request.opts(), callbacks, user, &mut call) };
    if rc != sys::ESP_OK {
        let error = Error::last(rc);
        // SAFETY: on failure no callback is ever called, so the reference is still ours.
        drop(unsafe { Arc::from_raw(user as *const Mutex<T>) });
        return Err(error);
    }
    Ok(call)
}

fn cancel(call: sys::esp_call) {
    // ESP_EHANDLE here only means the call completed meanwhile.
    // SAFETY: cancelling takes a plain handle; stale handles are rejected.
    unsafe { sys::esp_call_cancel(call) };
}

// ---- one response --------------------------------------------------------

#[derive(Default)]
struct Completion {
    outcome: Option<Result<RawResponse>>,
    waker: Option<Waker>,
}

/// A response libesp handed over, not yet converted: the conversion (the
/// headers' copy into Rust memory) happens on the awaiting task, because the completion callback runs on
/// libesp's I/O thread, which holds up every other transfer meanwhile. Freed
/// when dropped (also when the future is dropped before it reads it).
struct RawResponse(*mut sys::esp_response);

// SAFETY: an esp_response is plain memory owned by whoever holds the pointer;
// libesp keeps no reference to it after the completion callback.
unsafe impl Send for RawResponse {}

impl RawResponse {
    fn into_response(self) -> Response {
        let raw = self.0;
        mem::forget(self);
        // SAFETY: the valid response libesp handed over, whose ownership
        // moves from self (forgotten, so not freed here) to the Response.
        unsafe { Response::take(raw) }
    }
}

impl Drop for RawResponse {
    fn drop(&mut self) {
        // SAFETY: owned since the completion callback, freed only here.
        unsafe { sys::esp_response_free(self.0) };
    }
}

unsafe extern "C" fn on_response_complete(
    user: *mut c_void,
    status: c_int,
    resp: *mut sys::esp_response,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `user` came from Arc::into_raw in `start`, and this is the
        // one callback that takes that reference back.
        let state = unsafe { Arc::from_raw(user as *const Mutex<Completion>) };
        let outcome = if status != sys::ESP_OK {
            let error = completion_error(status);
            // SAFETY: NULL on failure by contract; freeing NULL is a no-op.
            unsafe { sys::esp_response_free(resp) };
            Err(error)
        } else if resp.is_null() {
            Err(Error::from_code(
                sys::ESP_EINTERNAL,
                "call completed without a response",
            ))
        } else {
            Ok(RawResponse(resp))
        };
        let waker = {
            let mut completion = lock(&state);
            completion.outcome = Some(outcome);
            completion.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }));
}

static RESPONSE_CALLBACKS: sys::esp_callbacks = sys::esp_callbacks {
    struct_size: mem::size_of::<sys::esp_callbacks>() as u32,
    on_headers: None,
    on_data: None,
    on_event: None,
    on_complete: Some(on_response_complete),
};

/// The response of [`Client::send`](crate::Client::send).
///
/// The request is sent when `send` is called; awaiting this gives its
/// response. Dropping it before it resolves cancels the request.
#[must_use = "dropping the future cancels the request"]
pub struct ResponseFuture {
    state: Arc<Mutex<Completion>>,
    call: Option<sys::esp_call>,
    start_error: Option<Error>,
    done: bool,
}

impl ResponseFuture {
    pub(crate) fn start(client: sys::esp_client, req: &Request) -> ResponseFuture {
        let state = Arc::new(Mutex::new(Completion::default()));
        let (call, start_error) = match start(client, req, &RESPONSE_CALLBACKS, &state) {
            Ok(call) => (Some(call), None),
            Err(error) => (None, Some(error)),
        };
        ResponseFuture {
            state,
            call,
            start_error,
            done: false,
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Response>> {
        let this = self.get_mut();
        assert!(!this.done, "ResponseFuture polled after it resolved");
        if let Some(error) = this.start_error.take() {
            this.done = true;
            return Poll::Ready(Err(error));
        }
        let outcome = {
            let mut completion = lock(&this.state);
            let outcome = completion.outcome.take();
            if outcome.is_none() {
                store_waker(&mut completion.waker, cx);
            }
            outcome
        };
        match outcome {
            Some(outcome) => {
                this.done = true;
                Poll::Ready(outcome.map(RawResponse::into_response))
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for ResponseFuture {
    fn drop(&mut self) {
        if let (false, Some(call)) = (self.done, self.call) {
            cancel(call);
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("call", &self.call)
            .field("done", &self.done)
            .finish()
    }
}

// ---- streamed responses --------------------------------------------------
//
// libesp's non-blocking stream reader (esp_stream_start) buffers the body,
// pauses the transfer while the reader is behind by the client's
// stream_buffer_bytes and decides between SSE events and raw chunks. Rust
// only waits: its ready callback wakes the task, which then takes items with
// esp_stream_next(stream, 0). The task stores its waker before each look, so
// a ready that follows an ESP_EAGAIN always finds it.

/// The task to wake; shared with libesp's ready callback.
type WakeSlot = Mutex<Option<Waker>>;

unsafe extern "C" fn on_stream_ready(user: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the C stream holds a reference to the slot until
        // esp_stream_close has returned, after which ready never runs.
        let slot = unsafe { &*(user as *const WakeSlot) };
        let waker = lock(slot).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }));
}

/// A started libesp stream; closing it (on drop) cancels an unfinished
/// transfer and takes back the C side's reference to the wake slot.
struct StartedStream {
    stream: sys::esp_stream,
    wake: Arc<WakeSlot>,
}

impl StartedStream {
    fn start(client: sys::esp_client, req: &Request) -> Result<StartedStream> {
        let c_request = req.to_c()?;
        let wake: Arc<WakeSlot> = Arc::new(Mutex::new(None));
        let user = Arc::into_raw(Arc::clone(&wake)) as *mut c_void;
        let mut stream: sys::esp_stream = 0;
        // SAFETY: libesp copies the options; `user` is a live Arc reference
        // handed to the stream until esp_stream_close.
        let rc = unsafe {
            sys::esp_stream_start(
                client,
                &c_request.opts(),
                Some(on_stream_ready),
                user,
                &mut stream,
            )
        };
        if rc != sys::ESP_OK {
            let error = Error::last(rc);
            // SAFETY: refused: ready never runs, so the reference is still ours.
            drop(unsafe { Arc::from_raw(user as *const WakeSlot) });
            return Err(error);
        }
        Ok(StartedStream { stream, wake })
    }

    /// Arms the wake-up for this task; call before looking at the stream.
    fn wake_me(&self, cx: &Context<'_>) {
        store_waker(&mut lock(&self.wake), cx);
    }
}

impl Drop for StartedStream {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and closed only here; once
        // esp_stream_close returns, ready never runs again, so the reference
        // handed over in `start` (the same pointer) can be dropped.
        unsafe {
            sys::esp_stream_close(self.stream);
            drop(Arc::from_raw(Arc::as_ptr(&self.wake)));
        }
    }
}

/// Resolves to an [`AsyncEventStream`] once the response's status and
/// headers are in; from [`Client::stream_async`](crate::Client::stream_async).
/// Dropping it before then cancels the request.
#[must_use = "dropping the future cancels the request"]
pub struct StreamFuture {
    started: Option<Result<StartedStream>>,
}

impl StreamFuture {
    pub(crate) fn start(client: sys::esp_client, req: &Request) -> StreamFuture {
        StreamFuture {
            started: Some(StartedStream::start(client, req)),
        }
    }
}

impl Future for StreamFuture {
    type Output = Result<AsyncEventStream>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<AsyncEventStream>> {
        let this = self.get_mut();
        let started = match this
            .started
            .take()
            .expect("StreamFuture polled after it resolved")
        {
            Ok(started) => started,
            Err(error) => return Poll::Ready(Err(error)),
        };
        started.wake_me(cx);
        let mut head: *mut sys::esp_response = ptr::null_mut();
        // SAFETY: a live stream handle; on ESP_OK `head` is ours to free.
        match unsafe { sys::esp_stream_head(started.stream, &mut head) } {
            sys::ESP_OK => Poll::Ready(Ok(AsyncEventStream {
                // SAFETY: a valid response, freed by take.
                head: unsafe { Response::take(head) },
                started,
                finished: false,
            })),
            sys::ESP_EAGAIN => {
                this.started = Some(Ok(started));
                Poll::Pending
            }
            failure => Poll::Ready(Err(Error::last(failure))),
        }
    }
}

impl std::fmt::Debug for StreamFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFuture")
            .field("pending", &matches!(self.started, Some(Ok(_))))
            .finish()
    }
}

/// The events of a streamed response as a [`futures_core::Stream`].
///
/// Yields SSE events for text/event-stream bodies (unless the request was
/// [`raw_stream`](crate::Request::raw_stream)) and raw chunks for any other
/// body; a failure is the last item. Dropping it before the end cancels the
/// transfer. libesp pauses the transfer while the reader is more than the
/// client's `stream_buffer_bytes` (1 MiB) behind.
#[must_use = "streams do nothing unless polled"]
pub struct AsyncEventStream {
    started: StartedStream,
    head: Response,
    finished: bool,
}

impl AsyncEventStream {
    /// Status and headers of the response (its body is what the stream yields).
    pub fn response(&self) -> &Response {
        &self.head
    }
}

impl Stream for AsyncEventStream {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        this.started.wake_me(cx);
        // SAFETY: esp_stream_item is plain data for which all-zero is valid;
        // what libesp lends in it is copied before the next call on the stream.
        let mut item: sys::esp_stream_item = unsafe { mem::zeroed() };
        item.struct_size = mem::size_of::<sys::esp_stream_item>() as u32;
        match unsafe { sys::esp_stream_next(this.started.stream, 0, &mut item) } {
            1 => Poll::Ready(Some(Ok(unsafe { Event::copy_from(&item) }))),
            0 => {
                this.finished = true;
                Poll::Ready(None)
            }
            sys::ESP_EAGAIN => Poll::Pending,
            failure => {
                this.finished = true;
                Poll::Ready(Some(Err(Error::last(failure))))
            }
        }
    }
}

impl std::fmt::Debug for AsyncEventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncEventStream")
            .field("stream", &self.started.stream)
            .field("head", &self.head)
            .field("finished", &self.finished)
            .finish()
    }
}
