package esp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// mockCounters reads the mock's connection and request counters.
func mockCounters(t *testing.T, control *http.Client) (connections, requests int) {
	t.Helper()
	resp, err := control.Get(fmt.Sprintf("http://127.0.0.1:%d/_mock/stats", mock.HTTPPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ Connections, Requests int }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Connections, s.Requests
}

// resetMock zeroes the mock's counters.
func resetMock(t *testing.T, control *http.Client) {
	t.Helper()
	resp, err := control.Post(fmt.Sprintf("http://127.0.0.1:%d/_mock/reset", mock.HTTPPort), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// installedRequests is how many requests the installed libesp client has made.
func installedRequests(t *testing.T) int {
	t.Helper()
	b, err := Stats()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Clients []struct {
			Name     string
			Requests int
		}
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range s.Clients {
		if c.Name == "net-http-default-transport" {
			n += c.Requests
		}
	}
	return n
}

// getBursts makes `rounds` bursts of `burst` simultaneous GETs of url with
// http.DefaultClient, each burst starting once the one before has finished.
func getBursts(t *testing.T, url string, rounds, burst int) {
	t.Helper()
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		errs := make(chan error, burst)
		for i := 0; i < burst; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("X-Mock-Delay-Ms", "20")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

func TestInstallPutsHTTPDefaultClientOnLibesp(t *testing.T) {
	control := &http.Client{Transport: &http.Transport{}}
	original := http.DefaultTransport

	// Without libesp: net/http keeps 2 idle connections per host, so bursts
	// of 16 concurrent HTTP/1.1 calls open 14 new connections each.
	resetMock(t, control)
	getBursts(t, echoURL(), 10, 16)
	plainConns, _ := mockCounters(t, control)

	if err := Install(); err != nil {
		t.Fatal(err)
	}
	if err := Install(); err != nil {
		t.Fatal("a second Install:", err)
	}
	captured := http.DefaultTransport // as an SDK that built its own client from it would
	before := installedRequests(t)
	resetMock(t, control)
	getBursts(t, echoURL(), 10, 16)
	espConns, requests := mockCounters(t, control)
	t.Logf("10 bursts of 16 GETs: %d connections on net/http, %d on libesp", plainConns, espConns)
	if requests != 160 || installedRequests(t)-before != 160 {
		t.Fatalf("mock saw %d requests, libesp made %d", requests, installedRequests(t)-before)
	}
	if espConns > 16 || plainConns < 2*espConns {
		t.Fatalf("%d connections on libesp, %d on net/http", espConns, plainConns)
	}

	Uninstall()
	Uninstall()
	if http.DefaultTransport != original {
		t.Fatal("Uninstall did not restore http.DefaultTransport")
	}
	after := installedRequests(t)
	resp, err := (&http.Client{Transport: captured}).Get(echoURL())
	if err != nil {
		t.Fatal("a transport captured before Uninstall:", err)
	}
	resp.Body.Close()
	if installedRequests(t) != after {
		t.Fatal("after Uninstall, a captured transport still sent through libesp")
	}
}

func TestTransportRefusesURLsThatAreNotHTTP(t *testing.T) {
	hc := newHTTPClient(t)
	key := fmt.Sprintf("scheme-%d", time.Now().UnixNano())
	for _, raw := range []string{"invalid://example.org/x", "htps://api.anthropic.com/v1/messages", "localhost:8080/v1/chat", "ftp://127.0.0.1/x"} {
		body := &closeTracker{Reader: strings.NewReader("{}")}
		req, err := http.NewRequest("POST", raw, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Mock-Key", key)
		req.Header.Set("Authorization", "Bearer sk-secret")
		_, err = hc.Do(req)
		var urlErr *url.Error
		if !errors.As(err, &urlErr) || !strings.Contains(err.Error(), "unsupported protocol scheme") {
			t.Fatalf("%s: want a *url.Error naming the scheme, got %v", raw, err)
		}
		if !body.closed.Load() {
			t.Fatalf("%s: the request body was not closed", raw)
		}
	}
	// A relative URL, or one without a host, would otherwise go to the
	// client's base_url: refused with net/http's messages.
	rt := newClient(t, mockConfig()).Transport()
	for want, u := range map[string]*url.URL{
		"unsupported protocol scheme": {Path: "/v1/models"},
		"no Host in request URL":      {Scheme: "http", Path: "/v1/models"},
	} {
		req := &http.Request{Method: "GET", URL: u, Header: http.Header{"X-Mock-Key": {key}}}
		if _, err := rt.RoundTrip(req); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: want %q, got %v", u, want, err)
		}
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/_mock/requests?key=%s", mock.HTTPPort, key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("the mock received %s", b)
	}
}

func TestTransportSendsHostAndHeadersAsNetHTTPDoes(t *testing.T) {
	hc := newHTTPClient(t)
	echo := func(req *http.Request) (host string, headers map[string]string, body string) {
		t.Helper()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		return e.Headers["host"], e.Headers, e.Body
	}

	// A Host header is ignored (net/http takes req.Host); connection headers
	// and a wrong Content-Length never reach the wire.
	req, _ := http.NewRequest("POST", echoURL(), strings.NewReader("hello"))
	req.Header.Set("Host", "spoofed.example")
	req.Header.Set("Connection", "close")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("Content-Length", "999")
	req.Header.Set("X-Kept", "yes")
	host, headers, body := echo(req)
	if want := fmt.Sprintf("127.0.0.1:%d", mock.HTTPPort); host != want {
		t.Fatalf("host %q, want %q", host, want)
	}
	for _, name := range []string{"connection", "keep-alive", "proxy-connection"} {
		if v, ok := headers[name]; ok {
			t.Fatalf("%s: %q reached the server", name, v)
		}
	}
	if body != "hello" || headers["content-length"] != "5" || headers["x-kept"] != "yes" {
		t.Fatalf("body %q, headers %v", body, headers)
	}
	if req.Header.Get("Connection") != "close" {
		t.Fatal("RoundTrip changed the caller's header")
	}

	// req.Host overrides the URL's host, as in net/http.
	req, _ = http.NewRequest("GET", echoURL(), nil)
	req.Host = "virtual.example"
	if host, _, _ := echo(req); host != "virtual.example" {
		t.Fatalf("host %q, want req.Host", host)
	}
}

// A negative Request.Timeout is no total limit (ESP_NO_TIMEOUT), which is
// what the installed transport gives every request unless its config sets
// timeout_ms: net/http has no total limit either.
func TestNegativeTimeoutMeansNoTotalLimit(t *testing.T) {
	c := newClient(t, Config{BaseURL: mockURL(), MaxRetries: Ptr(0), TimeoutMS: 200})
	slow := func() *Request {
		return &Request{Path: "models", Header: faults("X-Mock-Delay-Ms", "500")}
	}
	if _, err := c.Do(background, slow()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("the client's 200 ms: want ErrTimeout, got %v", err)
	}
	req := slow()
	req.Timeout = -1
	if resp, err := c.Do(background, req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("no limit: %v", err)
	}
	hreq, _ := http.NewRequest("GET", mockURL()+"/models", nil)
	hreq.Header.Set("X-Mock-Delay-Ms", "500")
	resp, err := roundTripper{client: c, timeout: -1}.RoundTrip(hreq)
	if err != nil {
		t.Fatalf("the installed transport's requests: %v", err)
	}
	resp.Body.Close()
}
