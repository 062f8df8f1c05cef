package esp

// Completions of asynchronous calls ([Client.Do] past the first in flight),
// handed from libesp's I/O thread to Go in batches.
//
// A cgo callback from a thread Go did not create must acquire a P to run Go
// code; when every P is busy (GOMAXPROCS goroutines working, the common case
// at 64 in flight) libesp's I/O thread waits for one, and every other
// transfer waits with it. So the I/O thread never calls into Go here: it
// appends the completion to a C queue and, only when the queue was empty,
// writes an eventfd. One dispatcher goroutine, parked in Go's netpoller on
// that eventfd, takes every queued completion in one cgo call and completes
// them: one wake-up carries as many as arrived meanwhile. (Streams wake their
// readers through an eventfd of their own: stream.go.)

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <esp.h>

// Exported from callbacks.go: the direct path, used only when the queue
// cannot grow (out of memory), so no completion is ever lost.
extern void espGoComplete(uintptr_t user, int status, esp_response *resp, char *msg, int sent);

typedef struct {
	uintptr_t user; // the call's id in callsInFlight
	int status;
	int sent;             // esp_last_error_sent() of a failure
	esp_response *resp;   // the Go side's to convert and free
	char *msg;            // strdup of a failure's detail; the Go side frees it
} esp_go_done;

static pthread_mutex_t esp_go_done_mu = PTHREAD_MUTEX_INITIALIZER;
static esp_go_done *esp_go_done_queue;
static size_t esp_go_done_len, esp_go_done_cap;
static int esp_go_done_fd = -1;

static int esp_go_done_open(void) {
	esp_go_done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return esp_go_done_fd;
}

// esp_go_queue appends done and wakes the dispatcher if the queue was
// empty; 0 when the queue cannot grow (out of memory).
static int esp_go_queue(esp_go_done done) {
	pthread_mutex_lock(&esp_go_done_mu);
	if (esp_go_done_len == esp_go_done_cap) {
		size_t cap = esp_go_done_cap ? 2 * esp_go_done_cap : 256;
		esp_go_done *grown = realloc(esp_go_done_queue, cap * sizeof *grown);
		if (!grown) {
			pthread_mutex_unlock(&esp_go_done_mu);
			return 0;
		}
		esp_go_done_queue = grown;
		esp_go_done_cap = cap;
	}
	esp_go_done_queue[esp_go_done_len++] = done;
	int wake = esp_go_done_len == 1;
	pthread_mutex_unlock(&esp_go_done_mu);
	if (wake) {
		uint64_t one = 1;
		// Cannot fail short of a closed descriptor: the counter saturates
		// only after 2^64 - 2 writes nobody read.
		ssize_t written = write(esp_go_done_fd, &one, sizeof one);
		(void)written;
	}
	return 1;
}

// libesp sets esp_last_error() and esp_last_error_sent() to the call's
// failure before on_complete; both are copied here, on the I/O thread.
static void esp_go_on_complete(void *user, int status, esp_response *resp) {
	esp_go_done done = {(uintptr_t)user, status, status < 0 ? esp_last_error_sent() : 0, resp,
	                    status < 0 ? strdup(esp_last_error()) : NULL};
	if (!esp_go_queue(done)) {
		free(done.msg);
		espGoComplete(done.user, status, resp, status < 0 ? (char *)esp_last_error() : NULL, done.sent);
	}
}

// esp_go_take_done moves up to max queued completions into out and returns
// how many; fewer than max means the queue is now empty.
static size_t esp_go_take_done(esp_go_done *out, size_t max) {
	pthread_mutex_lock(&esp_go_done_mu);
	size_t n = esp_go_done_len < max ? esp_go_done_len : max;
	memcpy(out, esp_go_done_queue, n * sizeof *out);
	memmove(esp_go_done_queue, esp_go_done_queue + n, (esp_go_done_len - n) * sizeof *out);
	esp_go_done_len -= n;
	pthread_mutex_unlock(&esp_go_done_mu);
	return n;
}

// The callbacks of every asynchronous call (esp_go_submit in request.go).
const esp_callbacks esp_go_whole_cb = {
	sizeof(esp_callbacks), NULL, NULL, NULL, esp_go_on_complete};
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// completionBatch bounds how many completions one cgo call takes.
const completionBatch = 256

var (
	dispatcherOnce sync.Once
	dispatcherErr  error
)

// startDispatcher opens the eventfd and starts the goroutine that completes
// calls; it runs once, before the first asynchronous call is submitted.
func startDispatcher() error {
	dispatcherOnce.Do(func() {
		fd, err := C.esp_go_done_open()
		if fd < 0 {
			dispatcherErr = &Error{Code: Code(C.ESP_EINTERNAL),
				Message: fmt.Sprintf("cannot create the completion eventfd: %v", err)}
			return
		}
		// Non-blocking, so reads park the goroutine in the netpoller, not a thread.
		events := os.NewFile(uintptr(fd), "libesp-completions")
		go dispatch(events)
	})
	return dispatcherErr
}

// dispatch completes queued calls for the life of the process.
//
// It reads the eventfd inside one RawConn.Read that never returns: the
// callback drains the counter and the queue and asks to wait again. An
// eventfd read takes the whole counter, so after one that read something the
// descriptor is known empty and the next write is a new edge for Go's
// (edge-triggered) netpoller: the read that would only find EAGAIN before
// each park, a syscall per wake-up, is not made. (A new File.Read would be
// needed for every wake-up, and it forgets the edges seen before it starts.)
func dispatch(events *os.File) {
	batch := (*[completionBatch]C.esp_go_done)(C.malloc(C.size_t(unsafe.Sizeof(C.esp_go_done{})) * completionBatch))
	raw, err := events.SyscallConn()
	if err != nil {
		panic("libesp: the completion eventfd: " + err.Error())
	}
	var counter [8]byte
	err = raw.Read(func(fd uintptr) bool {
		_, err := syscall.Read(int(fd), counter[:])
		for err == syscall.EINTR {
			_, err = syscall.Read(int(fd), counter[:])
		}
		switch err {
		case nil:
			completeQueued(batch)
		case syscall.EAGAIN: // nothing yet: park until the next write
		default:
			panic("libesp: reading the completion eventfd: " + err.Error())
		}
		return false
	})
	panic("libesp: waiting on the completion eventfd: " + err.Error())
}

// completeQueued completes everything queued.
func completeQueued(batch *[completionBatch]C.esp_go_done) {
	for {
		n := int(C.esp_go_take_done(&batch[0], completionBatch))
		for _, done := range batch[:n] {
			var err *Error
			if done.status < 0 {
				err = &Error{Code: Code(done.status), Message: C.GoString(done.msg), RequestSent: done.sent != 0}
				C.free(unsafe.Pointer(done.msg))
			}
			callsInFlight.take(uintptr(done.user)).complete(err, done.resp)
		}
		if n < completionBatch {
			return
		}
	}
}

// start submits req as an asynchronous call whose completion reaches state
// through its id in callsInFlight. The id is taken back once the call is
// completed, or here if libesp refused the call (it then never calls back).
func (c *Client) start(req *Request, state completer) (C.esp_call, error) {
	if err := startDispatcher(); err != nil {
		return 0, err
	}
	id := callsInFlight.add(state)
	call, err := c.submit(startCall, req, C.uintptr_t(id))
	if err != nil {
		callsInFlight.take(id)
		return 0, err
	}
	return call, nil
}

// callTable holds the asynchronous calls in flight under small integer ids,
// the user pointer libesp carries to the completion; an id is reused once
// its call completed. (A cgo.Handle costs a sync.Map insert and delete, and
// their allocations, per call.)
type callTable struct {
	mu    sync.Mutex
	calls []completer // calls[id-1]; 0 is never an id
	free  []uintptr
}

var callsInFlight callTable

func (t *callTable) add(c completer) uintptr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.free); n > 0 {
		id := t.free[n-1]
		t.free = t.free[:n-1]
		t.calls[id-1] = c
		return id
	}
	t.calls = append(t.calls, c)
	return uintptr(len(t.calls))
}

// take removes and returns the call of id, which completes exactly once.
func (t *callTable) take(id uintptr) completer {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.calls[id-1]
	t.calls[id-1] = nil
	t.free = append(t.free, id)
	return c
}
