package esp

// Config's pointer fields ask for 0 where 0 is a setting of its own and not
// the default: nil leaves the key to libesp's default, Ptr(0) sends 0, and
// libesp acts on it (a slot wait bounded by the request's timeout only, a
// breaker that lets the next request probe at once).

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var zeroConfigs atomic.Int64

// clientID is libesp's id of the client c leases.
func clientID(t *testing.T, c *Client) int64 {
	t.Helper()
	b, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Client struct {
			ID *int64 `json:"id"`
		} `json:"client"`
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Client.ID == nil {
		t.Fatalf("client stats without client.id: %v\n%s", err, b)
	}
	return *s.Client.ID
}

func TestConfigSendsZeroOnlyWhenAskedAndLibespTakesIt(t *testing.T) {
	fields := []struct {
		key string
		set func(c *Config, v *int64)
		def int64 // libesp's default for mockConfig
	}{
		{"pool_timeout_ms", func(c *Config, v *int64) { c.PoolTimeoutMS = v }, 45000}, // timeout_ms's
		{"retry_base_ms", func(c *Config, v *int64) { c.RetryBaseMS = v }, 500},
		{"retry_max_ms", func(c *Config, v *int64) { c.RetryMaxMS, c.RetryBaseMS = v, v }, 8000},
		{"breaker_cooldown_ms", func(c *Config, v *int64) { c.BreakerCooldownMS = v }, 30000},
		{"deployment_cooldown_ms", func(c *Config, v *int64) { c.DeploymentCooldownMS = v }, 5000},
	}
	for _, f := range fields {
		base := mockConfig()
		base.Name = fmt.Sprintf("zero-%d", zeroConfigs.Add(1))
		if f.key == "deployment_cooldown_ms" { // a key of a client with deployments only
			base.Deployments = []Deployment{{Name: "a", BaseURL: mockURL()}, {Name: "b", BaseURL: mockURL()}}
		}
		unset, zero, spelled := base, base, base
		f.set(&zero, Ptr[int64](0))
		f.set(&spelled, Ptr(f.def))
		if f.key == "retry_max_ms" {
			spelled.RetryBaseMS = nil // its own default, 500
		}

		text, _ := json.Marshal(unset)
		if strings.Contains(string(text), f.key) {
			t.Errorf("%s: an unset field is in the JSON: %s", f.key, text)
		}
		text, _ = json.Marshal(zero)
		if !strings.Contains(string(text), `"`+f.key+`":0`) {
			t.Errorf("%s: Ptr(0) is not sent as 0: %s", f.key, text)
		}

		// nil is the default (one client with the default spelled out);
		// Ptr(0) is a config of its own.
		cu, cz, cs := newClient(t, unset), newClient(t, zero), newClient(t, spelled)
		if clientID(t, cu) != clientID(t, cs) {
			t.Errorf("%s: nil and the default %d are different clients", f.key, f.def)
		}
		if clientID(t, cz) == clientID(t, cu) {
			t.Errorf("%s: Ptr(0) and nil are one client: the 0 did not reach libesp", f.key)
		}
	}

	// retry_max_ms 0 below the default retry_base_ms is refused by libesp,
	// which only a 0 that reached it can be.
	bad := mockConfig()
	bad.RetryMaxMS = Ptr[int64](0)
	if _, err := Get(bad); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "retry_max_ms") {
		t.Errorf("retry_max_ms 0 with the default retry_base_ms: want ErrConfig naming it, got %v", err)
	}
}

// Two requests at once on one connection slot, each held 600 ms, under a
// request timeout longer than the client's (300 ms): by default the wait for
// the slot is bounded by the client's timeout_ms, so one of them fails; with
// a pool timeout of 0 only by the request's own, so both get through.
func TestConfigPoolTimeoutZeroBoundsTheWaitForASlotByTheRequestsTimeoutOnly(t *testing.T) {
	for _, poolTimeout := range []*int64{nil, Ptr[int64](0)} {
		cfg := mockConfig()
		cfg.Isolate, cfg.MaxConnections, cfg.TimeoutMS, cfg.PoolTimeoutMS = true, 1, 300, poolTimeout
		cfg.IdleTTLMS = Ptr[int64](0) // its connection goes with it, not 30 s later
		c := newClient(t, cfg)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.Do(background, &Request{Path: "models", Timeout: 20 * time.Second,
					Header: faults("X-Mock-Delay-Ms", "600")})
			}()
		}
		wg.Wait()
		timedOut := 0
		for _, err := range errs {
			switch {
			case errors.Is(err, ErrPoolTimeout):
				timedOut++
			case err != nil:
				t.Errorf("pool timeout %v: %v", poolTimeout, err)
			}
		}
		if want := map[bool]int{true: 1, false: 0}[poolTimeout == nil]; timedOut != want {
			t.Errorf("pool_timeout_ms %v: %d of 2 failed with ErrPoolTimeout, want %d (%v)", poolTimeout, timedOut, want, errs)
		}
	}
}

// A breaker opened by one failure: with a cooldown of 0 the next request
// goes through as its probe; by default it meets the open breaker.
func TestConfigBreakerCooldownZeroLetsTheNextRequestProbe(t *testing.T) {
	for _, cooldown := range []*int64{nil, Ptr[int64](0)} {
		cfg := mockConfig()
		cfg.Isolate, cfg.BreakerFailures, cfg.BreakerCooldownMS = true, Ptr(1), cooldown // its own breakers
		cfg.IdleTTLMS = Ptr[int64](0)                                                    // its connection goes with it
		c := newClient(t, cfg)
		resp, err := c.Do(background, &Request{Path: "models", Header: faults("X-Mock-Status", "500")})
		if err != nil || resp.StatusCode != 500 {
			t.Fatalf("the failure that opens the breaker: %+v, %v", resp, err)
		}
		resp, err = c.Do(background, &Request{Path: "models"})
		if cooldown == nil && !errors.Is(err, ErrCircuit) {
			t.Errorf("default cooldown: want ErrCircuit, got %+v, %v", resp, err)
		}
		if cooldown != nil && (err != nil || resp.StatusCode != 200) {
			t.Errorf("cooldown 0: want the probe to get 200, got %+v, %v", resp, err)
		}
	}
}
