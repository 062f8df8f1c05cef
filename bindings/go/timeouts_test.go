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
