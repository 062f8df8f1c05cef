package esp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Request's per-phase timeouts reach libesp, and each names what fired.
func TestPerRequestTimeouts(t *testing.T) {
	c := newClient(t, mockConfig())
	slowloris := fmt.Sprintf("http://127.0.0.1:%d/echo", mock.HTTPPort)

	started := time.Now()
	s, err := c.Stream(background, &Request{Path: slowloris, Header: faults("X-Mock-Slowloris", "1000"),
		ReadTimeout: 200 * time.Millisecond})
	if err == nil {
		for s.Next() {
		}
		err = s.Err()
		s.Close()
	}
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "read timeout") || time.Since(started) > 900*time.Millisecond {
		t.Fatalf("ReadTimeout: %v after %v", err, time.Since(started))
	}

	pooled := newClient(t, Config{BaseURL: mockURL(), MaxRetries: Ptr(0), MaxConnections: 1, Isolate: true})
	busy := make(chan error, 1)
	go func() {
		_, err := pooled.Do(background, &Request{Path: slowloris, Header: faults("X-Mock-Delay-Ms", "600")})
		busy <- err
	}()
	time.Sleep(50 * time.Millisecond)
	started = time.Now()
	if _, err := pooled.Do(background, &Request{Path: slowloris, PoolTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrPoolTimeout) || time.Since(started) > 500*time.Millisecond {
		t.Fatalf("PoolTimeout: %v after %v", err, time.Since(started))
	}
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
}

// FirstByteTimeout and IdleTimeout each bound their own phase: the head, then
// the silences inside the body, apart (a slow first token is not cut by a
// short between-chunks limit), on the blocking path and on parked calls.
func TestFirstByteAndIdleTimeoutsBoundTheirOwnPhase(t *testing.T) {
	// The client's own first-byte limit is shorter than the requests' below,
	// so a failure at the request's limit shows the request's was used.
	c := newClient(t, Config{BaseURL: mockURL(), APIKey: "sk-test", MaxRetries: Ptr(0),
		FirstByteTimeoutMS: 100, BreakerFailures: Ptr(0)})
	timedOut := func(req *Request, phase string, limit time.Duration) {
		t.Helper()
		started := time.Now()
		_, err := c.Do(background, req)
		took := time.Since(started)
		want := fmt.Sprintf("(%d ms)", limit.Milliseconds())
		if !errors.Is(err, ErrTimeout) || !strings.HasPrefix(err.Error(), "esp: "+phase) ||
			!strings.Contains(err.Error(), want) || took < limit || took > limit+time.Second {
			t.Fatalf("%s %v: %v after %v", phase, limit, err, took)
		}
	}
	lateHead := func() *Request { return &Request{Path: "models", Header: faults("X-Mock-Delay-Ms", "600")} }
	slowBody := func() *Request { return &Request{Path: "models", Header: faults("X-Mock-Slowloris", "400")} }
	ok := func(req *Request) {
		t.Helper()
		if resp, err := c.Do(background, req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%+v: %v", req, err)
		}
	}

	req := lateHead()
	req.FirstByteTimeout = 250 * time.Millisecond
	timedOut(req, "first-byte timeout", 250*time.Millisecond)
	req = lateHead()
	req.FirstByteTimeout = -1 // none: the client's 100 ms no longer applies
	ok(req)

	req = slowBody()
	req.IdleTimeout = 150 * time.Millisecond
	timedOut(req, "idle timeout", 150*time.Millisecond)
	req = lateHead()
	req.FirstByteTimeout, req.IdleTimeout = 5*time.Second, 150*time.Millisecond // the head is not idle time
	ok(req)

	// The same through parked calls (another Do in flight makes Do asynchronous).
	hold := make(chan error, 1)
	go func() {
		_, err := c.Do(background, &Request{Path: "models", Header: faults("X-Mock-Delay-Ms", "1500"),
			FirstByteTimeout: -1})
		hold <- err
	}()
	time.Sleep(100 * time.Millisecond)
	req = lateHead()
	req.FirstByteTimeout = 250 * time.Millisecond
	timedOut(req, "first-byte timeout", 250*time.Millisecond)
	req = slowBody()
	req.IdleTimeout = 150 * time.Millisecond
	timedOut(req, "idle timeout", 150*time.Millisecond)
	if err := <-hold; err != nil {
		t.Fatal(err)
	}
}
