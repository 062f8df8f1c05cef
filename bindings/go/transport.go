package esp

/*
#include <esp.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Transport returns an [http.RoundTripper] that sends requests through this
// client, so that anything taking an *http.Client runs on libesp:
//
//	hc := &http.Client{Transport: c.Transport()}
//	oa := openai.NewClient(option.WithHTTPClient(hc), option.WithBaseURL(url))
//
// The request URL is used as is (absolute); the client's config still adds
// its default headers, authentication, retries and timeouts. The response
// body streams as it arrives; closing it early cancels the request, and so
// does cancelling the request's context.
//
// libesp retries on its own (Config.MaxRetries); an SDK with retries of its
// own multiplies the attempts, so set one of the two to 0 (for openai-go,
// option.WithMaxRetries(0)).
//
// The RoundTripper keeps the Client alive; it stops working once the Client
// is closed.
func (c *Client) Transport() http.RoundTripper { return roundTripper{client: c} }

type roundTripper struct {
	client *Client
	// timeout is each request's Request.Timeout: 0 for the client's
	// timeout_ms, negative for none (net/http's own default).
	timeout time.Duration
}

// RoundTrip sends req and returns once the response head is in. Like
// net/http's Transport, it sends only absolute http and https URLs, takes
// the Host from req.Host (a "Host" header is ignored) and leaves the
// hop-by-hop headers to the connection, which here is libesp's.
func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkRequestURL(req); err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip owns req.Body and must close it, also on failure
		}
		return nil, err
	}
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	call, err := t.client.openStream(req.Context(), &Request{
		Method:  method,
		Path:    req.URL.String(),
		Header:  outgoingHeader(req),
		Body:    body,
		Timeout: t.timeout,
		Raw:     true,
	})
	if err != nil {
		return nil, err
	}
	head := call.head
	major, minor := head.HTTPVersion/10, head.HTTPVersion%10
	contentLength := int64(-1)
	if n, err := strconv.ParseInt(head.Header.Get("Content-Length"), 10, 64); err == nil {
		contentLength = n
	}
	rb := &responseBody{call: call}
	rb.cancelOnGC = runtime.AddCleanup(rb, (*streamCall).close, call)
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", head.StatusCode, http.StatusText(head.StatusCode)),
		StatusCode:    head.StatusCode,
		Proto:         fmt.Sprintf("HTTP/%d.%d", major, minor),
		ProtoMajor:    major,
		ProtoMinor:    minor,
		Header:        head.Header,
		Body:          rb,
		ContentLength: contentLength,
		Request:       req,
	}, nil
}

// responseBody streams the body of a RoundTrip response.
type responseBody struct {
	call       *streamCall
	pending    []byte
	closeOnce  sync.Once
	cancelOnGC runtime.Cleanup
}

// Read returns body bytes as they arrive; io.EOF at the end of the body,
// or the failure of the transfer.
func (b *responseBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		chunk, ok := b.call.next()
		if !ok {
			if err := b.call.failure(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		b.pending = chunk.Data
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// Close cancels the transfer if it is unfinished. It may be called while
// another goroutine waits in Read, which then returns an error.
func (b *responseBody) Close() error {
	b.closeOnce.Do(func() {
		b.cancelOnGC.Stop()
		b.call.close()
	})
	return nil
}

// checkRequestURL refuses what net/http's Transport refuses, with its
// messages: a URL that is not an absolute http(s) URL is never sent (libesp
// would take it for a path relative to the client's base_url).
func checkRequestURL(req *http.Request) error {
	if req.URL == nil {
		return errors.New("http: nil Request.URL")
	}
	if scheme := strings.ToLower(req.URL.Scheme); scheme != "http" && scheme != "https" {
		return fmt.Errorf("unsupported protocol scheme %q", req.URL.Scheme)
	}
	if req.URL.Host == "" {
		return errors.New("http: no Host in request URL")
	}
	return nil
}

// connectionHeaders are the headers net/http never copies from
// Request.Header onto the wire: the connection's own (RFC 9110 section 7.6.1,
// which its HTTP/2 transport drops), framing it derives from the body, and
// Host, which comes from Request.Host.
var connectionHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Upgrade", "Te", "Trailer",
	"Transfer-Encoding", "Content-Length", "Host",
}

// outgoingHeader is req.Header as net/http would send it: without the
// connection headers, and with Host only when req.Host overrides the URL's.
// req.Header itself is left as it is (it belongs to the caller).
func outgoingHeader(req *http.Request) http.Header {
	hostOverride := req.Host != "" && req.Host != req.URL.Host
	dirty := hostOverride
	for _, name := range connectionHeaders {
		if _, ok := req.Header[name]; ok {
			dirty = true
		}
	}
	if !dirty {
		return req.Header
	}
	out := req.Header.Clone()
	if out == nil {
		out = http.Header{}
	}
	for _, name := range connectionHeaders {
		delete(out, name)
	}
	if hostOverride {
		out.Set("Host", req.Host)
	}
	return out
}
