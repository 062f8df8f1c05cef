package esp

/*
#include <stdlib.h>
#include <string.h>
#include <esp.h>

// As in esp.go: the error detail is copied in the cgo call that failed.
static int esp_go_prepare(esp_client client, const esp_request_opts *req, esp_call *out, char **err) {
	int rc = esp_call_prepare(client, req, out);
	if (rc < 0) *err = strdup(esp_last_error());
	return rc;
}

// What Go copies out of a response, read in one cgo call (each cgo call
// costs a scheduler round trip): the scalars, the body and up to
// ESP_GO_HEADERS headers as name/value pointers (esp_go_header reads more).
#define ESP_GO_HEADERS 32
typedef struct {
	int status, http_version, attempts;
	size_t header_count;
	const void *body;
	size_t body_len;
	const char *headers[2 * ESP_GO_HEADERS];
} esp_go_response_view;

static void esp_go_view(const esp_response *r, esp_go_response_view *v) {
	v->status = esp_response_status(r);
	v->http_version = esp_response_http_version(r);
	v->attempts = esp_response_attempts(r);
	v->header_count = esp_response_header_count(r);
	v->body = esp_response_body(r, &v->body_len);
	for (size_t i = 0; i < v->header_count && i < ESP_GO_HEADERS; i++) {
		if (esp_response_header_at(r, i, &v->headers[2 * i], &v->headers[2 * i + 1]) < 0)
			v->headers[2 * i] = NULL;
	}
}

static int esp_go_run(esp_call call, esp_response **out, char **err, int *sent) {
	int rc = esp_call_run(call, out);
	if (rc < 0) {
		*err = strdup(esp_last_error());
		*sent = esp_last_error_sent();
	}
	return rc;
}
*/
import "C"

import (
	"context"
	"net/http"
	"net/textproto"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// Request is one HTTP request to a provider API.
type Request struct {
	// Method is the HTTP method; "" means GET, or POST when Body is set.
	Method string
	// Path is relative to the client's base_url, or an absolute URL.
	Path string
	// Header holds extra headers; they override the client's defaults
	// (such as its Authorization header).
	Header http.Header
	// Body is sent as is (nil: no body).
	Body []byte
	// Timeout bounds the whole request; 0 means the client's timeout_ms,
	// a negative value no limit at all. A context deadline applies as well.
	Timeout time.Duration
	// ConnectTimeout bounds DNS, TCP and TLS (0: the client's
	// connect_timeout_ms; negative: none).
	ConnectTimeout time.Duration
	// ReadTimeout bounds the silence while waiting for response bytes,
	// headers or body (0: the client's idle_timeout_ms; negative: none).
	ReadTimeout time.Duration
	// WriteTimeout bounds a stall while sending the body (0 or negative:
	// none).
	WriteTimeout time.Duration
	// PoolTimeout bounds the wait for a connection slot, failing with
	// [ErrPoolTimeout] (0: the client's pool_timeout_ms; negative: none).
	PoolTimeout time.Duration
	// FirstByteTimeout bounds the wait for the response's status and
	// headers, per attempt (0: the client's first_byte_timeout_ms; negative:
	// none). It fails with [ErrTimeout] saying "first-byte timeout".
	FirstByteTimeout time.Duration
	// IdleTimeout bounds a silence inside the body once the head has arrived,
	// not before it (0: the client's idle_timeout_ms, none when ReadTimeout is
	// set; negative: none). It fails with [ErrTimeout] saying "idle timeout".
	IdleTimeout time.Duration
	// NoRetry disables libesp's retries for this request, whatever the
	// client's max_retries.
	NoRetry bool
	// Raw makes [Client.Stream] deliver raw body chunks even for a
	// text/event-stream response.
	Raw bool
}

// Response is an HTTP response. An HTTP error status (4xx, 5xx) is a
// Response, not an error.
type Response struct {
	// StatusCode is the HTTP status, e.g. 200.
	StatusCode int
	// Header holds the response headers under canonical names; repeated
	// headers keep every value.
	Header http.Header
	// Body is the whole body (nil for the Response of a [Stream]).
	Body []byte
	// HTTPVersion is 10 for HTTP/1.0, 11 for HTTP/1.1 and 20 for HTTP/2.
	HTTPVersion int
	// Attempts is how many attempts libesp made (1 when not retried).
	Attempts int
}

// Do sends req and waits for the whole response.
//
// Cancelling ctx, or its deadline passing, cancels the request inside libesp
// (its connection is closed, never returned to the pool half-read); Do then
// returns an error that matches both [ErrCancelled] and ctx.Err() with
// errors.Is. Do returns only once libesp has finished with the request.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	if ctx.Err() != nil {
		return nil, contextError(ctx, ErrCancelled)
	}
	lone := dosInFlight.Add(1) == 1
	defer dosInFlight.Add(-1)
	if lone {
		return c.doBlocking(ctx, req)
	}
	w := &wholeCall{done: make(chan struct{})}
	call, err := c.start(req, w)
	if err != nil {
		return nil, err
	}
	// AfterFunc costs no goroutine while ctx is live; the waiting goroutine
	// holds no OS thread, and the completion callback wakes it.
	stopCancel := context.AfterFunc(ctx, func() { C.esp_call_cancel(call) })
	<-w.done
	stopCancel()
	if w.err != nil {
		return nil, contextError(ctx, w.err)
	}
	return goResponse(w.resp), nil
}

// dosInFlight counts the Do calls between entry and return. A Do that finds
// no other in flight blocks its OS thread in esp_call_run: while libesp has
// nothing else in flight that call is driven by its own thread, with no hop
// to libesp's I/O thread and back (the hop costs about 40 % of sequential
// throughput). Any other Do parks its goroutine on a completion callback:
// with others in flight libesp's I/O thread drives every transfer anyway,
// and a thread blocked in cgo only makes the Go scheduler hand its P to
// another thread and take it back (measured at 64 goroutines with one
// blocking slot per P: 84 us of CPU per request against 52 for net/http).
// So 10,000 concurrent calls need one blocked OS thread at most.
var dosInFlight atomic.Int64

// doBlocking is Do on a prepared call: cancellable from ctx through
// esp_call_cancel while this goroutine's thread blocks in esp_call_run.
func (c *Client) doBlocking(ctx context.Context, req *Request) (*Response, error) {
	opts := newCRequest(req)
	var call C.esp_call
	var msg *C.char
	rc := C.esp_go_prepare(c.handle, opts, &call, &msg)
	C.free(unsafe.Pointer(opts))
	runtime.KeepAlive(c)
	if rc < 0 {
		return nil, newError(rc, msg)
	}
	stopCancel := context.AfterFunc(ctx, func() { C.esp_call_cancel(call) })
	var resp *C.esp_response
	var sent C.int
	rc = C.esp_go_run(call, &resp, &msg, &sent)
	stopCancel()
	if rc < 0 {
		err := newError(rc, msg)
		err.RequestSent = sent != 0
		return nil, contextError(ctx, err)
	}
	return goResponse(resp), nil
}

// wholeCall is the state of a [Client.Do] call, filled in by the completion
// callback before done is closed.
type wholeCall struct {
	done chan struct{}
	resp *C.esp_response // the caller's to convert and free
	err  *Error
}

// complete only hands the response over: the copy into Go memory happens on
// the waiting goroutine, because libesp's I/O thread, which runs this, holds
// up every other transfer while a callback runs (at 64 in flight the copy of
// the headers took ~6 cgo calls per header on that one thread).
func (w *wholeCall) complete(err *Error, resp *C.esp_response) {
	w.err, w.resp = err, resp
	close(w.done)
}

// goResponse copies a libesp response into Go memory and frees it.
func goResponse(resp *C.esp_response) *Response {
	var v C.esp_go_response_view
	C.esp_go_view(resp, &v)
	r := goResponseFromView(resp, &v)
	r.Body = C.GoBytes(v.body, C.int(v.body_len))
	C.esp_response_free(resp)
	return r
}

// goResponseHead copies the status and headers of a libesp response.
func goResponseHead(resp *C.esp_response) *Response {
	var v C.esp_go_response_view
	C.esp_go_view(resp, &v)
	return goResponseFromView(resp, &v)
}

func goResponseFromView(resp *C.esp_response, v *C.esp_go_response_view) *Response {
	n := int(v.header_count)
	header := make(http.Header, n)
	for i := 0; i < n; i++ {
		var name, value *C.char
		if i < C.ESP_GO_HEADERS {
			name, value = v.headers[2*i], v.headers[2*i+1]
		} else if C.esp_response_header_at(resp, C.size_t(i), &name, &value) < 0 {
			name = nil
		}
		if name == nil {
			continue
		}
		key := textproto.CanonicalMIMEHeaderKey(C.GoString(name))
		header[key] = append(header[key], C.GoString(value))
	}
	return &Response{
		StatusCode:  int(v.status),
		Header:      header,
		HTTPVersion: int(v.http_version),
		Attempts:    int(v.attempts),
	}
}

// newCRequest lays req out in one C allocation (the options, the header
// array, the NUL-terminated strings and the body), so that no Go pointer is
// handed to C. The caller frees the result with C.free.
func newCRequest(req *Request) *C.esp_request_opts {
	var flags uint32
	if req.NoRetry {
		flags |= C.ESP_REQ_NO_RETRY
	}
	if req.Raw {
		flags |= C.ESP_REQ_STREAM_RAW
	}
	headerCount, stringBytes := 0, len(req.Path)+1
	if req.Method != "" {
		stringBytes += len(req.Method) + 1
	}
	for name, values := range req.Header {
		headerCount += len(values)
		for _, v := range values {
			stringBytes += len(name) + 1 + len(v) + 1
		}
	}
	optsSize := unsafe.Sizeof(C.esp_request_opts{})
	headersSize := uintptr(headerCount) * unsafe.Sizeof(C.esp_header{})
	total := optsSize + headersSize + uintptr(stringBytes) + uintptr(len(req.Body))
	mem := C.malloc(C.size_t(total))
	buf := unsafe.Slice((*byte)(mem), total)

	off := optsSize + headersSize
	put := func(s string) *C.char {
		p := (*C.char)(unsafe.Pointer(&buf[off]))
		off += uintptr(copy(buf[off:], s))
		buf[off] = 0
		off++
		return p
	}
	opts := (*C.esp_request_opts)(mem)
	*opts = C.esp_request_opts{
		struct_size:  C.uint32_t(optsSize),
		path:         put(req.Path),
		header_count: C.size_t(headerCount),
		timeout_ms:   C.int64_t(timeoutMillis(req.Timeout)),
		flags:        C.uint32_t(flags),
		// The per-phase fields of libesp 0.2.0.
		connect_timeout_ms:    C.int64_t(timeoutMillis(req.ConnectTimeout)),
		read_timeout_ms:       C.int64_t(timeoutMillis(req.ReadTimeout)),
		write_timeout_ms:      C.int64_t(timeoutMillis(req.WriteTimeout)),
		pool_timeout_ms:       C.int64_t(timeoutMillis(req.PoolTimeout)),
		first_byte_timeout_ms: C.int64_t(timeoutMillis(req.FirstByteTimeout)),
		idle_timeout_ms:       C.int64_t(timeoutMillis(req.IdleTimeout)),
	}
	if req.Method != "" {
		opts.method = put(req.Method)
	}
	if headerCount > 0 {
		opts.headers = (*C.esp_header)(unsafe.Add(mem, optsSize))
		headers := unsafe.Slice(opts.headers, headerCount)
		i := 0
		for name, values := range req.Header {
			for _, v := range values {
				headers[i] = C.esp_header{name: put(name), value: put(v)}
				i++
			}
		}
	}
	if len(req.Body) > 0 {
		opts.body = unsafe.Pointer(&buf[off])
		opts.body_len = C.size_t(copy(buf[off:], req.Body))
	}
	return opts
}

// timeoutMillis converts a timeout to libesp's milliseconds, rounding a
// positive sub-millisecond timeout up rather than to 0 (the client default).
func timeoutMillis(d time.Duration) int64 {
	if d < 0 {
		return C.ESP_NO_TIMEOUT
	}
	if d > 0 && d < time.Millisecond {
		return 1
	}
	return d.Milliseconds()
}
