//! Futures and async streams over `esp_request_async`, for any executor.
//!
//! Each call shares an `Arc<Mutex<..>>` with the C side: `Arc::into_raw` is
//! the callbacks' user pointer, and that reference belongs to the C call
//! until `on_complete` (which runs exactly once) takes it back. Callbacks run
//! on a libesp I/O thread: they only store what arrived and wake the task.

use std::collections::VecDeque;
use std::future::Future;
use std::mem;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use crate::error::{Error, Result};
use crate::request::{Request, Response};
use crate::stream::{copy_chunk, Event, SseEvent};
use crate::sys;

/// Pause the transfer while this many bytes wait unread in an async stream,
/// and resume it once the reader is back under half of it.
const PAUSE_AT_BYTES: usize = 1 << 20;

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

/// A response libesp handed over, not yet copied: the copy into Rust memory
/// happens on the awaiting task, because the completion callback runs on
/// libesp's I/O thread, which holds up every other transfer meanwhile. Freed
/// when dropped (also when the future is dropped before it reads it).
struct RawResponse(*mut sys::esp_response);

// SAFETY: an esp_response is plain memory owned by whoever holds the pointer;
// libesp keeps no reference to it after the completion callback.
unsafe impl Send for RawResponse {}

impl RawResponse {
    fn into_response(self) -> Response {
        // SAFETY: the pointer is the valid response libesp handed over; self
        // frees it when dropped at the end of this function.
        unsafe { Response::copy_from(self.0) }
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

#[derive(Default)]
struct StreamState {
    /// The call, once esp_request_async returned it (needed to pause).
    call: sys::esp_call,
    /// The request asked for raw chunks (Request::raw_stream).
    raw: bool,
    /// The body is delivered as parsed events: libesp calls on_event for
    /// text/event-stream bodies and on_data for every body, so one of the
    /// two is ignored, as esp_stream_next does.
    sse: bool,
    head: Option<Response>,
    events: VecDeque<Event>,
    queued_bytes: usize,
    paused: bool,
    /// Set by on_complete: Ok at the end of the body, or the failure.
    end: Option<Result<()>>,
    waker: Option<Waker>,
}

/// Run `f` on the stream state behind a borrowed user pointer, then wake the
/// task. Panics stay on this side of the C boundary.
unsafe fn with_stream_state(user: *mut c_void, f: impl FnOnce(&mut StreamState)) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the C call holds a reference to the state until on_complete.
        let state = unsafe { &*(user as *const Mutex<StreamState>) };
        let (waker, pause) = {
            let mut s = lock(state);
            f(&mut s);
            let pause = !s.paused && s.call != 0 && s.queued_bytes > PAUSE_AT_BYTES;
            s.paused |= pause;
            (s.waker.take(), pause.then_some(s.call))
        };
        if let Some(call) = pause {
            // SAFETY: pausing is allowed inside callbacks.
            unsafe { sys::esp_call_pause(call, 1) };
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }));
}

fn queue(s: &mut StreamState, event: Event) {
    s.queued_bytes += event.data().len();
    s.events.push_back(event);
}

unsafe extern "C" fn on_stream_headers(user: *mut c_void, head: *const sys::esp_response) {
    // SAFETY: `head` is valid during the callback and copied in it.
    with_stream_state(user, |s| {
        let head = unsafe { Response::copy_from(head) };
        s.sse = !s.raw
            && head
                .header("content-type")
                .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/event-stream"));
        s.head = Some(head);
    });
}

unsafe extern "C" fn on_stream_data(user: *mut c_void, chunk: *const c_void, len: usize) {
    // SAFETY: `chunk` is valid for `len` bytes during the callback.
    with_stream_state(user, |s| {
        if !s.sse {
            queue(s, Event::Chunk(unsafe { copy_chunk(chunk, len) }));
        }
    });
}

unsafe extern "C" fn on_stream_event(user: *mut c_void, ev: *const sys::esp_sse_event) {
    // SAFETY: `ev` is valid during the callback and copied in it.
    with_stream_state(user, |s| {
        if s.sse {
            queue(s, Event::Sse(unsafe { SseEvent::copy_from(&*ev) }));
        }
    });
}

unsafe extern "C" fn on_stream_complete(
    user: *mut c_void,
    status: c_int,
    resp: *mut sys::esp_response,
) {
    with_stream_state(user, |s| {
        s.end = Some(if status == sys::ESP_OK {
            Ok(())
        } else {
            Err(completion_error(status))
        });
        if s.head.is_none() && !resp.is_null() {
            // SAFETY: resp is valid until we free it below.
            s.head = Some(unsafe { Response::copy_from(resp) });
        }
    });
    let _ = catch_unwind(|| {
        // SAFETY: resp is ours to free (NULL is a no-op), and this is the one
        // callback that takes back the C call's reference to the state.
        unsafe {
            sys::esp_response_free(resp);
            drop(Arc::from_raw(user as *const Mutex<StreamState>));
        }
    });
}

static STREAM_CALLBACKS: sys::esp_callbacks = sys::esp_callbacks {
    struct_size: mem::size_of::<sys::esp_callbacks>() as u32,
    on_headers: Some(on_stream_headers),
    on_data: Some(on_stream_data),
    on_event: Some(on_stream_event),
    on_complete: Some(on_stream_complete),
};

/// For raw streams: without on_event, libesp does not parse SSE at all.
static RAW_STREAM_CALLBACKS: sys::esp_callbacks = sys::esp_callbacks {
    on_event: None,
    ..STREAM_CALLBACKS
};

/// Resolves to an [`AsyncEventStream`] once the response's status and
/// headers are in; from [`Client::stream_async`](crate::Client::stream_async).
/// Dropping it before then cancels the request.
#[must_use = "dropping the future cancels the request"]
#[derive(Debug)]
pub struct StreamFuture {
    stream: Option<AsyncEventStream>,
    start_error: Option<Error>,
}

impl StreamFuture {
    pub(crate) fn start(client: sys::esp_client, req: &Request) -> StreamFuture {
        let raw = req.is_raw_stream();
        let state = Arc::new(Mutex::new(StreamState {
            raw,
            ..StreamState::default()
        }));
        let callbacks = if raw {
            &RAW_STREAM_CALLBACKS
        } else {
            &STREAM_CALLBACKS
        };
        match start(client, req, callbacks, &state) {
            Ok(call) => {
                lock(&state).call = call;
                let stream = AsyncEventStream {
                    state,
                    call,
                    head: None,
                    finished: false,
                };
                StreamFuture {
                    stream: Some(stream),
                    start_error: None,
                }
            }
            Err(error) => StreamFuture {
                stream: None,
                start_error: Some(error),
            },
        }
    }
}

impl Future for StreamFuture {
    type Output = Result<AsyncEventStream>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<AsyncEventStream>> {
        let this = self.get_mut();
        if let Some(error) = this.start_error.take() {
            return Poll::Ready(Err(error));
        }
        let stream = this
            .stream
            .as_mut()
            .expect("StreamFuture polled after it resolved");
        let failure = {
            let mut s = lock(&stream.state);
            if let Some(head) = s.head.take() {
                stream.head = Some(head);
                None
            } else if let Some(end) = &s.end {
                // A completion without a head is a failure, or a libesp bug.
                Some(end.clone().err().unwrap_or_else(|| {
                    Error::from_code(sys::ESP_EINTERNAL, "call completed without a response head")
                }))
            } else {
                store_waker(&mut s.waker, cx);
                return Poll::Pending;
            }
        };
        let mut stream = this.stream.take().expect("checked above");
        match failure {
            None => Poll::Ready(Ok(stream)),
            Some(error) => {
                stream.finished = true;
                Poll::Ready(Err(error))
            }
        }
    }
}

/// The events of a streamed response as a [`futures_core::Stream`].
///
/// Yields SSE events for text/event-stream bodies (unless the request was
/// [`raw_stream`](crate::Request::raw_stream)) and raw chunks otherwise; a
/// failure is the last item. Dropping it before the end cancels the transfer.
/// A reader that falls behind by more than 1 MiB pauses the transfer.
#[must_use = "streams do nothing unless polled"]
pub struct AsyncEventStream {
    state: Arc<Mutex<StreamState>>,
    call: sys::esp_call,
    head: Option<Response>,
    finished: bool,
}

impl AsyncEventStream {
    /// Status and headers of the response (its body is what the stream yields).
    pub fn response(&self) -> &Response {
        self.head
            .as_ref()
            .expect("an AsyncEventStream is only handed out with its head")
    }
}

impl Stream for AsyncEventStream {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let (item, resume) = {
            let mut s = lock(&this.state);
            let item = if let Some(event) = s.events.pop_front() {
                s.queued_bytes -= event.data().len();
                Some(Ok(event))
            } else {
                match s.end.take() {
                    Some(end) => {
                        this.finished = true;
                        end.err().map(Err)
                    }
                    None => {
                        store_waker(&mut s.waker, cx);
                        return Poll::Pending;
                    }
                }
            };
            let resume = s.paused && s.queued_bytes <= PAUSE_AT_BYTES / 2;
            s.paused &= !resume;
            (item, resume)
        };
        if resume {
            // SAFETY: a plain handle; a completed call's is rejected harmlessly.
            unsafe { sys::esp_call_pause(this.call, 0) };
        }
        Poll::Ready(item)
    }
}

impl Drop for AsyncEventStream {
    fn drop(&mut self) {
        if !self.finished {
            cancel(self.call);
        }
    }
}

impl std::fmt::Debug for AsyncEventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncEventStream")
            .field("call", &self.call)
            .field("head", &self.head)
            .field("finished", &self.finished)
            .finish()
    }
}
