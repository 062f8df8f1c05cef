package esp

// A NUL byte in a request's method, path or header would cut the C string
// there, and the cut request would go out: every way of sending refuses it
// with ErrInvalid instead, naming the string, and nothing reaches the server.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

var nulKeys atomic.Int64

// receivedBy lists the requests the mock recorded under key.
func receivedBy(t *testing.T, key string) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/_mock/requests?key=%s", mock.HTTPPort, key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var records []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&records); err != nil {
		t.Fatal(err)
	}
	return len(records)
}

func TestANulInTheMethodPathOrAHeaderIsRefusedAndNothingIsSent(t *testing.T) {
	c := newClient(t, mockConfig())
	cases := []struct {
		name, want string
		req        func(h http.Header) *Request
	}{
		{"method", "method is not a valid HTTP method token",
			func(h http.Header) *Request { return &Request{Method: "GET\x00X", Path: "models", Header: h} }},
		{"path", "path contains white space or control characters",
			func(h http.Header) *Request { return &Request{Path: "models\x00/../admin", Header: h} }},
		{"header name", `header "X-Cut\x00Off" has an invalid name`,
			func(h http.Header) *Request {
				h["X-Cut\x00Off"] = []string{"v"}
				return &Request{Path: "models", Header: h}
			}},
		{"header value", "header 'X-Secret' value contains a NUL byte",
			func(h http.Header) *Request {
				h.Set("X-Secret", "sk-abc\x00def")
				return &Request{Path: "models", Header: h}
			}},
	}
	cancellable, cancel := context.WithCancel(background)
	defer cancel()
	ways := []struct {
		name string
		send func(*Request) error
	}{
		{"Do", func(r *Request) error { _, err := c.Do(background, r); return err }},
		{"Do with a cancellable context", func(r *Request) error { _, err := c.Do(cancellable, r); return err }},
		{"Stream", func(r *Request) error { _, err := c.Stream(background, r); return err }},
		{"Do beside another call (parked)", func(r *Request) error {
			slow := make(chan error, 1)
			go func() {
				_, err := c.Do(background, &Request{Path: "models", Header: faults("X-Mock-Delay-Ms", "300")})
				slow <- err
			}()
			waitFor(t, "the other call in flight", func() bool { return dosInFlight.Load() > 0 })
			_, err := c.Do(background, r)
			if err := <-slow; err != nil {
				t.Errorf("the other call: %v", err)
			}
			return err
		}},
	}
	for _, way := range ways {
		for _, tc := range cases {
			key := fmt.Sprintf("nul-%d", nulKeys.Add(1))
			err := way.send(tc.req(faults("X-Mock-Key", key)))
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
				t.Errorf("%s, NUL in the %s: want ErrInvalid, got %v", way.name, tc.name, err)
				continue
			}
			if e.Message != tc.want || e.RequestSent {
				t.Errorf("%s, NUL in the %s: %q (sent %v), want %q", way.name, tc.name, e.Message, e.RequestSent, tc.want)
			}
			if strings.Contains(e.Message, "sk-abc") {
				t.Errorf("%s: the message shows the header's value: %q", way.name, e.Message)
			}
			if n := receivedBy(t, key); n != 0 {
				t.Errorf("%s, NUL in the %s: the server received %d requests", way.name, tc.name, n)
			}
		}
	}

	// Through the RoundTripper too (net/http leaves a custom transport's
	// header values unchecked).
	key := fmt.Sprintf("nul-%d", nulKeys.Add(1))
	req, _ := http.NewRequest("GET", mockURL()+"/models", nil)
	req.Header.Set("X-Mock-Key", key)
	req.Header.Set("X-Secret", "a\x00b")
	if _, err := (&http.Client{Transport: c.Transport()}).Do(req); !errors.Is(err, ErrInvalid) {
		t.Errorf("RoundTrip: want ErrInvalid, got %v", err)
	}
	if n := receivedBy(t, key); n != 0 {
		t.Errorf("RoundTrip: the server received %d requests", n)
	}
}
