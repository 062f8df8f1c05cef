package esp

/*
#include <stdlib.h>
#include <esp.h>
*/
import "C"

import (
	"context"
	"errors"
	"unsafe"
)

// Code is a libesp status code (esp_status): negative for a failure.
type Code int

// The failure codes of libesp. Their values are those of the C ABI.
const (
	CodeInvalid     Code = C.ESP_EINVAL       // bad argument
	CodeConfig      Code = C.ESP_ECONFIG      // config malformed, unknown key or wrong type
	CodeHandle      Code = C.ESP_EHANDLE      // handle released, stale or never valid
	CodeNoMem       Code = C.ESP_ENOMEM       // out of memory
	CodeTimeout     Code = C.ESP_ETIMEDOUT    // total, connect, first-byte or idle timeout
	CodePoolTimeout Code = C.ESP_EPOOLTIMEOUT // no connection slot within pool_timeout_ms
	CodeConnect     Code = C.ESP_ECONNECT     // DNS, TCP connect, connection refused or reset
	CodeTLS         Code = C.ESP_ETLS         // TLS handshake or certificate verification
	CodeIO          Code = C.ESP_EIO          // send/receive failure on an established connection
	CodeProtocol    Code = C.ESP_EPROTOCOL    // the server did not speak HTTP
	CodeCancelled   Code = C.ESP_ECANCELLED   // cancelled (context, Close)
	CodeCircuit     Code = C.ESP_ECIRCUIT     // the origin's circuit breaker is open
	CodeTooLarge    Code = C.ESP_ETOOLARGE    // response larger than max_response_bytes
	CodeShutdown    Code = C.ESP_ESHUTDOWN    // libesp shut down while the call was in flight
	CodeInternal    Code = C.ESP_EINTERNAL    // a bug in libesp
	CodeAgain       Code = C.ESP_EAGAIN       // nothing arrived within a wait
	CodeRateLimited Code = C.ESP_ERATELIMITED // rate_limit: no budget before the request's timeout
)

// String returns libesp's fixed description of the code.
func (c Code) String() string {
	return C.GoString(C.esp_strerror(C.int(c)))
}

// Error is a libesp failure: its status code and the detail libesp gave.
//
// errors.Is(err, ErrX) holds when err is an *Error with the code of ErrX.
// An error caused by a context (cancellation or deadline) has code
// [CodeCancelled] and also unwraps to the context's error, so
// errors.Is(err, context.DeadlineExceeded) holds too.
type Error struct {
	Code    Code
	Message string
	// RequestSent is true when the failure came after the request may have
	// reached the server, which may then have processed it (a POST may have
	// taken effect): esp_last_error_sent. False means it was never sent.
	RequestSent bool
	cause       error
}

// Error formats the failure as "esp: <detail>".
func (e *Error) Error() string {
	if e.Message != "" {
		return "esp: " + e.Message
	}
	return "esp: " + e.Code.String()
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Timeout reports whether the failure was a timeout: libesp's own, a pool
// wait, or a context deadline. With it an *Error is a [net.Error] as far as
// timeouts go, so *url.Error.Timeout() holds for a RoundTrip that timed out.
func (e *Error) Timeout() bool {
	return e.Code == CodeTimeout || e.Code == CodePoolTimeout || errors.Is(e.cause, context.DeadlineExceeded)
}

// Unwrap returns the context error that caused a cancellation, if any.
func (e *Error) Unwrap() error { return e.cause }

// Sentinels, one per failure code, for errors.Is.
var (
	ErrInvalid     = &Error{Code: CodeInvalid}
	ErrConfig      = &Error{Code: CodeConfig}
	ErrHandle      = &Error{Code: CodeHandle}
	ErrNoMem       = &Error{Code: CodeNoMem}
	ErrTimeout     = &Error{Code: CodeTimeout}
	ErrPoolTimeout = &Error{Code: CodePoolTimeout}
	ErrConnect     = &Error{Code: CodeConnect}
	ErrTLS         = &Error{Code: CodeTLS}
	ErrIO          = &Error{Code: CodeIO}
	ErrProtocol    = &Error{Code: CodeProtocol}
	ErrCancelled   = &Error{Code: CodeCancelled}
	ErrCircuit     = &Error{Code: CodeCircuit}
	ErrTooLarge    = &Error{Code: CodeTooLarge}
	ErrShutdown    = &Error{Code: CodeShutdown}
	ErrInternal    = &Error{Code: CodeInternal}
	ErrAgain       = &Error{Code: CodeAgain}
	ErrRateLimited = &Error{Code: CodeRateLimited}
)

// newError builds the error of a failed call from its status and the copy
// of esp_last_error the shim made (freed here; NULL is allowed).
func newError(rc C.int, msg *C.char) *Error {
	e := &Error{Code: Code(rc)}
	if msg != nil {
		e.Message = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	return e
}

// contextError maps the failure of a call made under ctx: a cancellation
// that ctx caused becomes an error wrapping ctx's error.
func contextError(ctx context.Context, err *Error) error {
	if err.Code == CodeCancelled {
		if cause := ctx.Err(); cause != nil {
			return &Error{Code: CodeCancelled, Message: cause.Error(), RequestSent: err.RequestSent, cause: cause}
		}
	}
	return err
}
