// Streaming at scale, Go side (bench/run.py scenario streams): N concurrent SSE streams from
// bench/streams/sse_server.go read by N goroutines, through libesp's Go binding (esp) or
// net/http with a bufio reader (nethttp, what a Go gateway uses today), measuring events/s
// reaching user code, CPU per event, RSS per live stream and server-write-to-user delay.
//
// Usage: goclient esp|nethttp <url with ?n=&ms=> <streams>
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	esp "github.com/libesp/libesp/bindings/go"
)

const delaySlots = 1 << 18

var (
	delays     = make([]int32, delaySlots)
	delayCount atomic.Int64
	events     atomic.Int64
	live       atomic.Int64
	failed     atomic.Int64
)

// seen records one event delivered to user code: every 8th one's delay.
func seen(data []byte) {
	n := events.Add(1)
	if n&7 != 0 {
		return
	}
	i := bytes.Index(data, []byte(`"t":`))
	if i < 0 {
		return
	}
	j := i + 4
	for j < len(data) && data[j] >= '0' && data[j] <= '9' {
		j++
	}
	sent, _ := strconv.ParseInt(string(data[i+4:j]), 10, 64)
	if k := delayCount.Add(1) - 1; k < delaySlots {
		delays[k] = int32((time.Now().UnixNano() - sent) / 1000)
	}
}

func viaESP(c *esp.Client, path string) error {
	s, err := c.Stream(context.Background(), &esp.Request{Path: path})
	if err != nil {
		return err
	}
	defer s.Close()
	live.Add(1)
	defer live.Add(-1)
	for s.Next() {
		seen(s.Event().Data)
	}
	return s.Err()
}

func viaNetHTTP(hc *http.Client, u string) error {
	resp, err := hc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	live.Add(1)
	defer live.Add(-1)
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 6 && string(line[:6]) == "data: " {
			seen(line[6:])
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func rssKB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return -1
}

func cpuSec() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func pct(v []int32, p float64) float64 {
	if len(v) == 0 {
		return -1
	}
	sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
	i := int(p * float64(len(v)))
	if i >= len(v) {
		i = len(v) - 1
	}
	return float64(v[i]) / 1000
}

func main() {
	signal.Ignore(syscall.SIGPIPE)
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: goclient esp|nethttp <url> <streams>")
		os.Exit(2)
	}
	mode, raw := os.Args[1], os.Args[2]
	n, _ := strconv.Atoi(os.Args[3])
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	for i := range delays {
		delays[i] = 0
	}
	var run func() error
	switch mode {
	case "esp":
		c, err := esp.Get(esp.Config{Provider: "generic", BaseURL: "http://" + u.Host,
			MaxConnections: n, TimeoutMS: 600000})
		if err != nil {
			panic(err)
		}
		defer c.Close()
		path := u.RequestURI()
		run = func() error { return viaESP(c, path) }
	case "nethttp":
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0,
			DisableCompression: true}}
		run = func() error { return viaNetHTTP(hc, raw) }
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(2)
	}
	rss0, cpu0, t0 := rssKB(), cpuSec(), time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				failed.Add(1)
				fmt.Fprintln(os.Stderr, "stream failed:", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var rssLive, peakLive int64
	tick := time.NewTicker(100 * time.Millisecond)
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			// RSS at the most streams open at once (on a saturated machine the
			// first streams may end before the last ones start).
			if lv := live.Load(); lv > peakLive {
				peakLive, rssLive = lv, rssKB()
			}
		}
	}
	secs, cpu := time.Since(t0).Seconds(), cpuSec()-cpu0
	ev := events.Load()
	d := delays[:min(delayCount.Load(), delaySlots)]
	perStream := -1.0
	if peakLive > 0 {
		perStream = float64(rssLive-rss0) / float64(peakLive)
	}
	out, _ := json.Marshal(map[string]any{"mode": mode, "streams": n, "events": ev, "failed": failed.Load(),
		"secs": secs, "events_per_s": float64(ev) / secs, "cpu_us_per_event": cpu * 1e6 / float64(max(ev, 1)),
		"peak_live": peakLive, "rss_per_stream_kb": perStream,
		"delay_p50_ms": pct(d, 0.5), "delay_p99_ms": pct(d, 0.99)})
	fmt.Printf("RESULT %s\n", out)
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
