package esp

// Install puts libesp under net/http's defaults, so that a program and the
// SDKs in it (openai-go, anthropic-sdk-go, anything on http.DefaultClient)
// share libesp's pool with one line and no other change.

import (
	"encoding/json"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
)

// installDefaults make libesp behave as http.DefaultTransport does, so that
// installing it changes where connections live, not how calls behave.
var installDefaults = map[string]any{
	"provider": "generic",
	// "generic" needs a base URL. The transport sends absolute URLs only and
	// this client carries no credentials, so it names no real origin.
	"base_url":           "http://localhost",
	"name":               "net-http-default-transport",
	"max_retries":        0,     // net/http does not retry; SDKs retry themselves
	"breaker_failures":   0,     // net/http has no breaker: a server's 500s must not fail other calls
	"connect_timeout_ms": 30000, // DefaultTransport's dial timeout
	"conn_max_idle_ms":   90000, // DefaultTransport's IdleConnTimeout
}

var (
	installMu sync.Mutex
	installed *defaultTransport
)

// defaultTransport is what [Install] puts in http.DefaultTransport. After
// [Uninstall] it forwards to the transport it replaced, so an SDK that took
// http.DefaultTransport into a client of its own keeps working.
type defaultTransport struct {
	esp      http.RoundTripper
	previous http.RoundTripper
	active   atomic.Bool
}

func (t *defaultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.active.Load() {
		return t.esp.RoundTrip(req)
	}
	return t.previous.RoundTrip(req)
}

// Install makes http.DefaultTransport, and so http.DefaultClient, http.Get,
// http.Post and every http.Client without a Transport of its own, send
// through libesp's shared pool. Call it at the start of main, before any
// request. It is idempotent: while installed, later calls do nothing.
//
// The libesp client behaves like http.DefaultTransport: no retries, no
// circuit breaker, no total timeout (use contexts or http.Client.Timeout),
// 30 s to connect, idle connections kept 90 s, HTTP/2 over TLS. SSL_CERT_FILE
// is its CA file when set, as it is for crypto/x509; the proxy comes from the
// environment (HTTPS_PROXY, NO_PROXY, ...), as libcurl reads it. Code that
// asserts http.DefaultTransport.(*http.Transport) fails after Install.
func Install() error { return InstallConfig(Config{}) }

// InstallConfig is [Install] with cfg's non-zero fields over those defaults,
// e.g. Config{CAFile: "ca.pem", MaxConnections: 16}.
func InstallConfig(cfg Config) error {
	installMu.Lock()
	defer installMu.Unlock()
	if installed != nil {
		return nil
	}
	config, err := installConfigJSON(cfg)
	if err != nil {
		return err
	}
	client, err := GetJSON(config)
	if err != nil {
		return err
	}
	// net/http has no total limit: requests get none unless cfg sets one.
	rt := roundTripper{client: client}
	if cfg.TimeoutMS == 0 {
		rt.timeout = -1
	}
	t := &defaultTransport{esp: rt, previous: http.DefaultTransport}
	t.active.Store(true)
	http.DefaultTransport = t
	installed = t
	return nil
}

// Uninstall gives http.DefaultTransport back the transport [Install]
// replaced. Responses being read finish on libesp; the libesp client's lease
// is released once nothing refers to the installed transport any more.
func Uninstall() {
	installMu.Lock()
	defer installMu.Unlock()
	if installed == nil {
		return
	}
	installed.active.Store(false)
	if http.DefaultTransport == http.RoundTripper(installed) {
		http.DefaultTransport = installed.previous
	}
	installed = nil
}

// installConfigJSON is cfg's JSON over installDefaults, with SSL_CERT_FILE
// as the CA file unless cfg names one.
func installConfigJSON(cfg Config) (string, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	merged := map[string]any{}
	if err := json.Unmarshal(b, &merged); err != nil {
		return "", err
	}
	for key, value := range installDefaults {
		if _, set := merged[key]; !set {
			merged[key] = value
		}
	}
	if _, set := merged["ca_file"]; !set {
		if file := os.Getenv("SSL_CERT_FILE"); file != "" {
			merged["ca_file"] = file
		}
	}
	out, err := json.Marshal(merged)
	return string(out), err
}
