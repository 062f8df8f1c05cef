package esp

// Requests laid out for C in one buffer of Go memory: every header, however
// many (past the ones the C side points to from its stack), its method, path
// and body reach the server, on the blocking path, on parked calls and on a
// stream (which copies the layout into C memory).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

func TestEveryRequestHeaderReachesTheServer(t *testing.T) {
	const distinct = 40 // more than esp_go_submit's ESP_GO_STACK_HEADERS
	c := newClient(t, mockConfig())
	header := http.Header{}
	for i := 0; i < distinct; i++ {
		header.Set(fmt.Sprintf("X-Request-%02d", i), fmt.Sprintf("value %d", i))
	}
	header.Set("X-Empty", "")
	req := &Request{Method: "PATCH", Path: echoURL(), Header: header, Body: []byte("a\x00body")}

	check := func(body []byte) {
		t.Helper()
		var echo struct {
			Method  string            `json:"method"`
			Path    string            `json:"path"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}
		if err := json.Unmarshal(body, &echo); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if echo.Method != "PATCH" || echo.Path != "/echo" || echo.Body != "a\x00body" {
			t.Fatalf("echo %s %s %q", echo.Method, echo.Path, echo.Body)
		}
		for i := 0; i < distinct; i++ {
			name, want := fmt.Sprintf("x-request-%02d", i), fmt.Sprintf("value %d", i)
			if got := echo.Headers[name]; got != want {
				t.Fatalf("%s: got %q, want %q", name, got, want)
			}
		}
		if got, ok := echo.Headers["x-empty"]; !ok || got != "" {
			t.Fatalf("x-empty: %q, %v", got, ok)
		}
	}
	resp, err := c.Do(background, req)
	if err != nil {
		t.Fatal(err)
	}
	check(resp.Body)

	var wg sync.WaitGroup
	bodies := make([][]byte, 16)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := c.Do(background, req); err == nil {
				bodies[i] = resp.Body
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, body := range bodies {
		check(body)
	}

	s, err := c.Stream(background, req)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var streamed []byte
	for s.Next() {
		streamed = append(streamed, s.Event().Data...)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	check(streamed)
}
