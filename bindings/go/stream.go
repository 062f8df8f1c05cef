package esp

/*
#include <esp.h>
*/
import "C"

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Why streams use the asynchronous API rather than esp_stream_next:
// esp_stream_next blocks the calling OS thread while it waits for data, so
// N streams waiting at once would pin N OS threads, and a ctx could only be
// honoured by polling with a timeout or by a watcher goroutine per stream.
// With esp_request_async the I/O thread hands each event or chunk to a
// callback that only queues it and wakes the reader: a waiting Next is a
// parked goroutine holding no OS thread, ctx cancellation is one
// esp_call_cancel from context.AfterFunc, and backpressure is kept by
// pausing the transfer (esp_call_pause) while the reader is behind by more
// than streamHighWater bytes, as esp_stream_next's reader does in C.
const (
	streamHighWater = 1 << 20             // pause the transfer above this many queued bytes
	streamLowWater  = streamHighWater / 4 // resume it once the reader is back below this
)

// Event is one item of a [Stream]: a Server-Sent Event, or a raw body chunk
// when the response is not text/event-stream or [Request.Raw] is set.
type Event struct {
	// Type is the SSE event name, "message" when the stream named none, and
	// "" for a raw body chunk.
	Type string
	// Data is the event's data, or the chunk's bytes.
	Data []byte
	// ID is the last event id, "" when none.
	ID string
	// Retry is the reconnection time this event set, 0 when it set none.
	Retry time.Duration
}

// Stream reads a response as it arrives. Use it as
//
//	for s.Next() {
//		ev := s.Event()
//		...
//	}
//	if err := s.Err(); err != nil { ... }
//
// and always Close it. A Stream is not safe for concurrent use, except that
// Close may be called from another goroutine to stop a waiting Next.
type Stream struct {
	call       *streamCall
	head       *Response
	event      Event
	err        error
	closeOnce  sync.Once
	cancelOnGC runtime.Cleanup
}

// Stream sends req and returns once the response status and headers are in
// (see [Stream.Response]); the body is then read with [Stream.Next].
//
// Cancelling ctx, or its deadline passing, cancels the request: a waiting
// Next returns false and Err reports an error that matches both
// [ErrCancelled] and ctx.Err().
func (c *Client) Stream(ctx context.Context, req *Request) (*Stream, error) {
	kind := kindEvents
	if req.Raw {
		kind = kindRaw
	}
	call, err := c.openStream(ctx, req, kind)
	if err != nil {
		return nil, err
	}
	s := &Stream{call: call, head: call.head}
	// A forgotten Stream would otherwise stay paused in libesp forever.
	s.cancelOnGC = runtime.AddCleanup(s, func(call C.esp_call) { C.esp_call_cancel(call) }, call.call)
	return s, nil
}

// Response returns the status and headers of the response (its Body is
// nil).
func (s *Stream) Response() *Response { return s.head }

// Next waits for the next event or chunk and reports whether there is one.
// It returns false at the end of the body or on failure; see [Stream.Err].
func (s *Stream) Next() bool {
	ev, ok := s.call.next()
	if !ok {
		s.err = s.call.failure()
		return false
	}
	s.event = ev
	return true
}

// Event returns the item read by the last successful [Stream.Next].
func (s *Stream) Event() Event { return s.event }

// Err returns the failure that ended the stream, nil at a clean end.
func (s *Stream) Err() error { return s.err }

// Close cancels the request if it is unfinished and waits until libesp has
// let go of it. Close is idempotent and always returns nil.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.cancelOnGC.Stop()
		s.call.close()
	})
	return nil
}

// streamCall is the state shared by the I/O thread's callbacks and the
// reader of a streamed call ([Stream] or a [Client.Transport] body).
type streamCall struct {
	ctx        context.Context
	stopCancel func() bool   // unregisters the ctx cancellation
	headOnce   sync.Once     // closes headReady
	headReady  chan struct{} // closed once head is set or the call failed
	head       *Response     // status and headers, set before headReady closes
	done       chan struct{} // closed by the completion callback
	wake       chan struct{} // capacity 1: an item was queued or the call finished
	wantEvents bool          // on_event is set: SSE bodies arrive parsed
	sse        bool          // the body is SSE and wantEvents: skip its raw chunks

	mu          sync.Mutex
	call        C.esp_call // 0 until esp_request_async has returned
	queue       []Event
	queuedBytes int
	paused      bool
	pauseWanted bool // the queue filled up before call was known
	finished    bool
	err         *Error // the call's failure, once finished
}

// openStream starts req as a streamed call and waits for its head.
func (c *Client) openStream(ctx context.Context, req *Request, kind callKind) (*streamCall, error) {
	if ctx.Err() != nil {
		return nil, contextError(ctx, ErrCancelled)
	}
	s := &streamCall{
		ctx:        ctx,
		headReady:  make(chan struct{}),
		done:       make(chan struct{}),
		wake:       make(chan struct{}, 1),
		wantEvents: kind == kindEvents,
	}
	call, err := c.start(req, kind, s)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.call = call
	if s.pauseWanted && !s.finished {
		s.pause(true)
	}
	s.mu.Unlock()
	s.stopCancel = context.AfterFunc(ctx, func() { C.esp_call_cancel(call) })
	<-s.headReady
	if s.head == nil {
		<-s.done
		s.stopCancel()
		return nil, s.failure()
	}
	return s, nil
}

// pause pauses or resumes the transfer; s.mu is held.
func (s *streamCall) pause(paused bool) {
	var p C.int
	if paused {
		p = 1
	}
	// ESP_EHANDLE once the call has completed: nothing left to pause.
	C.esp_call_pause(s.call, p)
	s.paused = paused
	s.pauseWanted = false
}

// next pops the next queued item, waiting for one; false at the end.
func (s *streamCall) next() (Event, bool) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			s.queuedBytes -= len(ev.Data)
			if s.paused && s.queuedBytes <= streamLowWater {
				s.pause(false)
			}
			s.mu.Unlock()
			return ev, true
		}
		finished := s.finished
		s.mu.Unlock()
		if finished {
			return Event{}, false
		}
		<-s.wake
	}
}

// failure is the error that ended the call, nil at a clean end.
func (s *streamCall) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return nil
	}
	return contextError(s.ctx, s.err)
}

// close cancels the call unless it has completed, waits for its completion
// and drops what was queued.
func (s *streamCall) close() {
	s.stopCancel()
	C.esp_call_cancel(s.call) // ESP_EHANDLE if it had completed: harmless
	<-s.done
	s.mu.Lock()
	s.queue, s.queuedBytes = nil, 0
	s.mu.Unlock()
}

// signal wakes a reader waiting in next without ever blocking the I/O thread.
func (s *streamCall) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// push queues an item (I/O thread) and pauses the transfer when the reader
// is too far behind.
func (s *streamCall) push(ev Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.queuedBytes += len(ev.Data)
	if s.queuedBytes > streamHighWater && !s.paused {
		if s.call != 0 {
			s.pause(true)
		} else {
			s.pauseWanted = true
		}
	}
	s.mu.Unlock()
	s.signal()
}

func (s *streamCall) onHeaders(head *C.esp_response) {
	s.headOnce.Do(func() {
		s.head = goResponseHead(head)
		// libesp calls on_data as well as on_event for an SSE body, and
		// parses SSE only for text/event-stream (its rule, mirrored here).
		ct := strings.ToLower(s.head.Header.Get("Content-Type"))
		s.sse = s.wantEvents && strings.HasPrefix(ct, "text/event-stream")
		close(s.headReady)
	})
}

func (s *streamCall) onData(chunk unsafe.Pointer, n C.size_t) {
	if s.sse {
		return // the same bytes arrive parsed through onEvent
	}
	s.push(Event{Data: C.GoBytes(chunk, C.int(n))})
}

func (s *streamCall) onEvent(ev *C.esp_sse_event) {
	e := Event{
		Type: C.GoString(ev.event),
		Data: C.GoBytes(unsafe.Pointer(ev.data), C.int(ev.data_len)),
		ID:   C.GoString(ev.id),
	}
	if ev.retry_ms >= 0 {
		e.Retry = time.Duration(ev.retry_ms) * time.Millisecond
	}
	s.push(e)
}

func (s *streamCall) complete(err *Error, resp *C.esp_response) {
	if resp != nil {
		// A call that succeeded without on_headers still has its head here.
		s.onHeaders(resp)
		C.esp_response_free(resp)
	}
	s.mu.Lock()
	s.finished = true
	s.err = err
	s.mu.Unlock()
	s.headOnce.Do(func() { close(s.headReady) })
	close(s.done)
	s.signal()
}
