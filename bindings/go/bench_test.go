package esp

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkDo compares a small GET through libesp with the same GET through
// net/http, against the mock server on loopback:
//
//	make bench    (or: go test -run '^$' -bench Do -benchtime 5000x)
//
// net/http's default Transport keeps only 2 idle connections per host, so
// under concurrency it keeps opening new ones; the tuned Transport keeps 64.
func BenchmarkDo(b *testing.B) {
	c := newClient(b, mockConfig())
	url := mockURL() + "/models"
	espGet := func() error {
		resp, err := c.Do(background, &Request{Path: "models"})
		if err == nil && resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return err
	}
	tuned := http.DefaultTransport.(*http.Transport).Clone()
	tuned.MaxIdleConnsPerHost = 64
	httpGet := func(hc *http.Client) func() error {
		return func() error {
			resp, err := hc.Get(url)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}
	}
	clients := []struct {
		name string
		get  func() error
	}{
		{"esp", espGet},
		{"nethttp-default", httpGet(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()})},
		{"nethttp-tuned", httpGet(&http.Client{Transport: tuned})},
	}
	for _, cl := range clients {
		for _, workers := range []int{1, 64} {
			name := cl.name + "/sequential"
			if workers > 1 {
				name = cl.name + "/64-goroutines"
			}
			b.Run(name, func(b *testing.B) { runWorkers(b, workers, cl.get) })
		}
	}
}

// runWorkers calls get b.N times in all, from the given number of goroutines.
func runWorkers(b *testing.B, workers int, get func() error) {
	if err := get(); err != nil { // warm the pool outside the timing
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := get(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
