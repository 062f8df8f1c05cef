package esp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
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

// Paced events each wake a parked reader (through ready's flag and eventfd,
// never read): with several streams at once, some wake-ups land while the
// reader is about to park, some after. A lost one would hang a reader until
// the deadline; a doubled or reordered event would break the text.
func TestStreamPacedEventsEachWakeTheirParkedReader(t *testing.T) {
	const streams, events = 8, 60
	c := newClient(t, mockConfig())
	ctx, cancel := context.WithTimeout(background, 30*time.Second)
	defer cancel()
	var want strings.Builder
	for i := range events {
		fmt.Fprintf(&want, "tok%d ", i)
	}
	errs := make(chan error, streams)
	for range streams {
		s := openChatStream(t, ctx, c, false, "X-Mock-Events", strconv.Itoa(events), "X-Mock-Chunk-Delay-Ms", "1")
		go func() {
			var text strings.Builder
			n := 0
			for s.Next() {
				n++
				var chunk struct {
					Choices []struct {
						Delta struct{ Content string } `json:"delta"`
					} `json:"choices"`
				}
				if string(s.Event().Data) != "[DONE]" && json.Unmarshal(s.Event().Data, &chunk) == nil {
					for _, ch := range chunk.Choices {
						text.WriteString(ch.Delta.Content)
					}
				}
			}
			switch {
			case s.Err() != nil:
				errs <- s.Err()
			case n != events+3 || text.String() != want.String():
				errs <- fmt.Errorf("%d events, content %q", n, text.String())
			default:
				errs <- nil
			}
		}()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A reader that falls behind takes many events per look at libesp: each must
// keep its own type and data, in order.
func TestStreamEventsReadLateKeepTheirTypesAndOrder(t *testing.T) {
	c := newClient(t, mockConfig())
	body := []byte(`{"model":"claude-mock","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	s, err := c.Stream(background, &Request{Method: "POST", Path: "messages", Header: faults("X-Mock-Events", "200"), Body: body})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(300 * time.Millisecond) // the whole body arrives meanwhile
	var types []string
	for s.Next() {
		ev := s.Event()
		var doc struct{ Type string }
		if err := json.Unmarshal(ev.Data, &doc); err != nil || doc.Type != ev.Type || ev.ID != "" || ev.Retry != 0 {
			t.Fatalf("event %d: %+v (data %q, %v)", len(types), ev, ev.Data, err)
		}
		types = append(types, ev.Type)
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	want := []string{"message_start", "content_block_start"}
	for i := 0; i < 200; i++ {
		want = append(want, "content_block_delta")
	}
	want = append(want, "content_block_stop", "message_delta", "message_stop")
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("%d events, types %v", len(types), types)
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

// clientGauges reads a client's stream gauges from its stats.
func clientGauges(t *testing.T, c *Client) (paused, buffered int) {
	t.Helper()
	b, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Client struct {
			Paused   *int `json:"streams_paused"`
			Buffered *int `json:"stream_buffered_bytes"`
		} `json:"client"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Client.Paused == nil || st.Client.Buffered == nil {
		t.Fatalf("stats without streams_paused / stream_buffered_bytes: %v\n%s", err, b)
	}
	return *st.Client.Paused, *st.Client.Buffered
}

func TestStreamBackpressurePausesTheTransfer(t *testing.T) {
	const size = 16 << 20
	cfg := mockConfig()
	c := newClient(t, cfg)
	s, err := c.Stream(background, &Request{Path: "models", Header: faults("X-Mock-Body-Bytes", "16777216")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Read nothing for a while: libesp must hold the transfer paused near its
	// stream_buffer_bytes (1 MiB) rather than buffer the whole body.
	time.Sleep(time.Second)
	paused, buffered := clientGauges(t, c)
	if paused != 1 || buffered < 1<<20 || buffered > 2<<20 {
		t.Fatalf("idle reader: %d streams paused, %d bytes buffered", paused, buffered)
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
	if paused, buffered := clientGauges(t, c); paused != 0 || buffered != 0 {
		t.Fatalf("after the end: %d streams paused, %d bytes buffered", paused, buffered)
	}
}

func TestStreamOfANonSSEBodyDeliversRawChunks(t *testing.T) {
	c := newClient(t, mockConfig())
	s, err := c.Stream(background, &Request{Method: "POST", Path: "chat/completions", Body: chatBody(false)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var body bytes.Buffer
	for s.Next() {
		if ev := s.Event(); ev.Type != "" {
			t.Fatalf("a JSON body delivered an SSE event %+v", ev)
		}
		body.Write(s.Event().Data)
	}
	var doc struct{ Object string }
	if s.Err() != nil || json.Unmarshal(body.Bytes(), &doc) != nil || doc.Object != "chat.completion" {
		t.Fatalf("err %v, body %q", s.Err(), body.String())
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
	if n := *readStats(t).StreamsOpen; n != 1 {
		t.Fatalf("%d streams open, want the forgotten one", n)
	}
	waitFor(t, "the forgotten stream to be closed", func() bool { return *readStats(t).StreamsOpen == 0 })
}

// eventfdCount counts this process's eventfd descriptors.
func eventfdCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "anon_inode:[eventfd]" {
			n++
		}
	}
	return n
}

// Each live stream's reader waits on a descriptor of its own; it must go with
// the stream (at Close, after the body ended or not) and never outlive a
// refused start, or a gateway's descriptors would run out stream by stream.
func TestStreamWakeDescriptorsGoWithTheirStreams(t *testing.T) {
	c := newClient(t, mockConfig())
	if resp, err := c.Do(background, &Request{Path: "models"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("warm-up: %v", err) // the engine and its own descriptors exist before counting
	}
	before := eventfdCount(t)
	streams := make([]*Stream, 10)
	for i := range streams {
		streams[i] = openChatStream(t, background, c, false, "X-Mock-Events", "3")
	}
	if during := eventfdCount(t); during < before+len(streams) {
		t.Fatalf("%d eventfds with %d streams open, %d before", during, len(streams), before)
	}
	for streams[0].Next() { // one read to its end, the others closed mid-body
	}
	if err := streams[0].Err(); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		s.Close()
	}
	for range 20 {
		if _, err := c.Stream(background, &Request{Path: "ftp://example.com/x"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a stream to ftp:// started: %v", err)
		}
	}
	// Other tests' streams may still be closing (their GC cleanups): fewer is fine, more is a leak.
	if after := eventfdCount(t); after > before {
		t.Fatalf("%d eventfds after every stream closed, %d before", after, before)
	}
}
