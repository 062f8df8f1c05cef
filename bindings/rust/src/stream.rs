use std::ffi::CStr;
use std::mem;
use std::os::raw::c_char;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::request::Response;
use crate::sys;

/// One item of a streamed response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A parsed Server-Sent Event (text/event-stream bodies).
    Sse(SseEvent),
    /// Raw body bytes (other bodies, or requests made with
    /// [`Request::raw_stream`](crate::Request::raw_stream)).
    Chunk(Vec<u8>),
}

impl Event {
    /// The event's data, or the chunk's bytes.
    pub fn data(&self) -> &[u8] {
        match self {
            Event::Sse(event) => event.data.as_bytes(),
            Event::Chunk(bytes) => bytes,
        }
    }

    /// Copy an item esp_stream_next filled; what it points to must be valid.
    pub(crate) unsafe fn copy_from(item: &sys::esp_stream_item) -> Event {
        if item.kind == sys::ESP_ITEM_EVENT {
            Event::Sse(SseEvent::copy_from(&item.event))
        } else {
            Event::Chunk(copy_chunk(item.chunk, item.chunk_len))
        }
    }
}

/// A Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type; "message" when the stream named none.
    pub event: String,
    /// The data lines joined with "\n" (invalid UTF-8 replaced, as the SSE
    /// standard says).
    pub data: String,
    /// The last event id; "" when none.
    pub id: String,
    /// The reconnection time this event set, if any.
    pub retry: Option<Duration>,
}

impl SseEvent {
    /// Copy an event the library owns; `ev` must be valid.
    pub(crate) unsafe fn copy_from(ev: &sys::esp_sse_event) -> SseEvent {
        let data = if ev.data.is_null() {
            String::new()
        } else {
            owned_text(std::slice::from_raw_parts(
                ev.data.cast::<u8>(),
                ev.data_len,
            ))
        };
        SseEvent {
            event: owned_c_text(ev.event),
            data,
            id: owned_c_text(ev.id),
            retry: u64::try_from(ev.retry_ms).ok().map(Duration::from_millis),
        }
    }
}

/// `bytes` as a String, invalid UTF-8 replaced. Valid text (the rule) is
/// checked by the fast validator; the lossy conversion walks it byte by byte.
fn owned_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A NUL-terminated string the library owns as a String ("" for null).
unsafe fn owned_c_text(s: *const c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        owned_text(CStr::from_ptr(s).to_bytes())
    }
}

/// Copy `len` bytes the library owns; `data` must be valid for `len` bytes.
unsafe fn copy_chunk(data: *const std::os::raw::c_void, len: usize) -> Vec<u8> {
    if data.is_null() || len == 0 {
        Vec::new()
    } else {
        std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec()
    }
}

/// A blocking reader of a streamed response (`esp_stream_*`), from
/// [`Client::stream`](crate::Client::stream).
///
/// Iterating blocks the calling thread until the next event arrives. The
/// iterator ends after the body ends or after the first error. Dropping the
/// stream closes it, cancelling the transfer if the body is unfinished.
#[derive(Debug)]
pub struct EventStream {
    handle: sys::esp_stream,
    head: Response,
    done: bool,
}

impl EventStream {
    pub(crate) fn new(handle: sys::esp_stream, head: Response) -> EventStream {
        EventStream {
            handle,
            head,
            done: false,
        }
    }

    /// Status and headers of the response (its body is what the stream yields).
    pub fn response(&self) -> &Response {
        &self.head
    }
}

impl Iterator for EventStream {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        if self.done {
            return None;
        }
        // SAFETY: esp_stream_item is plain data for which all-zero is valid;
        // the library fills it and its pointers stay valid until the next
        // call on this stream, and the item is copied before that.
        let mut item: sys::esp_stream_item = unsafe { mem::zeroed() };
        item.struct_size = mem::size_of::<sys::esp_stream_item>() as u32;
        let rc = unsafe { sys::esp_stream_next(self.handle, -1, &mut item) };
        match rc {
            1 => Some(Ok(unsafe { Event::copy_from(&item) })),
            0 => {
                self.done = true;
                None
            }
            error => {
                self.done = true;
                Some(Err(Error::last(error)))
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and closed only here.
        unsafe { sys::esp_stream_close(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_copied_with_invalid_utf8_replaced() {
        let data = b"ok \xff\xfe text\0";
        let ev = sys::esp_sse_event {
            event: c"message".as_ptr(),
            data: data.as_ptr().cast(),
            data_len: data.len() - 1,
            id: c"id-\xc3".as_ptr(),
            retry_ms: 1500,
        };
        // SAFETY: every pointer is valid for the call and NUL-terminated.
        let copied = unsafe { SseEvent::copy_from(&ev) };
        assert_eq!(copied.event, "message");
        assert_eq!(copied.data, "ok \u{FFFD}\u{FFFD} text");
        assert_eq!(copied.id, "id-\u{FFFD}");
        assert_eq!(copied.retry, Some(Duration::from_millis(1500)));
    }
}
