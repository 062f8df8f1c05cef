package esp

// The direct entry point of libesp's I/O thread into Go, the fallback of
// completions.go's queue when it cannot grow. This file only exports: a cgo
// file with //export may declare but not define C functions in its
// preamble, so the C trampolines that call these live in completions.go.
//
// Each callback only hands over what libesp gives it, without blocking,
// because every other transfer waits while a callback runs.

/*
#include <stdint.h>
#include <esp.h>
*/
import "C"

// completer is the state of an asynchronous call.
type completer interface {
	// complete gets the call's outcome; on failure err carries libesp's
	// detail (msg is only valid during the callback).
	complete(err *Error, resp *C.esp_response)
}

// espGoComplete completes a call directly on the I/O thread; completions.go
// uses it only when its queue cannot grow. A call completes exactly once, so
// this takes its id back.
//
//export espGoComplete
func espGoComplete(user C.uintptr_t, status C.int, resp *C.esp_response, msg *C.char, sent C.int) {
	var err *Error
	if status < 0 {
		err = &Error{Code: Code(status), Message: C.GoString(msg), RequestSent: sent != 0}
	}
	callsInFlight.take(uintptr(user)).complete(err, resp)
}
