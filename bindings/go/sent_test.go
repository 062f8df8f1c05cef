package esp

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A failure says whether the request may have reached the server: after the
// server read it and dropped the connection it may have been processed; a
// refused connection never carried it.
func TestErrorsSayWhetherTheRequestMayHaveBeenSent(t *testing.T) {
	c := newClient(t, mockConfig())
	dropped := &Request{Method: "POST", Path: "chat/completions", Body: chatBody(false), NoRetry: true,
		Header: faults("X-Mock-Drop", "before-headers")}
	refused := &Request{Method: "POST", Path: fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", closedPort(t)),
		Body: chatBody(false), NoRetry: true}

	check := func(how string, err error, wantSent bool) {
		t.Helper()
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: want an *esp.Error, got %v", how, err)
		}
		if e.RequestSent != wantSent {
			t.Fatalf("%s: RequestSent %v, want %v (%v)", how, e.RequestSent, wantSent, err)
		}
		if wantSent && !strings.Contains(e.Message, "may have reached the server") {
			t.Fatalf("%s: the message does not say so: %q", how, e.Message)
		}
	}
	_, err := c.Do(background, dropped)
	check("Do, dropped", err, true)
	_, err = c.Do(background, refused)
	check("Do, refused", err, false)
	_, err = c.Stream(background, dropped)
	check("Stream, dropped", err, true)
	_, err = c.Stream(background, refused)
	check("Stream, refused", err, false)

	// Through the RoundTripper, inside http.Client's *url.Error.
	req, _ := http.NewRequest("POST", mockURL()+"/chat/completions", strings.NewReader(string(chatBody(false))))
	req.Header.Set("X-Mock-Drop", "before-headers")
	_, err = (&http.Client{Transport: newClient(t, Config{BaseURL: mockURL(), MaxRetries: Ptr(0)}).Transport()}).Do(req)
	check("RoundTrip, dropped", err, true)
}
