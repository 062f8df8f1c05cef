// libesp's Go binding (Client.Do) against net/http with a Transport tuned for the
// concurrency (the fastest mainstream Go client), sequential and at 64 goroutines, on a
// loopback keep-alive server: `make -C bindings/go bench` runs it, bench/run.py quotes it.
//
// The server is this program re-executed (ESP_GOBENCH_SERVE=1) so the CPU time measured
// here is the clients' alone. Rounds are interleaved (each round runs every case on both
// clients, which one goes first alternating), and the table shows medians: on a shared
// 2-core machine single runs swing by 2x. The last line is `RESULT <json>` for bench/run.py.
//
// Usage: gobench [requests per 64-goroutine run, default 20000] (rounds: BENCH_ROUNDS, 5;
// BENCH_SIDE=esp or nethttp runs one side only, for a profiler: its ratios are meaningless;
// BENCH_ONLY=seq or 64 runs only the cases whose name contains it)
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	esp "github.com/libesp/libesp/bindings/go"
)

const (
	serveEnv    = "ESP_GOBENCH_SERVE"
	concurrency = 64
	body        = `{"model":"gpt-mock","messages":[{"role":"user","content":"hello"}]}`
	reply       = `{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the loopback server."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":6,"total_tokens":7}}`
)

type run struct{ rps, cpuUs, switches float64 }

type contender struct {
	name string
	post func() error
}

func main() {
	if os.Getenv(serveEnv) != "" {
		serve()
		return
	}
	requests := 20000
	if len(os.Args) > 1 {
		requests, _ = strconv.Atoi(os.Args[1])
	}
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	server, port := startServer()
	defer server.Wait()
	defer server.Process.Signal(syscall.SIGTERM)
	base := fmt.Sprintf("http://127.0.0.1:%d/v1", port)

	client, err := esp.Get(esp.Config{BaseURL: base, APIKey: "sk-bench"})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	espReq := &esp.Request{Method: "POST", Path: "chat/completions", Body: []byte(body),
		Header: http.Header{"Content-Type": {"application/json"}}}
	espPost := func() error {
		resp, err := client.Do(context.Background(), espReq)
		if err == nil && len(resp.Body) != len(reply) {
			err = fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(resp.Body))
		}
		return err
	}
	tuned := http.DefaultTransport.(*http.Transport).Clone()
	tuned.MaxIdleConnsPerHost = concurrency
	hc := &http.Client{Transport: tuned}
	httpPost := func() error {
		req, _ := http.NewRequest("POST", base+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-bench")
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err == nil && len(got) != len(reply) {
			err = fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(got))
		}
		return err
	}
	sides := [2]contender{{"libesp Client.Do", espPost}, {"net/http (tuned Transport)", httpPost}}
	switch os.Getenv("BENCH_SIDE") {
	case "esp":
		sides[1].post = func() error { return nil }
	case "nethttp":
		sides[0].post = func() error { return nil }
	}
	cases := []struct {
		name    string
		workers int
		count   int
	}{{"sequential", 1, requests / 4}, {"64 goroutines", concurrency, requests}}

	if only := os.Getenv("BENCH_ONLY"); only != "" {
		kept := cases[:0]
		for _, c := range cases {
			if strings.Contains(c.name, only) {
				kept = append(kept, c)
			}
		}
		cases = kept
	}
	for _, c := range cases { // warm-up: connections open, pools full
		for _, s := range sides {
			measure(c.workers, c.count/10, s.post)
		}
	}
	runs := make([][][2]run, len(cases))
	for round := 0; round < rounds; round++ {
		for i, c := range cases {
			var pair [2]run
			first := round % 2
			pair[first] = measure(c.workers, c.count, sides[first].post)
			pair[1-first] = measure(c.workers, c.count, sides[1-first].post)
			fmt.Fprintf(os.Stderr, "round %d: %s: libesp %.0f req/s, net/http %.0f req/s\n",
				round+1, c.name, pair[0].rps, pair[1].rps)
			runs[i] = append(runs[i], pair)
		}
	}

	fmt.Printf("libesp %s | %d requests per 64-goroutine run (%d sequential), %d interleaved rounds, GOMAXPROCS %d\n",
		esp.Version(), requests, requests/4, rounds, runtime.GOMAXPROCS(0))
	fmt.Printf("%-16s %12s %14s %7s  %-30s %-28s %s\n", "case", "libesp req/s", "net/http req/s", "ratio",
		"ratio per round", "CPU us/req libesp / net/http", "switches/req")
	var rows []map[string]any
	for i, c := range cases {
		var ratios, espRps, peerRps, espCPU, peerCPU, espSwitches, peerSwitches []float64
		var perRound []string
		for _, p := range runs[i] {
			ratios = append(ratios, p[0].rps/p[1].rps)
			perRound = append(perRound, fmt.Sprintf("%.2f", p[0].rps/p[1].rps))
			espRps, peerRps = append(espRps, p[0].rps), append(peerRps, p[1].rps)
			espCPU, peerCPU = append(espCPU, p[0].cpuUs), append(peerCPU, p[1].cpuUs)
			espSwitches, peerSwitches = append(espSwitches, p[0].switches), append(peerSwitches, p[1].switches)
		}
		row := map[string]any{"scenario": c.name, "esp_rps": median(espRps), "peer_rps": median(peerRps),
			"ratio": median(ratios), "ratios": ratios, "esp_cpu_us": median(espCPU), "peer_cpu_us": median(peerCPU),
			"esp_switches": median(espSwitches), "peer_switches": median(peerSwitches)}
		rows = append(rows, row)
		fmt.Printf("%-16s %12.0f %14.0f %6.2fx  %-30s %-28s %.2f / %.2f\n", c.name, row["esp_rps"], row["peer_rps"],
			row["ratio"], strings.Join(perRound, " "), fmt.Sprintf("%.1f / %.1f", row["esp_cpu_us"], row["peer_cpu_us"]),
			row["esp_switches"], row["peer_switches"])
	}
	out, _ := json.Marshal(map[string]any{"peer": "net/http", "rows": rows})
	fmt.Printf("RESULT %s\n", out)
}

// measure runs count calls of post from the given number of goroutines.
func measure(workers, count int, post func() error) run {
	var next atomic.Int64
	var wg sync.WaitGroup
	t0, cpu0, switches0 := time.Now(), cpuSeconds(), contextSwitches()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(count) {
				if err := post(); err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	secs, cpu := time.Since(t0).Seconds(), cpuSeconds()-cpu0
	switches := contextSwitches() - switches0
	return run{rps: float64(count) / secs, cpuUs: cpu * 1e6 / float64(count), switches: switches / float64(count)}
}

// contextSwitches counts this process's context switches, voluntary (a thread waiting)
// and involuntary (preempted): each is a thread wake-up or a core handed over, the cost
// behind a thread hop that CPU time shows only in part.
func contextSwitches() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Nvcsw + ru.Nivcsw)
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// startServer re-executes this program as the server and reads the port it prints.
func startServer() (*exec.Cmd, int) {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), serveEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the bench
	out, err := cmd.StdoutPipe()
	if err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		panic(err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		panic(err)
	}
	return cmd, port
}

// serve answers every request with reply on keep-alive connections, one goroutine each,
// until SIGTERM (or SIGKILL when its parent dies).
func serve() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	response := []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s",
		len(reply), reply))
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go serveConn(conn, response)
	}
}

func serveConn(conn net.Conn, response []byte) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		length := 0
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
			if name, value, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(name), "content-length") {
				length, _ = strconv.Atoi(string(bytes.TrimSpace(value)))
			}
		}
		if _, err := io.CopyN(io.Discard, r, int64(length)); err != nil {
			return
		}
		if _, err := conn.Write(response); err != nil {
			return
		}
	}
}
