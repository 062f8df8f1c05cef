package esp

// Responses copied into Go: every header, however many, in both the blocking
// path (a lone Do) and the parked one (Do calls in flight together).

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestEveryResponseHeaderReachesGo(t *testing.T) {
	const distinct = 45 // more than the headers read in the first cgo call
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < distinct; i++ {
			w.Header().Set(fmt.Sprintf("X-Bench-%02d", i), fmt.Sprintf("value %d", i))
		}
		w.Header()["X-Repeated"] = []string{"first", "second"}
		w.Header()["42"] = []string{"a name canonicalization leaves as it is"}
		w.Header()["X-Empty"] = []string{""}
		fmt.Fprint(w, "body")
	}))
	defer server.Close()
	c := newClient(t, Config{BaseURL: server.URL, MaxRetries: Ptr(0)})

	check := func(resp *Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || string(resp.Body) != "body" || resp.Attempts != 1 || resp.HTTPVersion != 11 {
			t.Fatalf("got %d %q attempts %d version %d", resp.StatusCode, resp.Body, resp.Attempts, resp.HTTPVersion)
		}
		for i := 0; i < distinct; i++ {
			name, want := fmt.Sprintf("X-Bench-%02d", i), fmt.Sprintf("value %d", i)
			if got := resp.Header.Values(name); len(got) != 1 || got[0] != want {
				t.Fatalf("%s: got %q, want %q", name, got, want)
			}
		}
		if got := resp.Header.Values("X-Repeated"); len(got) != 2 || got[0] != "first" || got[1] != "second" {
			t.Fatalf("X-Repeated: got %q", got)
		}
		// Read after libesp's response was freed: the name is Go's own copy.
		if got := resp.Header["42"]; len(got) != 1 || got[0] != "a name canonicalization leaves as it is" {
			t.Fatalf("42: got %q in %v", got, resp.Header)
		}
		if got, ok := resp.Header["X-Empty"]; !ok || len(got) != 1 || got[0] != "" {
			t.Fatalf("X-Empty: got %q, %v", got, ok)
		}
	}
	check(c.Do(background, &Request{Path: "headers"}))

	// Together, so that most of them park and complete through the queue.
	type outcome struct {
		resp *Response
		err  error
	}
	outcomes := make([]outcome, 16)
	var wg sync.WaitGroup
	for i := range outcomes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Do(background, &Request{Path: "headers"})
			outcomes[i] = outcome{resp, err}
		}()
	}
	wg.Wait()
	for _, o := range outcomes {
		check(o.resp, o.err)
	}
}
