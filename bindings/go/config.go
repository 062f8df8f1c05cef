package esp

// Config mirrors libesp's JSON client config, key for key (a test holds it
// to [ConfigSchema]). A zero field is left out of the JSON and so means
// libesp's default; the pointer fields are those where 0, false or "" is a
// meaningful setting of its own (use [Ptr] to set them).
//
// Configs that are equal once the defaults are filled in share one client
// and its connection pool. Validation happens in libesp: [Get] returns an
// error matching [ErrConfig] that names a bad key.
type Config struct {
	// Provider is the preset (openai, azure, anthropic, gemini, groq,
	// cerebras, mistral, together, openrouter, jina, ollama, generic) that
	// gives the base URL and auth style; default "openai".
	Provider string `json:"provider,omitempty"`
	// Name labels the client in stats, metrics and logs (default
	// "client-<id>").
	Name string `json:"name,omitempty"`
	// BaseURL overrides the preset's base URL.
	BaseURL string `json:"base_url,omitempty"`
	// APIKey is the provider key. It never appears in logs, stats or errors.
	APIKey string `json:"api_key,omitempty"`
	// APIKeyEnv names an environment variable holding the key.
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// Organization and Project set the OpenAI-Organization and
	// OpenAI-Project headers.
	Organization string `json:"organization,omitempty"`
	Project      string `json:"project,omitempty"`
	// APIVersion is the Azure api-version or the anthropic-version.
	APIVersion string `json:"api_version,omitempty"`
	// Headers are extra default headers for every request.
	Headers map[string]string `json:"headers,omitempty"`
	// CredentialOrigins are origins ("https://files.example.com") besides
	// BaseURL's that may receive the client's credentials; every other
	// origin gets none of them.
	CredentialOrigins []string `json:"credential_origins,omitempty"`

	// TimeoutMS bounds a whole request (default 45000).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// ConnectTimeoutMS bounds DNS, TCP and TLS (default 10000).
	ConnectTimeoutMS int64 `json:"connect_timeout_ms,omitempty"`
	// PoolTimeoutMS bounds the wait for a free connection slot, failing with
	// [ErrPoolTimeout] (default TimeoutMS; Ptr(int64(0)): no bound of its
	// own, only the request's total timeout).
	PoolTimeoutMS *int64 `json:"pool_timeout_ms,omitempty"`
	// IdleTimeoutMS bounds the silence inside a streamed response (default
	// 0: off).
	IdleTimeoutMS int64 `json:"idle_timeout_ms,omitempty"`
	// FirstByteTimeoutMS bounds the wait for the response to start (default
	// 0: off).
	FirstByteTimeoutMS int64 `json:"first_byte_timeout_ms,omitempty"`
	// MaxConnections caps the connections per origin (default 64).
	MaxConnections int `json:"max_connections,omitempty"`
	// HTTP2 enables HTTP/2 with multiplexing over TLS (default true).
	HTTP2 *bool `json:"http2,omitempty"`

	// MaxRetries is how often a request is retried on 408/409/429/5xx and
	// connection errors (default 2; 0 disables retries).
	MaxRetries *int `json:"max_retries,omitempty"`
	// RetryBaseMS and RetryMaxMS shape the exponential backoff (default 500
	// and 8000; RetryMaxMS at least RetryBaseMS). Ptr(int64(0)) for both
	// retries at once, with no backoff.
	RetryBaseMS *int64 `json:"retry_base_ms,omitempty"`
	RetryMaxMS  *int64 `json:"retry_max_ms,omitempty"`
	// RetryAfterMaxMS is the longest retry-after honoured (default 60000;
	// longer ones fall back to backoff).
	RetryAfterMaxMS *int64 `json:"retry_after_max_ms,omitempty"`
	// IdempotencyHeader carries the key sent on retriable POSTs (default
	// "Idempotency-Key"; Ptr("") sends none).
	IdempotencyHeader *string `json:"idempotency_header,omitempty"`
	// BreakerFailures opens an origin's circuit breaker after that many
	// consecutive failures (default 5; 0 disables the breaker).
	BreakerFailures *int `json:"breaker_failures,omitempty"`
	// BreakerCooldownMS is how long an open breaker stays open (default
	// 30000; Ptr(int64(0)) lets the next request through at once as a
	// probe).
	BreakerCooldownMS *int64 `json:"breaker_cooldown_ms,omitempty"`

	// IdleTTLMS is how long a client lingers after its last lease is
	// released (default 30000; 0 drops it at once).
	IdleTTLMS *int64 `json:"idle_ttl_ms,omitempty"`
	// ConnMaxIdleMS keeps an idle connection older than this from being
	// reused (default 60000).
	ConnMaxIdleMS int64 `json:"conn_max_idle_ms,omitempty"`

	// VerifyTLS checks the server's certificate (default true).
	VerifyTLS *bool `json:"verify_tls,omitempty"`
	// CAFile, ClientCert and ClientKey are PEM file paths.
	CAFile     string `json:"ca_file,omitempty"`
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
	// Proxy is the proxy URL.
	Proxy string `json:"proxy,omitempty"`
	// Isolate gives the client connections of its own, shared with no other
	// config.
	Isolate bool `json:"isolate,omitempty"`
	// SocketOptions are [level, option, value] triples set with setsockopt
	// on every socket the client opens; a client with them is isolated.
	SocketOptions [][3]int `json:"socket_options,omitempty"`
	// MaxResponseBytes caps a response body (default 64 MiB); larger ones
	// fail with [ErrTooLarge].
	MaxResponseBytes int64 `json:"max_response_bytes,omitempty"`
	// SlowRequestMS: requests slower than this are logged (default 10000;
	// 0 logs every request).
	SlowRequestMS *int64 `json:"slow_request_ms,omitempty"`
	// StreamBufferBytes is how far a stream's reader may fall behind before
	// the transfer pauses (default 1 MiB).
	StreamBufferBytes int64 `json:"stream_buffer_bytes,omitempty"`
	// StreamResumeBytes is where a paused stream resumes (default a quarter
	// of StreamBufferBytes).
	StreamResumeBytes *int64 `json:"stream_resume_bytes,omitempty"`

	// RateLimit limits the requests and tokens per minute of the client's
	// credential (shared by every client of the process with that key):
	// requests wait for budget instead of collecting 429s, and fail with
	// [ErrRateLimited] only when their timeout cannot be met. An empty
	// RateLimit only learns the limits from the provider's headers.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// SharedState shares the rate limits and circuit breakers with every
	// process using the same Redis (a fleet).
	SharedState *SharedState `json:"shared_state,omitempty"`

	// Deployments lists interchangeable endpoints of one API: each request
	// to a relative path goes to one of them (with its own key and rate
	// limit) and fails over to the next on connection errors, 5xx, 429 and
	// an open breaker.
	Deployments []Deployment `json:"deployments,omitempty"`
	// Routing picks the deployment: "least_busy" (default), "weighted" or
	// "ordered".
	Routing string `json:"routing,omitempty"`
	// DeploymentCooldownMS is how long a failing deployment is skipped
	// (default 5000; Ptr(int64(0)) skips it only for as long as a 429's
	// retry-after says).
	DeploymentCooldownMS *int64 `json:"deployment_cooldown_ms,omitempty"`
}

// Deployment is one entry of the "deployments" config key.
type Deployment struct {
	Name    string `json:"name,omitempty"`
	BaseURL string `json:"base_url"`
	// APIKey is the deployment's own key; it goes to no other deployment.
	APIKey    string     `json:"api_key,omitempty"`
	APIKeyEnv string     `json:"api_key_env,omitempty"`
	Weight    int64      `json:"weight,omitempty"`
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
}

// RateLimit is the "rate_limit" config key; 0 means not configured.
type RateLimit struct {
	RequestsPerMinute int64 `json:"requests_per_minute,omitempty"`
	TokensPerMinute   int64 `json:"tokens_per_minute,omitempty"`
}

// SharedState is the "shared_state" config key.
type SharedState struct {
	// Redis is "redis://[:password@]host:port/db".
	Redis string `json:"redis"`
	// Namespace prefixes the keys (default "esp").
	Namespace string `json:"namespace,omitempty"`
	// TimeoutMS is the longest wait for Redis before deciding locally
	// (default 50).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Ptr returns a pointer to v, for the pointer fields of [Config]:
//
//	esp.Config{MaxRetries: esp.Ptr(0), VerifyTLS: esp.Ptr(false), PoolTimeoutMS: esp.Ptr[int64](0)}
func Ptr[T any](v T) *T { return &v }
