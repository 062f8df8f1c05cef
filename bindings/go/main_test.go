package esp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libesp/libesp/bindings/go/internal/mockserver"
)

// mock is the mock LLM server that TestMain runs for the whole test binary.
var mock *mockserver.Server

func TestMain(m *testing.M) {
	var err error
	if mock, err = mockserver.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	mock.Close()
	os.Exit(code)
}

// mockURL is the base URL of the mock's OpenAI API on plain HTTP/1.1.
func mockURL() string { return mock.BaseURL() }

// echoURL is the absolute URL of the mock's echo endpoint, which answers
// with the request it received.
func echoURL() string { return fmt.Sprintf("http://127.0.0.1:%d/echo", mock.HTTPPort) }

// mockConfig is a client config for the mock server, without retries so that
// fault switches act once.
func mockConfig() Config {
	return Config{BaseURL: mockURL(), APIKey: "sk-test", MaxRetries: Ptr(0)}
}

// newClient takes a lease for the test and releases it at its end.
func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := Get(cfg)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// chatBody is an OpenAI chat completion request body.
func chatBody(stream bool) []byte {
	return []byte(fmt.Sprintf(`{"model":"gpt-4o-mini","stream":%t,"messages":[{"role":"user","content":"Say hello"}]}`, stream))
}

// faults returns request headers that switch on the mock's fault injection.
func faults(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// closedPort returns a loopback port with nothing listening on it.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// osThreads reads the number of OS threads of this process.
func osThreads(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// waitFor polls cond until it holds or the (generous) deadline passes,
// running the garbage collector between polls so cleanups get to run.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
}

// mockOpenConnections reads how many API connections the mock server has
// open.
func mockOpenConnections(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/_mock/stats", mock.HTTPPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		OpenConnections int `json:"open_connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.OpenConnections
}

// background is a context for calls that a test does not cancel.
var background = context.Background()
