package esp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// openChatStream starts a streamed chat completion with extra mock headers.
func openChatStream(t *testing.T, ctx context.Context, c *Client, raw bool, kv ...string) *Stream {
	t.Helper()
	s, err := c.Stream(ctx, &Request{Method: "POST", Path: "chat/completions", Header: faults(kv...), Body: chatBody(true), Raw: raw})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStreamDeliversSSEEvents(t *testing.T) {
	c := newClient(t, mockConfig())
	s := openChatStream(t, background, c, false, "X-Mock-Events", "5")
	if head := s.Response(); head.StatusCode != 200 || !strings.HasPrefix(head.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("head %+v", head)
	}
	var text strings.Builder
	var data []string
	for s.Next() {
		ev := s.Event()
		if ev.Type != "message" {
			t.Fatalf("event type %q", ev.Type)
		}
		data = append(data, string(ev.Data))
		if string(ev.Data) == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(ev.Data, &chunk); err != nil {
			t.Fatalf("event data %q: %v", ev.Data, err)
		}
		for _, ch := range chunk.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	// role chunk, 5 content chunks, the stop chunk, [DONE]
	if len(data) != 8 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("events %q", data)
	}
	if got := text.String(); got != "tok0 tok1 tok2 tok3 tok4 " {
		t.Fatalf("content %q", got)
	}
}

func TestStreamRawDeliversBodyBytes(t *testing.T) {
	c := newClient(t, mockConfig())
	s := openChatStream(t, background, c, true, "X-Mock-Events", "3", "X-Mock-Byte-By-Byte", "1")
	var body bytes.Buffer
	for s.Next() {
		if ev := s.Event(); ev.Type != "" {
			t.Fatalf("a raw stream delivered an SSE event %+v", ev)
		}
		body.Write(s.Event().Data)
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	if n := strings.Count(body.String(), "data: "); n != 6 || !strings.HasSuffix(body.String(), "data: [DONE]\n\n") {
		t.Fatalf("raw body (%d data lines) %q", n, body.String())
	}
}

func TestStreamOfAnHTTPErrorReadsTheErrorBody(t *testing.T) {
	c := newClient(t, mockConfig())
	s := openChatStream(t, background, c, false, "X-Mock-Status", "429")
	if s.Response().StatusCode != 429 {
		t.Fatalf("status %d", s.Response().StatusCode)
	}
	var body bytes.Buffer
	for s.Next() {
		body.Write(s.Event().Data)
	}
	if s.Err() != nil || !strings.Contains(body.String(), "rate_limit") {
		t.Fatalf("err %v, body %q", s.Err(), body.String())
	}
}

func TestStreamFailureBeforeHeadersIsAnError(t *testing.T) {
	c := newClient(t, mockConfig())
	_, err := c.Stream(background, &Request{Path: "models", Header: faults("X-Mock-Drop", "before-headers")})
	if err == nil || errors.Is(err, ErrCancelled) {
		t.Fatalf("want a transfer error, got %v", err)
	}
}

func TestStreamContextCancelStopsNext(t *testing.T) {
	c := newClient(t, mockConfig())
	ctx, cancel := context.WithCancel(background)
	defer cancel()
	s := openChatStream(t, ctx, c, false, "X-Mock-Events", "1000", "X-Mock-Chunk-Delay-Ms", "50")
	if !s.Next() {
		t.Fatalf("no first event: %v", s.Err())
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	n := 0
	for s.Next() {
		n++
	}
	if !errors.Is(s.Err(), context.Canceled) || !errors.Is(s.Err(), ErrCancelled) {
		t.Fatalf("after %d events: want context.Canceled, got %v", n, s.Err())
	}
	if n > 500 {
		t.Fatalf("the stream ran on for %d events after cancel", n)
	}
}

func TestStreamCloseMidBodyCancels(t *testing.T) {
	c := newClient(t, mockConfig())
	s, err := c.Stream(background, &Request{Method: "POST", Path: "chat/completions",
		Header: faults("X-Mock-Events", "1000", "X-Mock-Chunk-Delay-Ms", "50"), Body: chatBody(true)})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Next() {
		t.Fatal(s.Err())
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The client and its pool are fine after the cancelled stream.
	if resp, err := c.Do(background, &Request{Path: "models"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after Close: %v", err)
	}
}

func TestStreamBackpressurePausesTheTransfer(t *testing.T) {
	const size = 16 << 20
	c := newClient(t, mockConfig())
	s, err := c.Stream(background, &Request{Path: "models", Header: faults("X-Mock-Body-Bytes", "16777216")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Read nothing for a while: the transfer must stop near the high-water
	// mark rather than buffer the whole body in Go.
	time.Sleep(time.Second)
	s.call.mu.Lock()
	queued := s.call.queuedBytes
	s.call.mu.Unlock()
	if queued > 2*streamHighWater {
		t.Fatalf("%d bytes queued while the reader was idle; the transfer was not paused", queued)
	}
	total := 0
	for s.Next() {
		ev := s.Event()
		if bytes.Count(ev.Data, []byte("x")) != len(ev.Data) {
			t.Fatalf("corrupt chunk at offset %d", total)
		}
		total += len(ev.Data)
	}
	if s.Err() != nil || total != size {
		t.Fatalf("read %d of %d bytes: %v", total, size, s.Err())
	}
}

func TestForgottenStreamIsCancelledByGC(t *testing.T) {
	c := newClient(t, mockConfig())
	func() {
		s, err := c.Stream(background, &Request{Method: "POST", Path: "chat/completions",
			Header: faults("X-Mock-Events", "1000", "X-Mock-Chunk-Delay-Ms", "50"), Body: chatBody(true)})
		if err != nil {
			t.Fatal(err)
		}
		if !s.Next() {
			t.Fatal(s.Err())
		}
	}()
	if n := *readStats(t).CallsLive; n != 1 {
		t.Fatalf("%d calls live, want the forgotten stream's", n)
	}
	waitFor(t, "the forgotten stream's call to be cancelled", func() bool { return *readStats(t).CallsLive == 0 })
}
