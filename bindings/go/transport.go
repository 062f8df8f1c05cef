package esp

/*
#include <esp.h>
*/
import "C"

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
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
func (c *Client) Transport() http.RoundTripper { return roundTripper{c} }

type roundTripper struct{ client *Client }

// RoundTrip sends req and returns once the response head is in.
func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		// RoundTrip owns req.Body and must close it, also on failure.
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	header := req.Header
	if req.Host != "" && req.Host != req.URL.Host {
		header = header.Clone()
		header.Set("Host", req.Host)
	}
	call, err := t.client.openStream(req.Context(), &Request{
		Method: req.Method,
		Path:   req.URL.String(),
		Header: header,
		Body:   body,
		Raw:    true,
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
