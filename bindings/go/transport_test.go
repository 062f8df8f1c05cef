package esp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// closeTracker is a request body that records being closed.
type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error { c.closed.Store(true); return nil }

func newHTTPClient(t *testing.T) *http.Client {
	return &http.Client{Transport: newClient(t, mockConfig()).Transport()}
}

func TestTransportGet(t *testing.T) {
	hc := newHTTPClient(t)
	resp, err := hc.Get(mockURL() + "/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var models struct {
		Data []struct{ ID string } `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&models); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" || len(models.Data) == 0 {
		t.Fatalf("status %d, proto %s, models %+v", resp.StatusCode, resp.Proto, models)
	}
	if resp.ContentLength <= 0 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("content length %d, headers %v", resp.ContentLength, resp.Header)
	}
}

func TestTransportPostSendsAndClosesTheBody(t *testing.T) {
	hc := newHTTPClient(t)
	body := &closeTracker{Reader: strings.NewReader(`{"hello":"world"}`)}
	req, err := http.NewRequest("POST", echoURL(), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Trace", "abc")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !body.closed.Load() {
		t.Fatal("RoundTrip did not close the request body")
	}
	var echo struct {
		Method  string            `json:"method"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		t.Fatal(err)
	}
	if echo.Method != "POST" || echo.Body != `{"hello":"world"}` || echo.Headers["x-trace"] != "abc" {
		t.Fatalf("echo %+v", echo)
	}
}

func TestTransportHTTPErrorIsAResponse(t *testing.T) {
	hc := newHTTPClient(t)
	req, _ := http.NewRequest("GET", mockURL()+"/models", nil)
	req.Header.Set("X-Mock-Status", "503")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Status != "503 Service Unavailable" || !strings.Contains(string(b), "service_unavailable") {
		t.Fatalf("%s %q", resp.Status, b)
	}
}

func TestTransportStreamsTheBody(t *testing.T) {
	hc := newHTTPClient(t)
	req, _ := http.NewRequest("POST", mockURL()+"/chat/completions", strings.NewReader(string(chatBody(true))))
	req.Header.Set("X-Mock-Events", "20")
	req.Header.Set("X-Mock-Chunk-Delay-Ms", "20")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	lines := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			lines++
		}
	}
	if sc.Err() != nil || lines != 23 { // role, 20 tokens, stop, [DONE]
		t.Fatalf("%d data lines: %v", lines, sc.Err())
	}
}

func TestTransportBodyCloseCancelsTheCall(t *testing.T) {
	hc := newHTTPClient(t)
	req, _ := http.NewRequest("POST", mockURL()+"/chat/completions", strings.NewReader(string(chatBody(true))))
	req.Header.Set("X-Mock-Events", "1000")
	req.Header.Set("X-Mock-Chunk-Delay-Ms", "50")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { resp.Body.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closing an unfinished body did not cancel the call")
	}
}

func TestTransportHonoursTheRequestContext(t *testing.T) {
	hc := newHTTPClient(t)

	// Before the headers: RoundTrip itself returns the context's error.
	ctx, cancel := context.WithTimeout(background, 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", mockURL()+"/models", nil)
	req.Header.Set("X-Mock-Hang", "1")
	if _, err := hc.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context.DeadlineExceeded, got %v", err)
	}

	// http.Client.Timeout reaches the transport the same way.
	timed := &http.Client{Transport: hc.Transport, Timeout: 200 * time.Millisecond}
	req, _ = http.NewRequest("GET", mockURL()+"/models", nil)
	req.Header.Set("X-Mock-Hang", "1")
	if _, err := timed.Do(req); err == nil || !err.(interface{ Timeout() bool }).Timeout() {
		t.Fatalf("want a timeout from http.Client.Timeout, got %v", err)
	}

	// Mid-body: a waiting Read returns it.
	ctx, cancel = context.WithCancel(background)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "POST", mockURL()+"/chat/completions", strings.NewReader(string(chatBody(true))))
	req.Header.Set("X-Mock-Events", "1000")
	req.Header.Set("X-Mock-Chunk-Delay-Ms", "50")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled from Read, got %v", err)
	}
}
