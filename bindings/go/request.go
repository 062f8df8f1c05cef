package esp

/*
#include <stdlib.h>
#include <string.h>
#include <esp.h>

// A request as Go lays it out in one buffer of its own memory: this header,
// then the headers as header_count pairs of offsets (name, value), then
// NUL-terminated strings at the offsets given. The buffer holds no Go pointer, so a
// cgo call may hand it to C, which reads it during the call: libesp copies
// everything a request points to before esp_request_async or
// esp_call_prepare returns. So a request costs one cgo call and no C
// allocation. The body is passed apart and never copied on the Go side.
typedef struct {
	int64_t timeout_ms, connect_timeout_ms, read_timeout_ms, write_timeout_ms,
	        pool_timeout_ms, first_byte_timeout_ms, idle_timeout_ms;
	uint32_t flags;
	int32_t method; // offset of the method, -1 for none
	size_t path, headers, header_count, body_len;
} esp_go_request;

// How many headers esp_go_submit points to from its stack (more: malloc).
#define ESP_GO_STACK_HEADERS 16

// esp_go_fill points o and headers (header_count entries) into the request r.
static void esp_go_fill(const esp_go_request *r, const void *body, esp_header *headers, esp_request_opts *o) {
	const char *buf = (const char *)r;
	esp_request_opts init = ESP_REQUEST_OPTS_INIT;
	*o = init;
	o->method = r->method < 0 ? NULL : buf + r->method;
	o->path = buf + r->path;
	const size_t *offsets = (const size_t *)(buf + r->headers);
	for (size_t i = 0; i < r->header_count; i++) {
		headers[i].name = buf + offsets[2 * i];
		headers[i].value = buf + offsets[2 * i + 1];
	}
	o->headers = r->header_count ? headers : NULL;
	o->header_count = r->header_count;
	o->body = r->body_len ? body : NULL;
	o->body_len = r->body_len;
	o->timeout_ms = r->timeout_ms;
	o->flags = r->flags;
	o->connect_timeout_ms = r->connect_timeout_ms;
	o->read_timeout_ms = r->read_timeout_ms;
	o->write_timeout_ms = r->write_timeout_ms;
	o->pool_timeout_ms = r->pool_timeout_ms;
	o->first_byte_timeout_ms = r->first_byte_timeout_ms;
	o->idle_timeout_ms = r->idle_timeout_ms;
}

// What Go copies out of a response, read in one cgo call (each cgo call
// costs a scheduler round trip): the scalars, the body and up to
// ESP_GO_HEADERS headers as name/value pointers with their lengths, so Go
// reads them without a call per string (esp_response_header_at reads more).
#define ESP_GO_HEADERS 32
typedef struct {
	int status, http_version, attempts;
	size_t header_count;
	const void *body;
	size_t body_len;
	size_t values_len; // the lengths of the values in headers, summed
	const char *headers[2 * ESP_GO_HEADERS];
	size_t lengths[2 * ESP_GO_HEADERS];
} esp_go_response_view;

// view is an esp_go_response_view. It is passed as void *: cgo then checks a
// Go caller's variable for Go pointers only when it is on the heap (noescape
// keeps it on the stack), while the view's 66 pointer fields, checked one by
// one at every call, cost about 5 % of Do's Go-side CPU at 64 goroutines.
static void esp_go_view(const esp_response *r, void *view) {
	esp_go_response_view *v = view;
	v->status = esp_response_status(r);
	v->http_version = esp_response_http_version(r);
	v->attempts = esp_response_attempts(r);
	v->header_count = esp_response_header_count(r);
	v->body = esp_response_body(r, &v->body_len);
	v->values_len = 0;
	for (size_t i = 0; i < v->header_count && i < ESP_GO_HEADERS; i++) {
		const char **name = &v->headers[2 * i], **value = &v->headers[2 * i + 1];
		if (esp_response_header_at(r, i, name, value) < 0) {
			*name = NULL;
			continue;
		}
		v->lengths[2 * i] = strlen(*name);
		v->values_len += v->lengths[2 * i + 1] = strlen(*value);
	}
}

// esp_go_opts fills o from r, with the header array in stack when it fits
// and else in a malloc (esp_go_opts_end frees it); ESP_ENOMEM when that fails.
static int esp_go_opts(const esp_go_request *r, const void *body, esp_header *stack,
                       esp_request_opts *o, char **err) {
	esp_header *headers = stack;
	if (r->header_count > ESP_GO_STACK_HEADERS &&
	    !(headers = malloc(r->header_count * sizeof *headers))) {
		*err = strdup("out of memory for the request's headers");
		return ESP_ENOMEM;
	}
	esp_go_fill(r, body, headers, o);
	return ESP_OK;
}

static void esp_go_opts_end(const esp_request_opts *o, const esp_header *stack) {
	if (o->headers != stack) free((void *)o->headers);
}

enum { ESP_GO_PREPARE, ESP_GO_START };

// esp_go_submit prepares (ESP_GO_PREPARE) or starts (ESP_GO_START, with
// esp_go_whole_cb and user, from completions.go) the request r as a call.
// As in esp.go, the error detail is copied in the cgo call that failed.
extern const esp_callbacks esp_go_whole_cb;
static int esp_go_submit(int how, esp_client client, const esp_go_request *r, const void *body,
                         uintptr_t user, esp_call *out, char **err) {
	esp_header stack[ESP_GO_STACK_HEADERS];
	esp_request_opts o;
	int rc = esp_go_opts(r, body, stack, &o, err);
	if (rc < 0) return rc;
	rc = how == ESP_GO_START ? esp_request_async(client, &o, &esp_go_whole_cb, (void *)user, out)
	                         : esp_call_prepare(client, &o, out);
	if (rc < 0) *err = strdup(esp_last_error());
	esp_go_opts_end(&o, stack);
	return rc;
}

// esp_go_failed copies the detail of a failure after which the request may
// have been sent.
static void esp_go_failed(int rc, char **err, int *sent) {
	if (rc < 0) {
		*err = strdup(esp_last_error());
		*sent = esp_last_error_sent();
	}
}

// esp_go_send sends r and waits for the response (esp_request), then views
// it: a Do that nothing can cancel is one cgo call.
static int esp_go_send(esp_client client, const esp_go_request *r, const void *body,
                       esp_response **out, void *view, char **err, int *sent) {
	esp_header stack[ESP_GO_STACK_HEADERS];
	esp_request_opts o;
	int rc = esp_go_opts(r, body, stack, &o, err);
	if (rc < 0) return rc;
	rc = esp_request(client, &o, out);
	esp_go_opts_end(&o, stack);
	esp_go_failed(rc, err, sent);
	if (rc == ESP_OK) esp_go_view(*out, view);
	return rc;
}

// esp_go_request_copy lays r out in one C allocation that outlives the cgo
// call (for esp_stream_start callers that free it after the call): the
// options, the header array, then copies of the strings and the body.
// NULL when memory ran out.
static esp_request_opts *esp_go_request_copy(const esp_go_request *r, size_t len, const void *body) {
	size_t opts = sizeof(esp_request_opts), headers = r->header_count * sizeof(esp_header);
	char *mem = malloc(opts + headers + len + r->body_len);
	if (!mem) return NULL;
	esp_go_request *copy = (esp_go_request *)(mem + opts + headers);
	memcpy(copy, r, len);
	if (r->body_len) memcpy((char *)copy + len, body, r->body_len);
	esp_go_fill(copy, (char *)copy + len, (esp_header *)(mem + opts), (esp_request_opts *)mem);
	return (esp_request_opts *)mem;
}

// esp_go_run runs a prepared call, then views its response.
static int esp_go_run(esp_call call, esp_response **out, void *view, char **err, int *sent) {
	int rc = esp_call_run(call, out);
	esp_go_failed(rc, err, sent);
	if (rc == ESP_OK) esp_go_view(*out, view);
	return rc;
}

// None of these calls back into Go or keeps a pointer it was given, so the
// Go variables they fill can live on the caller's stack.
#cgo noescape esp_go_submit
#cgo nocallback esp_go_submit
#cgo noescape esp_go_view
#cgo nocallback esp_go_view
#cgo noescape esp_go_run
#cgo nocallback esp_go_run
#cgo noescape esp_go_send
#cgo nocallback esp_go_send
*/
import "C"

import (
	"context"
	"net/http"
	"net/textproto"
	"runtime"
	"strconv"
	"strings"
	"sync"
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
	w := wholeCalls.Get().(*wholeCall)
	defer wholeCalls.Put(w)
	call, err := c.start(req, w)
	if err != nil {
		return nil, err
	}
	// AfterFunc costs no goroutine while ctx is live; the waiting goroutine
	// holds no OS thread, and the completion callback wakes it.
	stopCancel := cancelWhenDone(ctx, call)
	<-w.done
	stopCancel()
	resp, failed := w.resp, w.err
	w.resp, w.err = nil, nil
	if failed != nil {
		return nil, contextError(ctx, failed)
	}
	return goResponse(resp), nil
}

// cancelWhenDone cancels call once ctx is done; stop undoes that. A context
// that can never be done (context.Background) costs nothing.
func cancelWhenDone(ctx context.Context, call C.esp_call) (stop func() bool) {
	if ctx.Done() == nil {
		return neverCancelled
	}
	return context.AfterFunc(ctx, func() { C.esp_call_cancel(call) })
}

func neverCancelled() bool { return false }

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

// doBlocking is Do on this goroutine's thread. With a context that can never
// be done it is one cgo call (esp_request); otherwise the call is prepared,
// so that ctx can cancel it through esp_call_cancel while this thread
// blocks in esp_call_run.
func (c *Client) doBlocking(ctx context.Context, req *Request) (*Response, error) {
	var v C.esp_go_response_view
	view := unsafe.Pointer(&v) // as in goResponse
	var resp *C.esp_response
	var msg *C.char
	var sent C.int
	var rc C.int
	if ctx.Done() == nil {
		l, bad := layOut(req)
		if bad != nil {
			return nil, bad
		}
		rc = C.esp_go_send(c.handle, l.request(), l.body, &resp, view, &msg, &sent)
		l.release()
		runtime.KeepAlive(c) // the lease must outlive the request
	} else {
		call, failed := c.submit(prepareCall, req, 0)
		if failed != nil {
			return nil, failed
		}
		stopCancel := cancelWhenDone(ctx, call)
		rc = C.esp_go_run(call, &resp, view, &msg, &sent)
		stopCancel()
	}
	if rc < 0 {
		err := newError(rc, msg)
		err.RequestSent = sent != 0
		return nil, contextError(ctx, err)
	}
	return takeResponse(resp, &v), nil
}

// wholeCall is the state of a [Client.Do] call, filled in by the completion
// callback before it signals done. Do takes one from wholeCalls and puts it
// back once it has read the outcome: by then libesp and the dispatcher are
// done with it (a call completes exactly once).
type wholeCall struct {
	done chan struct{}   // one signal per call
	resp *C.esp_response // the caller's to convert and free
	err  *Error
}

var wholeCalls = sync.Pool{New: func() any { return &wholeCall{done: make(chan struct{}, 1)} }}

// complete only hands the response over: the copy into Go memory happens on
// the waiting goroutine, because libesp's I/O thread, which runs this, holds
// up every other transfer while a callback runs (at 64 in flight the copy of
// the headers took ~6 cgo calls per header on that one thread).
func (w *wholeCall) complete(err *Error, resp *C.esp_response) {
	w.err, w.resp = err, resp
	w.done <- struct{}{}
}

// goResponse copies a libesp response into Go memory and frees it.
func goResponse(resp *C.esp_response) *Response {
	var v C.esp_go_response_view
	view := unsafe.Pointer(&v) // not inline: cgo would check v's type field by field
	C.esp_go_view(resp, view)
	return takeResponse(resp, &v)
}

// takeResponse copies the response v views into Go memory and frees it.
func takeResponse(resp *C.esp_response, v *C.esp_go_response_view) *Response {
	r := goResponseFromView(resp, v)
	r.Body = C.GoBytes(v.body, C.int(v.body_len))
	C.esp_response_free(resp)
	return r
}

// goResponseHead copies the status and headers of a libesp response.
func goResponseHead(resp *C.esp_response) *Response {
	var v C.esp_go_response_view
	view := unsafe.Pointer(&v) // as in goResponse
	C.esp_go_view(resp, view)
	return goResponseFromView(resp, &v)
}

// goResponseFromView builds a Response from v with few allocations: the
// values of the headers in the view share one string, every header's slice
// of values one array, and the names libesp sends most are interned by
// textproto.
func goResponseFromView(resp *C.esp_response, v *C.esp_go_response_view) *Response {
	n := int(v.header_count)
	inView := min(n, C.ESP_GO_HEADERS)
	values := make([]byte, 0, int(v.values_len))
	for i := 0; i < inView; i++ {
		if v.headers[2*i] != nil {
			values = append(values, cBytes(v.headers[2*i+1], v.lengths[2*i+1])...)
		}
	}
	allValues := unsafe.String(unsafe.SliceData(values), len(values))
	header := make(http.Header, n)
	slots := make([]string, n)
	add := func(i int, name, value string) {
		if prev, ok := header[name]; ok {
			header[name] = append(prev, value)
			return
		}
		slots[i] = value
		header[name] = slots[i : i+1 : i+1]
	}
	at := 0
	for i := 0; i < inView; i++ {
		if v.headers[2*i] == nil {
			continue
		}
		value := allValues[at : at+int(v.lengths[2*i+1])]
		at += len(value)
		add(i, canonicalHeaderName(unsafe.String((*byte)(unsafe.Pointer(v.headers[2*i])), int(v.lengths[2*i]))), value)
	}
	for i := inView; i < n; i++ {
		var name, value *C.char
		if C.esp_response_header_at(resp, C.size_t(i), &name, &value) == 0 {
			add(i, textproto.CanonicalMIMEHeaderKey(C.GoString(name)), C.GoString(value))
		}
	}
	return &Response{
		StatusCode:  int(v.status),
		Header:      header,
		HTTPVersion: int(v.http_version),
		Attempts:    int(v.attempts),
	}
}

// cBytes is the n bytes at p, in C memory, without a copy.
func cBytes(p *C.char, n C.size_t) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
}

// canonicalHeaderName is the canonical form of a header name that lies in C
// memory (libesp's lower-case names), in Go memory: textproto returns its
// interned string for the common names and a new one for the others, except
// for a name it leaves as it is, which is then copied.
func canonicalHeaderName(inC string) string {
	name := textproto.CanonicalMIMEHeaderKey(inC)
	if unsafe.StringData(name) == unsafe.StringData(inC) {
		name = strings.Clone(name)
	}
	return name
}

// requestBuffers recycles the Go buffers requests are laid out in.
var requestBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// pooledRequestBytes bounds the buffers kept for reuse: a request with huge
// headers does not pin its buffer for the life of the process.
const pooledRequestBytes = 64 << 10

// laidOut is a request laid out as an esp_go_request (see the C side) in a
// pooled buffer of Go memory, valid until release.
type laidOut struct {
	buf  *[]byte
	body unsafe.Pointer // req.Body's bytes, nil when empty
}

// request is the esp_go_request at the start of the buffer.
func (l laidOut) request() *C.esp_go_request {
	return (*C.esp_go_request)(unsafe.Pointer(&(*l.buf)[0]))
}

func (l laidOut) release() {
	if cap(*l.buf) <= pooledRequestBytes {
		requestBuffers.Put(l.buf)
	}
}

// layOut lays req out for esp_go_submit or esp_go_request_copy. A string
// holding a NUL byte is refused with [ErrInvalid] (C would read it only up to
// the NUL and send the rest cut off), as libesp refuses CR or LF in a header.
func layOut(req *Request) (laidOut, *Error) {
	var flags uint32
	if req.NoRetry {
		flags |= C.ESP_REQ_NO_RETRY
	}
	if req.Raw {
		flags |= C.ESP_REQ_STREAM_RAW
	}
	headerCount := 0
	for _, values := range req.Header {
		headerCount += len(values)
	}
	// The header struct and the offsets are size_t-aligned: the buffer
	// starts at a Go allocation (8-byte aligned) and both sizes are multiples of 8.
	fixed := int(unsafe.Sizeof(C.esp_go_request{}))
	offsets := 2 * headerCount * int(unsafe.Sizeof(C.size_t(0)))
	bp := requestBuffers.Get().(*[]byte)
	buf := append((*bp)[:0], make([]byte, fixed+offsets)...)
	nul := false
	put := func(s string) C.size_t {
		nul = nul || strings.IndexByte(s, 0) >= 0
		at := len(buf)
		buf = append(append(buf, s...), 0)
		return C.size_t(at)
	}
	method := C.int32_t(-1)
	if req.Method != "" {
		method = C.int32_t(put(req.Method))
	}
	path := put(req.Path)
	i := 0
	for name, values := range req.Header {
		for _, v := range values {
			n, v := put(name), put(v)
			at := fixed + 2*i*int(unsafe.Sizeof(C.size_t(0)))
			*(*[2]C.size_t)(unsafe.Pointer(&buf[at])) = [2]C.size_t{n, v}
			i++
		}
	}
	*bp = buf
	l := laidOut{buf: bp}
	if nul {
		l.release()
		return laidOut{}, &Error{Code: CodeInvalid, Message: nulRefusal(req)}
	}
	*l.request() = C.esp_go_request{
		timeout_ms:            C.int64_t(timeoutMillis(req.Timeout)),
		connect_timeout_ms:    C.int64_t(timeoutMillis(req.ConnectTimeout)),
		read_timeout_ms:       C.int64_t(timeoutMillis(req.ReadTimeout)),
		write_timeout_ms:      C.int64_t(timeoutMillis(req.WriteTimeout)),
		pool_timeout_ms:       C.int64_t(timeoutMillis(req.PoolTimeout)),
		first_byte_timeout_ms: C.int64_t(timeoutMillis(req.FirstByteTimeout)),
		idle_timeout_ms:       C.int64_t(timeoutMillis(req.IdleTimeout)),
		flags:                 C.uint32_t(flags),
		method:                method,
		path:                  path,
		headers:               C.size_t(fixed),
		header_count:          C.size_t(headerCount),
		body_len:              C.size_t(len(req.Body)),
	}
	if len(req.Body) > 0 {
		l.body = unsafe.Pointer(&req.Body[0])
	}
	return l, nil
}

// nulRefusal names the string of req that holds a NUL, in libesp's own words
// for a bad method, path or header name (request.cpp), where a NUL is one
// more control character. A header value is not quoted: it may be a key.
func nulRefusal(req *Request) string {
	if strings.IndexByte(req.Method, 0) >= 0 {
		return "method is not a valid HTTP method token"
	}
	if strings.IndexByte(req.Path, 0) >= 0 {
		return "path contains white space or control characters"
	}
	for name, values := range req.Header {
		if strings.IndexByte(name, 0) >= 0 {
			return "header " + strconv.Quote(name) + " has an invalid name"
		}
		for _, v := range values {
			if strings.IndexByte(v, 0) >= 0 {
				return "header '" + name + "' value contains a NUL byte"
			}
		}
	}
	return "a string of the request contains a NUL byte"
}

// How submit hands a request to libesp.
const (
	prepareCall = C.ESP_GO_PREPARE // esp_call_prepare: the caller runs it
	startCall   = C.ESP_GO_START   // esp_request_async: it completes through the dispatcher
)

// submit prepares or starts (its completion then reaching user) req as a
// call on c, in one cgo call.
func (c *Client) submit(how C.int, req *Request, user C.uintptr_t) (C.esp_call, *Error) {
	l, bad := layOut(req)
	if bad != nil {
		return 0, bad
	}
	defer l.release()
	var call C.esp_call
	var msg *C.char
	rc := C.esp_go_submit(how, c.handle, l.request(), l.body, user, &call, &msg)
	runtime.KeepAlive(c) // the lease must outlive the submit
	if rc < 0 {
		return 0, newError(rc, msg)
	}
	return call, nil
}

// newCRequest lays req out in one C allocation (the options, the header
// array, the strings and the body) for a call that outlives a cgo call's
// view of Go memory. The caller frees the result with C.free.
func newCRequest(req *Request) (*C.esp_request_opts, *Error) {
	l, bad := layOut(req)
	if bad != nil {
		return nil, bad
	}
	defer l.release()
	opts := C.esp_go_request_copy(l.request(), C.size_t(len(*l.buf)), l.body)
	if opts == nil {
		panic("libesp: out of memory laying out a request") // as C.malloc does
	}
	return opts, nil
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
