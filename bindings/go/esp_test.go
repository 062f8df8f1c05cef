package esp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDoChatCompletion(t *testing.T) {
	c := newClient(t, mockConfig())
	resp, err := c.Do(background, &Request{
		Method: "POST",
		Path:   "chat/completions",
		Header: faults("Content-Type", "application/json"),
		Body:   chatBody(false),
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if resp.StatusCode != 200 || resp.HTTPVersion != 11 || resp.Attempts != 1 {
		t.Fatalf("status %d, version %d, attempts %d", resp.StatusCode, resp.HTTPVersion, resp.Attempts)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var completion struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(resp.Body, &completion); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	if completion.Object != "chat.completion" || len(completion.Choices) != 1 || completion.Choices[0].Message.Content == "" {
		t.Fatalf("unexpected completion %s", resp.Body)
	}
}

func TestDoSendsMethodHeadersAndBody(t *testing.T) {
	c := newClient(t, mockConfig())
	resp, err := c.Do(background, &Request{
		Method: "PUT",
		Path:   echoURL(),
		Header: faults("X-Custom", "one", "X-Empty-Body-Check", "two"),
		Body:   []byte("binary\x00body"),
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	var echo struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if err := json.Unmarshal(resp.Body, &echo); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	if echo.Method != "PUT" || echo.Body != "binary\x00body" {
		t.Fatalf("echo %+v", echo)
	}
	if echo.Headers["x-custom"] != "one" || echo.Headers["x-empty-body-check"] != "two" {
		t.Fatalf("headers %v", echo.Headers)
	}
	if echo.Headers["authorization"] != "Bearer sk-test" {
		t.Fatalf("the config's api_key did not reach the server: %v", echo.Headers)
	}
}

func TestDoHTTPErrorIsAResponse(t *testing.T) {
	c := newClient(t, mockConfig())
	for _, status := range []int{404, 429, 500} {
		resp, err := c.Do(background, &Request{
			Method: "POST",
			Path:   "chat/completions",
			Header: faults("X-Mock-Status", fmt.Sprint(status)),
			Body:   chatBody(false),
		})
		if err != nil {
			t.Fatalf("status %d: Do returned an error: %v", status, err)
		}
		if resp.StatusCode != status || !strings.Contains(string(resp.Body), `"error"`) {
			t.Fatalf("want %d with an error body, got %d %q", status, resp.StatusCode, resp.Body)
		}
	}
}

func TestConfigRetriesReachLibesp(t *testing.T) {
	cfg := mockConfig()
	cfg.MaxRetries, cfg.RetryBaseMS = Ptr(1), Ptr[int64](10)
	c := newClient(t, cfg)
	// The mock fails the first request of this key (with a 500).
	key := fmt.Sprintf("go-retry-%d", time.Now().UnixNano())
	resp, err := c.Do(background, &Request{Path: "models", Header: faults("X-Mock-Key", key, "X-Mock-Fail-Times", "1")})
	if err != nil || resp.StatusCode != 200 || resp.Attempts != 2 {
		t.Fatalf("want 200 after 2 attempts, got %+v, %v", resp, err)
	}
	// NoRetry overrides the client's max_retries.
	key += "-no-retry"
	resp, err = c.Do(background, &Request{Path: "models", NoRetry: true, Header: faults("X-Mock-Key", key, "X-Mock-Fail-Times", "1")})
	if err != nil || resp.StatusCode != 500 || resp.Attempts != 1 {
		t.Fatalf("want one failed attempt, got %+v, %v", resp, err)
	}
}

func TestDoOverHTTPSUsesHTTP2(t *testing.T) {
	c := newClient(t, Config{
		BaseURL:    fmt.Sprintf("https://localhost:%d/v1", mock.HTTPSPort),
		APIKey:     "sk-test",
		CAFile:     mock.CAFile,
		MaxRetries: Ptr(0),
	})
	resp, err := c.Do(background, &Request{Path: "models"})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if resp.StatusCode != 200 || resp.HTTPVersion != 20 {
		t.Fatalf("status %d, HTTP version %d", resp.StatusCode, resp.HTTPVersion)
	}
}

func TestGetRejectsBadConfigNamingTheKey(t *testing.T) {
	_, err := GetJSON(`{"base_url":"http://127.0.0.1:1/v1","no_such_key":1}`)
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("want ErrConfig, got %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "no_such_key") {
		t.Fatalf("the message should name the key: %v", err)
	}
	if _, err := GetJSON(`{"timeout_ms":"soon"}`); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "timeout_ms") {
		t.Fatalf("want ErrConfig naming timeout_ms, got %v", err)
	}
	if _, err := GetJSON(`{not json`); !errors.Is(err, ErrConfig) {
		t.Fatalf("want ErrConfig for malformed JSON, got %v", err)
	}
}

func TestConfigMarshalsOnlyWhatIsSet(t *testing.T) {
	b, err := json.Marshal(Config{BaseURL: "http://x/v1", MaxRetries: Ptr(0), HTTP2: Ptr(false), IdleTTLMS: Ptr[int64](0)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"base_url":"http://x/v1","http2":false,"max_retries":0,"idle_ttl_ms":0}`
	if string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	if b, _ := json.Marshal(Config{}); string(b) != "{}" {
		t.Fatalf("the zero Config should be {}, got %s", b)
	}
}

func TestEveryStatusCodeHasASentinel(t *testing.T) {
	sentinels := []*Error{ErrInvalid, ErrConfig, ErrHandle, ErrNoMem, ErrTimeout, ErrPoolTimeout,
		ErrConnect, ErrTLS, ErrIO, ErrProtocol, ErrCancelled, ErrCircuit, ErrTooLarge, ErrShutdown,
		ErrInternal, ErrAgain, ErrRateLimited}
	for i, s := range sentinels {
		if want := Code(-(i + 1)); s.Code != want {
			t.Fatalf("sentinel %d has code %d, want %d", i, s.Code, want)
		}
		if msg := s.Error(); msg == "esp: " || strings.Contains(msg, "unknown status") {
			t.Fatalf("code %d has no description: %q", s.Code, msg)
		}
		if errors.Is(s, sentinels[(i+1)%len(sentinels)]) {
			t.Fatalf("%v matches another code's sentinel", s)
		}
	}
}

func TestConnectionRefusedIsErrConnect(t *testing.T) {
	c := newClient(t, Config{BaseURL: fmt.Sprintf("http://127.0.0.1:%d/v1", closedPort(t)), MaxRetries: Ptr(0)})
	_, err := c.Do(background, &Request{Path: "models"})
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("want ErrConnect, got %v", err)
	}
}

func TestRateLimitWithoutBudgetIsErrRateLimited(t *testing.T) {
	cfg := mockConfig()
	cfg.APIKey = fmt.Sprintf("sk-go-rl-%d", time.Now().UnixNano()) // a credential of its own
	cfg.RateLimit = &RateLimit{RequestsPerMinute: 6}               // one per 10 s
	c := newClient(t, cfg)
	if _, err := c.Do(background, &Request{Path: "models"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Do(background, &Request{Path: "models", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrRateLimited) || !strings.Contains(err.Error(), "requests_per_minute 6") {
		t.Fatalf("want ErrRateLimited naming the limit, got %v", err)
	}
}

func TestRequestTimeoutIsErrTimeout(t *testing.T) {
	c := newClient(t, mockConfig())
	_, err := c.Do(background, &Request{Path: "models", Header: faults("X-Mock-Hang", "1"), Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
}

func TestContextDeadlineCancelsTheCall(t *testing.T) {
	c := newClient(t, mockConfig())
	ctx, cancel := context.WithTimeout(background, 200*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, &Request{Path: "models", Header: faults("X-Mock-Hang", "1")})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrCancelled) {
		t.Fatalf("want context.DeadlineExceeded and ErrCancelled, got %v", err)
	}
	// An already cancelled context does not send anything.
	ctx, cancel = context.WithCancel(background)
	cancel()
	if _, err := c.Do(ctx, &Request{Path: "models"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestCancelledCallsLeakNoGoroutines(t *testing.T) {
	c := newClient(t, mockConfig())
	// Warm up whatever the runtime starts once (AfterFunc, cleanup goroutines).
	warm, cancelWarm := context.WithCancel(background)
	cancelWarm()
	c.Do(warm, &Request{Path: "models"})
	before := runtime.NumGoroutine()

	const calls = 300
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(background)
			time.AfterFunc(time.Duration(i%20)*time.Millisecond, cancel)
			_, err := c.Do(ctx, &Request{Path: "models", Header: faults("X-Mock-Hang", "1")})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
	}
	waitFor(t, "goroutines to return to the baseline", func() bool {
		return runtime.NumGoroutine() <= before+2
	})
	// libesp let go of every cancelled call: none is live or in flight, and
	// their connections are closed
	// (never returned to the pool half-read), so the mock sees them go.
	if st := readStats(t); *st.CallsLive != 0 || *st.InFlight != 0 {
		t.Fatalf("after cancelling: %d calls live, %d in flight", *st.CallsLive, *st.InFlight)
	}
	waitFor(t, "the cancelled calls' connections to close", func() bool {
		return mockOpenConnections(t) <= 1
	})
	// libesp is left in a usable state: no slot is held by a cancelled call.
	if resp, err := c.Do(background, &Request{Path: "models"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after cancellations: %v", err)
	}
}

// Ten thousand calls waiting at once hold one OS thread between them (the
// one Do that found no other in flight blocks in esp_call_run): every other
// waiting call is a parked goroutine, in no cgo call. That is read from the
// goroutines' own states while all of them wait (the server holds each
// answer 30 s, and the test cancels them all once it has looked), not from
// the process's thread count alone: Go adds an M whenever a goroutine sits
// in the short esp_request_async cgo call past a sysmon tick, which a
// machine loaded by other work makes a few dozen (6 -> 30 measured) without
// any call holding a thread while it waits.
func TestConcurrentCallsUseFewOSThreads(t *testing.T) {
	c := newClient(t, mockConfig())
	if _, err := c.Do(background, &Request{Path: "models"}); err != nil {
		t.Fatal(err) // warm: libesp's I/O thread and the pool exist
	}
	runtime.GC()
	before := osThreads(t)
	ctx, cancel := context.WithCancel(background)
	defer cancel()
	var wg sync.WaitGroup
	var failures sync.Map
	for i := 0; i < concurrentCalls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Do(ctx, &Request{Path: "models", Header: faults("X-Mock-Delay-Ms", "30000")})
			if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
				failures.Store(fmt.Sprint(err), true)
			}
		}()
	}
	waitFor(t, "every call to reach libesp", func() bool { return *readStats(t).InFlight >= concurrentCalls })
	// Some goroutines may still be on their way out of the submitting cgo
	// call; none stays in one while it waits.
	inCgo := concurrentCalls
	deadline := time.Now().Add(10 * time.Second)
	for inCgo > 1 && time.Now().Before(deadline) {
		inCgo = callsInCgo()
		if inCgo > 1 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waiting := *readStats(t).InFlight
	after := osThreads(t)
	cancel()
	wg.Wait()
	t.Logf("%d calls waiting: %d in a cgo call; OS threads %d before, %d while they waited", waiting, inCgo, before, after)
	if inCgo > 1 {
		t.Errorf("%d of %d waiting calls hold an OS thread in a cgo call (at most the one blocking Do should)", inCgo, concurrentCalls)
	}
	if waiting < concurrentCalls {
		t.Errorf("only %d of %d calls were still waiting when looked at", waiting, concurrentCalls)
	}
	// Not a thread per call, whatever the load.
	if after-before >= concurrentCalls/10 {
		t.Errorf("%d waiting calls grew the process from %d to %d OS threads", concurrentCalls, before, after)
	}
	failures.Range(func(k, _ any) bool { t.Errorf("a cancelled call ended with %v", k); return true })
	if st := readStats(t); *st.InFlight != 0 || *st.CallsLive != 0 {
		t.Errorf("after cancelling: %d in flight, %d calls live", *st.InFlight, *st.CallsLive)
	}
}

// callsInCgo counts the goroutines inside a cgo call (state "syscall") made
// for a Client method.
func callsInCgo() int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, " [syscall") && strings.Contains(g, "bindings/go.(*Client).") {
			n++
		}
	}
	return n
}

func TestCloseIsIdempotentAndEndsTheLease(t *testing.T) {
	c, err := Get(mockConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Do(background, &Request{Path: "models"}); !errors.Is(err, ErrHandle) {
		t.Fatalf("Do after Close: want ErrHandle, got %v", err)
	}
}

// processStats is the part of libesp's process stats the tests read.
type processStats struct {
	Registry struct {
		LeasesLive *int `json:"leases_live"`
	} `json:"registry"`
	CallsLive   *int `json:"calls_live"`
	InFlight    *int `json:"in_flight"`
	StreamsOpen *int `json:"streams_open"`
}

func readStats(t *testing.T) processStats {
	t.Helper()
	b, err := Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	var s processStats
	if err := json.Unmarshal(b, &s); err != nil || s.Registry.LeasesLive == nil || s.CallsLive == nil || s.InFlight == nil {
		t.Fatalf("stats without registry.leases_live, calls_live or in_flight: %v\n%s", err, b)
	}
	return s
}

// leases reads the number of live leases from libesp's process stats.
func leases(t *testing.T) int { return *readStats(t).Registry.LeasesLive }

func TestForgottenLeaseIsReleasedByGC(t *testing.T) {
	keep := newClient(t, mockConfig())
	before := leases(t)
	func() {
		for i := 0; i < 20; i++ {
			if _, err := Get(mockConfig()); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if n := leases(t); n != before+20 {
		t.Fatalf("leases: %d after taking 20, want %d", n, before+20)
	}
	waitFor(t, "the forgotten leases to be released", func() bool { return leases(t) == before })
	runtime.KeepAlive(keep)
}

func TestStatsAndVersion(t *testing.T) {
	c := newClient(t, mockConfig())
	if _, err := c.Do(background, &Request{Path: "models"}); err != nil {
		t.Fatal(err)
	}
	b, err := c.Stats()
	if err != nil || !json.Valid(b) {
		t.Fatalf("client Stats: %v %s", err, b)
	}
	if strings.Contains(string(b), "sk-test") {
		t.Fatalf("the API key leaked into stats: %s", b)
	}
	if m, err := Metrics(); err != nil || m == "" {
		t.Fatalf("Metrics: %v %q", err, m)
	}
	if v := Version(); !strings.HasPrefix(v, "0.") {
		t.Fatalf("Version %q", v)
	}
}

func TestDeploymentsFailOverFromAFailingOne(t *testing.T) {
	base := strings.TrimSuffix(mockURL(), "/v1")
	c := newClient(t, Config{
		Routing: "ordered",
		Deployments: []Deployment{
			{Name: "failing", BaseURL: base + "/_faults/status=503/v1", APIKey: "sk-go-a"},
			{Name: "healthy", BaseURL: base + "/v1", APIKey: "sk-go-b"},
		},
		BreakerFailures: Ptr(0),
	})
	resp, err := c.Do(background, &Request{Path: "models"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Attempts != 2 {
		t.Fatalf("want 200 after one fail-over, got %d in %d attempts", resp.StatusCode, resp.Attempts)
	}
}
