// Paced SSE server of the streaming-at-scale benchmark (bench/run.py, scenario streams):
// nginx cannot pace a body, and a model emits tokens one at a time, so every stream here
// writes one event per interval, each stamped with the wall clock it was written at.
//
// Usage: sse_server  -> prints "PORT <n>" and serves GET /stream?n=<events>&ms=<interval>
// until stdin closes (the bench keeps stdin open while it runs).
package main

import (
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func stream(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	if n <= 0 || ms <= 0 {
		http.Error(w, "n and ms must be positive", http.StatusBadRequest)
		return
	}
	fl := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	interval := time.Duration(ms) * time.Millisecond
	// A random phase, so that thousands of streams do not all write in the same instant.
	start := time.Now().Add(time.Duration(rand.Int63n(int64(interval))))
	buf := make([]byte, 0, 160)
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		buf = buf[:0]
		buf = append(buf, `data: {"t":`...)
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		buf = append(buf, `,"i":`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `,"choices":[{"index":0,"delta":{"content":" token"}}]}`+"\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return
		}
		fl.Flush()
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sse_server:", err)
		os.Exit(1)
	}
	fmt.Printf("PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	srv := &http.Server{Handler: http.HandlerFunc(stream)}
	srv.Serve(ln)
}
