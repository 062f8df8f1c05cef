// Package esp is the Go binding of libesp: one shared, pooled, config-keyed
// HTTP client for LLM provider APIs, implemented in C and shared by every
// language in the process.
//
// The binding is thin. Config validation, retries, timeouts, pooling and
// Server-Sent-Events parsing all happen in libesp; this package converts
// types and maps the C lifecycle onto Go idioms:
//
//   - [Get] takes a lease on the shared client for a [Config]; [Client.Close]
//     drops it (a forgotten lease is dropped once the Client is garbage
//     collected).
//   - [Client.Do] and [Client.Stream] take a [context.Context]: cancelling it
//     cancels the request inside libesp.
//   - Requests run on libesp's I/O thread and complete through callbacks, so
//     thousands of concurrent requests cost goroutines, not OS threads.
//   - [Client.Transport] is an [net/http.RoundTripper], so Go SDKs that accept
//     an *http.Client (openai-go, ...) run on libesp unchanged; [Install]
//     puts one under http.DefaultTransport, so SDKs given no client at all
//     (openai-go, anthropic-sdk-go) and http.Get run on libesp too.
//
// Failures are [*Error] values that match the sentinels ([ErrTimeout],
// [ErrConnect], ...) with [errors.Is]. An HTTP error status (404, 429, 500)
// is not a failure: it is in the [Response].
package esp

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <esp.h>

// esp_last_error() is per thread and only valid until the next libesp call
// on that thread, while Go may move a goroutine to another thread between
// two cgo calls. So every fallible call goes through a shim that copies the
// detail in the same cgo call that failed (the caller frees *err).
#define ESP_GO_KEEP_ERROR(rc, err) \
	do { if ((rc) < 0) *(err) = strdup(esp_last_error()); } while (0)

static int esp_go_client_get(const char *config, esp_client *out, char **err) {
	int rc = esp_client_get(config, out);
	ESP_GO_KEEP_ERROR(rc, err);
	return rc;
}

static int esp_go_client_release(esp_client client, char **err) {
	int rc = esp_client_release(client);
	ESP_GO_KEEP_ERROR(rc, err);
	return rc;
}

static int esp_go_client_stats(esp_client client, char **json, char **err) {
	int rc = esp_client_stats(client, json);
	ESP_GO_KEEP_ERROR(rc, err);
	return rc;
}

static int esp_go_stats(char **json, char **err) {
	int rc = esp_stats(json);
	ESP_GO_KEEP_ERROR(rc, err);
	return rc;
}

static int esp_go_metrics(char **text, char **err) {
	int rc = esp_metrics_prometheus(text);
	ESP_GO_KEEP_ERROR(rc, err);
	return rc;
}
*/
import "C"

import (
	"encoding/json"
	"runtime"
	"sync"
	"unsafe"
)

// Client is a lease on a shared libesp client. Clients obtained with equal
// configs share one connection pool; each Client is its own lease.
//
// A Client is safe for concurrent use. Call [Client.Close] when done; a
// Client that is garbage collected without Close has its lease released then.
type Client struct {
	handle    C.esp_client
	closeOnce sync.Once
	closeErr  error
	// releaseLease is the GC fallback for a Client that was never closed.
	releaseLease runtime.Cleanup
}

// Get takes a lease on the shared client for cfg. Zero fields of cfg mean
// libesp's defaults.
func Get(cfg Config) (*Client, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return GetJSON(string(b))
}

// GetJSON takes a lease on the shared client for a config given as a JSON
// object (see the libesp README for its keys); "" means "{}". A malformed
// config, an unknown key or a wrong type yields an error matching
// [ErrConfig] whose message names the key.
func GetJSON(config string) (*Client, error) {
	cConfig := C.CString(config)
	defer C.free(unsafe.Pointer(cConfig))
	var handle C.esp_client
	var msg *C.char
	if rc := C.esp_go_client_get(cConfig, &handle, &msg); rc < 0 {
		return nil, newError(rc, msg)
	}
	c := &Client{handle: handle}
	c.releaseLease = runtime.AddCleanup(c, func(h C.esp_client) {
		C.esp_client_release(h)
	}, handle)
	return c, nil
}

// Close releases the lease. Requests in flight finish; the shared client
// lingers for its idle_ttl_ms so that a new lease on the same config reuses
// its warm connections. Close is idempotent: later calls return the first
// call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.releaseLease.Stop()
		var msg *C.char
		if rc := C.esp_go_client_release(c.handle, &msg); rc < 0 {
			c.closeErr = newError(rc, msg)
		}
	})
	return c.closeErr
}

// Stats returns this client's statistics (its origins, requests, connections
// and latency) as JSON.
func (c *Client) Stats() ([]byte, error) {
	var out, msg *C.char
	rc := C.esp_go_client_stats(c.handle, &out, &msg)
	runtime.KeepAlive(c)
	return takeCString(rc, out, msg)
}

// Stats returns the statistics of the whole process (the client registry,
// every client and origin) as JSON.
func Stats() ([]byte, error) {
	var out, msg *C.char
	rc := C.esp_go_stats(&out, &msg)
	return takeCString(rc, out, msg)
}

// Metrics returns the numbers of [Stats] in the Prometheus text exposition
// format.
func Metrics() (string, error) {
	var out, msg *C.char
	rc := C.esp_go_metrics(&out, &msg)
	b, err := takeCString(rc, out, msg)
	return string(b), err
}

// takeCString copies and frees a string returned by libesp.
func takeCString(rc C.int, s, msg *C.char) ([]byte, error) {
	if rc < 0 {
		return nil, newError(rc, msg)
	}
	defer C.esp_free(unsafe.Pointer(s))
	return C.GoBytes(unsafe.Pointer(s), C.int(C.strlen(s))), nil
}

// Version returns the version of the loaded libesp and of its libcurl, e.g.
// "0.1.0 (libcurl/7.88.1 ...)".
func Version() string {
	return C.GoString(C.esp_version_string())
}
