package esp

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <esp.h>

// A stream's wake-up, in C memory because libesp keeps the pointer: the
// eventfd its reader parks on in Go's netpoller, and whether ready ran since
// the reader last looked. The reader reads `rang`, never the descriptor: Go's
// netpoller watches it edge-triggered, and every eventfd write is an edge
// whether or not the counter was read, so a paced event costs the reader no
// read(2) (it cost two: one that took the counter, one that found it empty
// before parking).
typedef struct {
	int fd;
	uint32_t rang;
} esp_go_waker;

// The ready callback of every stream. libesp never calls it once
// esp_stream_close has returned, and the waker is freed only after that.
static void esp_go_on_ready(void *user) {
	esp_go_waker *w = user;
	__atomic_store_n(&w->rang, 1, __ATOMIC_RELEASE);  // before the edge that wakes the reader
	uint64_t one = 1;
	// Cannot fail short of a closed descriptor: the counter saturates only
	// after 2^64 - 2 writes.
	ssize_t written = write(w->fd, &one, sizeof one);
	(void)written;
}

static esp_go_waker *esp_go_stream_waker(void) {
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0) return NULL;
	esp_go_waker *w = calloc(1, sizeof *w);
	if (!w) {
		close(fd);
		return NULL;
	}
	w->fd = fd;
	return w;
}

// Each shim copies esp_last_error() in the cgo call that failed (see esp.go).
static int esp_go_stream_start(esp_client client, const esp_request_opts *req,
                               esp_go_waker *waker, esp_stream *out, char **err) {
	int rc = esp_stream_start(client, req, esp_go_on_ready, waker, out);
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

#cgo nocallback esp_go_stream_take

// Where one item taken by esp_go_stream_take lies in the scratch's buffer:
// its type, data and id, back to back.
typedef struct {
	int kind;
	int64_t retry_ms;
	size_t type_len, data_len, id_len;
} esp_go_item;

static int esp_go_copy(const esp_stream_item *item, char *buf, size_t cap, size_t *used, esp_go_item *out) {
	const char *type = "", *data = item->chunk, *id = "";
	size_t data_len = item->chunk_len;
	out->kind = item->kind;
	out->retry_ms = -1;
	if (item->kind == ESP_ITEM_EVENT) {
		type = item->ev->event;
		data = item->ev->data;
		data_len = item->ev->data_len;
		id = item->ev->id;
		out->retry_ms = item->ev->retry_ms;
	}
	size_t type_len = strlen(type), id_len = strlen(id);
	if (cap - *used < type_len + data_len + id_len) return 0;
	char *at = buf + *used;
	memcpy(at, type, type_len);
	if (data_len) memcpy(at + type_len, data, data_len);
	memcpy(at + type_len + data_len, id, id_len);
	*used += type_len + data_len + id_len;
	out->type_len = type_len;
	out->data_len = data_len;
	out->id_len = id_len;
	return 1;
}

// What one esp_go_stream_take copies into and reports, in C memory and
// passed as an integer: cgo checks every pointer argument whose target holds
// pointers (here the lent item and the error) on every call, about 300
// instructions each for Go memory and 120 even for C memory; with two such
// arguments the checks cost more than the rest of the take.
enum { ESP_GO_TAKE_BATCH = 32, ESP_GO_TAKE_BYTES = 16 << 10 };
typedef struct {
	esp_go_item items[ESP_GO_TAKE_BATCH];
	char buf[ESP_GO_TAKE_BYTES];
	esp_stream_item big; // the item that did not fit, when pending
	int pending;         // big holds it, lent until the next call on the stream
	int rc;              // the last esp_stream_next's result
	char *err;           // its failure's detail (strdup'ed), or NULL
	int sent;            // whether that failure came after the request was sent
} esp_go_take_scratch;

// esp_go_stream_take copies the items ready into t's buf and items, in one
// cgo call, and returns how many it took. It stops at the first
// esp_stream_next that gives no item (t->rc: ESP_EAGAIN, which arms ready; 0
// at the end; a failure) or when items or buf are full (t->rc 1; t->pending
// when the item that did not fit is left in t->big).
static int esp_go_stream_take(esp_stream s, uintptr_t scratch) {
	esp_go_take_scratch *t = (esp_go_take_scratch *)scratch;
	int n = 0;
	size_t used = 0;
	t->pending = 0;
	t->err = NULL;
	t->sent = 0;
	while (n < ESP_GO_TAKE_BATCH) {
		t->big.struct_size = sizeof t->big;
		t->rc = esp_stream_next(s, 0, &t->big);
		if (t->rc != 1) {
			esp_go_stream_failure(t->rc, &t->err, &t->sent);
			return n;
		}
		if (!esp_go_copy(&t->big, t->buf, sizeof t->buf, &used, &t->items[n])) {
			t->pending = 1;
			return n;
		}
		n++;
	}
	t->rc = 1;
	return n;
}
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Streams are libesp's non-blocking stream reader (esp_stream_start): C
// buffers the body, pauses the transfer while the reader is behind by the
// client's stream_buffer_bytes and decides between SSE events and raw
// chunks. Go only waits: libesp's ready callback sets the stream's flag and
// writes its own eventfd, on which the reading goroutine is parked in Go's
// netpoller (as a net/http reader is on its socket), and the reader then takes items with
// esp_stream_next(s, 0). A waiting Next is a parked goroutine holding no OS
// thread. (Through completions.go's dispatcher, every paced event cost two
// goroutine wake-ups, the dispatcher's and the reader's.)

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
	stopCancel func() bool     // unregisters the ctx cancellation; under mu
	stream     C.esp_stream    // valid until close
	waker      *C.esp_go_waker // ready's flag and eventfd; freed by close
	ready      *os.File        // the eventfd, in the netpoller; closed by close
	readyConn  syscall.RawConn // waits on ready without reading it
	head       *Response       // status and headers

	// Read by next only (a Stream is not for concurrent use).
	queued   []Event // taken from libesp; those from read on are not yet returned
	read     int
	lastType string // the last event type and id, reused while they repeat
	lastID   string

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
	opts, bad := newCRequest(req)
	if bad != nil {
		return nil, bad
	}
	waker, err := C.esp_go_stream_waker()
	if waker == nil {
		C.free(unsafe.Pointer(opts))
		return nil, &Error{Code: Code(C.ESP_EINTERNAL),
			Message: fmt.Sprintf("cannot create the stream's eventfd: %v", err)}
	}
	// Non-blocking, so a waiting reader parks in the netpoller, not a thread.
	s := &streamCall{ctx: ctx, waker: waker, ready: os.NewFile(uintptr(waker.fd), "libesp-stream")}
	if s.readyConn, err = s.ready.SyscallConn(); err != nil {
		s.freeWaker()
		C.free(unsafe.Pointer(opts))
		return nil, &Error{Code: Code(C.ESP_EINTERNAL),
			Message: fmt.Sprintf("cannot wait on the stream's eventfd: %v", err)}
	}
	var msg *C.char
	rc := C.esp_go_stream_start(c.handle, opts, waker, &s.stream, &msg)
	C.free(unsafe.Pointer(opts)) // libesp copied the request
	runtime.KeepAlive(c)         // the lease must outlive the start
	if rc < 0 {
		s.freeWaker() // refused: ready never runs
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
		s.waitReady()
	}
}

// waitReady parks until libesp's ready callback ran (perhaps before the
// wait began: its flag says so) or close closed the eventfd (the caller then
// finds the stream closed). RawConn.Read forgets an edge the netpoller saw
// before it started, hence the flag; a stale flag only costs a look.
func (s *streamCall) waitReady() {
	_ = s.readyConn.Read(func(uintptr) bool { return s.readyRang() })
}

// readyRang takes ready's flag; true once closed, whose waker may be gone.
func (s *streamCall) readyRang() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || atomic.SwapUint32((*uint32)(unsafe.Pointer(&s.waker.rang)), 0) != 0
}

// freeWaker closes the eventfd and frees the waker; once ready can no longer
// run and, through closed, no reader reads the flag.
func (s *streamCall) freeWaker() {
	s.ready.Close()
	C.free(unsafe.Pointer(s.waker))
}

// takeBatch bounds the items one cgo call takes (see esp_go_stream_take);
// takeBytes the bytes of their types, data and ids.
const (
	takeBatch = C.ESP_GO_TAKE_BATCH
	takeBytes = C.ESP_GO_TAKE_BYTES
	// smallBatch bounds the queue array a stream keeps between batches.
	smallBatch = 4
)

// takeScratch holds what esp_go_stream_take copies into, shared by all
// streams through takeScratches: a stream holds one only during that call.
// Its C memory goes with it when the pool drops it.
type takeScratch struct{ c *C.esp_go_take_scratch }

var takeScratches = sync.Pool{New: func() any {
	s := &takeScratch{c: (*C.esp_go_take_scratch)(C.malloc(C.sizeof_esp_go_take_scratch))}
	runtime.AddCleanup(s, func(c *C.esp_go_take_scratch) { C.free(unsafe.Pointer(c)) }, s.c)
	return s
}}

// next returns the next item, waiting for one; false at the end or on
// failure (see failure).
func (s *streamCall) next() (Event, bool) {
	for {
		if s.read < len(s.queued) {
			ev := s.queued[s.read]
			s.queued[s.read] = Event{} // the caller's now
			s.read++
			return ev, true
		}
		rc, msg, sent := s.take()
		failed := rc < 0 && rc != C.ESP_EAGAIN
		if failed {
			s.fail(rc, msg, sent) // frees msg; a failure after the items queued is read again after them
		}
		switch {
		case s.read < len(s.queued):
			continue
		case rc == C.ESP_EAGAIN && !s.isClosed():
			s.waitReady()
		case rc == 0:
			return Event{}, false
		default:
			if !failed {
				s.fail(rc, msg, sent)
			}
			return Event{}, false
		}
	}
}

// take queues every item ready, in one cgo call (two when one item is larger
// than the scratch buffer), and returns the result of the last
// esp_stream_next: 1 when more may be ready.
func (s *streamCall) take() (rc C.int, msg *C.char, sent C.int) {
	scratch := takeScratches.Get().(*takeScratch)
	defer takeScratches.Put(scratch)
	t := scratch.c
	s.calling.Lock()
	defer s.calling.Unlock()
	n := int(C.esp_go_stream_take(s.stream, C.uintptr_t(uintptr(unsafe.Pointer(t)))))
	rc, msg, sent = C.int(t.rc), t.err, C.int(t.sent)
	if n == 0 && t.pending == 0 {
		return rc, msg, sent
	}
	queued := s.queued[:0]
	if cap(queued) > smallBatch {
		queued = nil // a burst's array goes; a stream keeps only a small one
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&t.buf[0])), takeBytes)
	at := 0
	for _, item := range t.items[:n] {
		typeLen, dataLen, idLen := int(item.type_len), int(item.data_len), int(item.id_len)
		ev := Event{
			Type: s.eventType(buf[at : at+typeLen]),
			Data: make([]byte, dataLen),
			ID:   s.eventID(buf[at+typeLen+dataLen : at+typeLen+dataLen+idLen]),
		}
		copy(ev.Data, buf[at+typeLen:])
		if item.retry_ms >= 0 {
			ev.Retry = time.Duration(item.retry_ms) * time.Millisecond
		}
		at += typeLen + dataLen + idLen
		queued = append(queued, ev)
	}
	if t.pending != 0 {
		queued = append(queued, goEvent(&t.big)) // lent until the next call, which waits for s.calling
	}
	s.queued, s.read = queued, 0
	return rc, msg, sent
}

// eventType and eventID give the same string for the same bytes as the
// event before, so a stream of "message" events with one id allocates
// neither per event.
func (s *streamCall) eventType(b []byte) string {
	switch {
	case len(b) == 0:
		return ""
	case string(b) == "message":
		return "message"
	case string(b) != s.lastType:
		s.lastType = string(b)
	}
	return s.lastType
}

func (s *streamCall) eventID(b []byte) string {
	if string(b) != s.lastID {
		s.lastID = string(b)
	}
	return s.lastID
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
// and the waker can go (closing the eventfd ends a reader's wait on it).
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
	s.freeWaker()
}
