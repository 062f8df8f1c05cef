package esp

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <esp.h>

// Defined in completions.go: queues the wake-up for the dispatcher
// goroutine; the user pointer is the stream's id in liveStreams.
extern void esp_go_on_ready(void *user);

// Each shim copies esp_last_error() in the cgo call that failed (see esp.go).
static int esp_go_stream_start(esp_client client, const esp_request_opts *req,
                               uintptr_t user, esp_stream *out, char **err) {
	int rc = esp_stream_start(client, req, esp_go_on_ready, (void *)user, out);
	if (rc < 0) *err = strdup(esp_last_error());
	return rc;
}

static void esp_go_stream_failure(int rc, char **err, int *sent) {
	if (rc < 0 && rc != ESP_EAGAIN) {
		*err = strdup(esp_last_error());
		*sent = esp_last_error_sent();
	}
}

static int esp_go_stream_head(esp_stream s, esp_response **head, char **err, int *sent) {
	int rc = esp_stream_head(s, head);
	esp_go_stream_failure(rc, err, sent);
	return rc;
}

static int esp_go_stream_next(esp_stream s, esp_stream_item *item, char **err, int *sent) {
	item->struct_size = sizeof *item;
	int rc = esp_stream_next(s, 0, item);
	esp_go_stream_failure(rc, err, sent);
	return rc;
}
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Streams are libesp's non-blocking stream reader (esp_stream_start): C
// buffers the body, pauses the transfer while the reader is behind by the
// client's stream_buffer_bytes and decides between SSE events and raw
// chunks. Go only waits: libesp's ready callback wakes the reading
// goroutine, which then takes items with esp_stream_next(s, 0). A waiting
// Next is a parked goroutine holding no OS thread.

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
	call, err := c.openStream(ctx, req)
	if err != nil {
		return nil, err
	}
	s := &Stream{call: call, head: call.head}
	// A forgotten Stream would otherwise stay paused in libesp forever.
	s.cancelOnGC = runtime.AddCleanup(s, (*streamCall).close, call)
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

// streamCall is one libesp stream, read by a [Stream] or a
// [Client.Transport] body.
type streamCall struct {
	ctx        context.Context
	stopCancel func() bool   // unregisters the ctx cancellation; under mu
	stream     C.esp_stream  // valid until close
	id         uintptr       // ready's way back here: its key in liveStreams until close
	wake       chan struct{} // capacity 1: libesp's ready callback ran
	head       *Response     // status and headers

	// Held around each esp_stream_* call and the copy of what it lent, so
	// that close (from Close or ctx, on another goroutine) never frees an
	// item being copied. Those calls never block.
	calling sync.Mutex

	mu     sync.Mutex
	closed bool   // close ran: libesp has let go of the stream
	err    *Error // the failure that ended the stream, once known
}

// openStream starts req as a libesp stream and waits for its head.
func (c *Client) openStream(ctx context.Context, req *Request) (*streamCall, error) {
	if ctx.Err() != nil {
		return nil, contextError(ctx, ErrCancelled)
	}
	if err := startDispatcher(); err != nil {
		return nil, err
	}
	s := &streamCall{ctx: ctx, wake: make(chan struct{}, 1), id: uintptr(lastStreamID.Add(1))}
	liveStreams.Store(s.id, s)
	opts := newCRequest(req)
	var msg *C.char
	rc := C.esp_go_stream_start(c.handle, opts, C.uintptr_t(s.id), &s.stream, &msg)
	C.free(unsafe.Pointer(opts)) // libesp copied the request
	runtime.KeepAlive(c)         // the lease must outlive the start
	if rc < 0 {
		liveStreams.Delete(s.id) // refused: ready never runs
		return nil, newError(rc, msg)
	}
	stopCancel := context.AfterFunc(ctx, s.close)
	s.mu.Lock()
	s.stopCancel = stopCancel // read by close, which ctx may already be running
	s.mu.Unlock()
	for {
		var head *C.esp_response
		var sent C.int
		s.calling.Lock()
		rc := C.esp_go_stream_head(s.stream, &head, &msg, &sent)
		s.calling.Unlock()
		if rc == C.ESP_OK {
			s.head = goResponseHead(head) // head is ours, not lent
			C.esp_response_free(head)
			return s, nil
		}
		if rc != C.ESP_EAGAIN || s.isClosed() {
			s.fail(rc, msg, sent)
			err := s.failure()
			s.close()
			return nil, err
		}
		<-s.wake
	}
}

// next returns the next item, waiting for one; false at the end or on
// failure (see failure).
func (s *streamCall) next() (Event, bool) {
	for {
		var item C.esp_stream_item
		var msg *C.char
		var sent C.int
		var ev Event
		s.calling.Lock()
		rc := C.esp_go_stream_next(s.stream, &item, &msg, &sent)
		if rc == 1 {
			ev = goEvent(&item)
		}
		s.calling.Unlock()
		switch {
		case rc == 1:
			return ev, true
		case rc == C.ESP_EAGAIN && !s.isClosed():
			<-s.wake
		case rc == 0:
			return Event{}, false
		default:
			s.fail(rc, msg, sent)
			return Event{}, false
		}
	}
}

func goEvent(item *C.esp_stream_item) Event {
	if item.kind != C.ESP_ITEM_EVENT {
		return Event{Data: C.GoBytes(item.chunk, C.int(item.chunk_len))}
	}
	ev := item.ev
	e := Event{
		Type: C.GoString(ev.event),
		Data: C.GoBytes(unsafe.Pointer(ev.data), C.int(ev.data_len)),
		ID:   C.GoString(ev.id),
	}
	if ev.retry_ms >= 0 {
		e.Retry = time.Duration(ev.retry_ms) * time.Millisecond
	}
	return e
}

func (s *streamCall) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// fail records the failure of rc (freeing msg); once the stream was closed
// under the reader (Close, ctx), that is a cancellation whatever rc says.
func (s *streamCall) fail(rc C.int, msg *C.char, sent C.int) {
	err := newError(rc, msg)
	err.RequestSent = sent != 0
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		err = &Error{Code: CodeCancelled, Message: "the stream was closed", RequestSent: true}
	}
	if s.err == nil {
		s.err = err
	}
}

// failure is the error that ended the stream, nil at a clean end.
func (s *streamCall) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return nil
	}
	return contextError(s.ctx, s.err)
}

// close cancels the transfer if it is unfinished and wakes a waiting reader.
// Once esp_stream_close has returned, ready never runs again, so the handle
// can go.
func (s *streamCall) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	stopCancel := s.stopCancel
	s.mu.Unlock()
	if stopCancel != nil {
		stopCancel()
	}
	s.calling.Lock()
	C.esp_stream_close(s.stream)
	s.calling.Unlock()
	liveStreams.Delete(s.id)
	s.signal()
}

// liveStreams maps the id each stream hands libesp as its user pointer to
// the stream, from start to close. Ids are never reused, so a wake-up still
// queued for a stream closed meanwhile finds nothing and is dropped.
var (
	liveStreams  sync.Map
	lastStreamID atomic.Uintptr
)

// wakeStream wakes the reader of stream id, if it is still open.
func wakeStream(id uintptr) {
	if s, ok := liveStreams.Load(id); ok {
		s.(*streamCall).signal()
	}
}

// signal wakes a reader waiting in next without ever blocking the I/O thread.
func (s *streamCall) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
