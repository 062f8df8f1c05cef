use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A client config: the JSON object `esp_client_get` takes, field for field
/// (tests/config_schema.rs holds it to [`config_schema`](crate::config_schema)).
///
/// Every field is optional; `None` leaves libesp's default (see the README's
/// config table). libesp validates the config, not this type: a bad value
/// comes back as [`Error::Config`](crate::Error::Config) naming the key.
/// Configs that are equal in canonical form share one pooled client.
///
/// ```
/// let config = libesp::Config::default()
///     .provider("openai")
///     .base_url("http://127.0.0.1:8080/v1")
///     .api_key("sk-test")
///     .max_retries(0);
/// assert!(config.to_json().contains("\"max_retries\":0"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // each field is the JSON key of the same name; the builder methods carry the docs
pub struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_origins: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_base_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_max_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_max_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker_cooldown_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_ttl_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn_max_idle_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_options: Option<Vec<[i32; 3]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_request_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_buffer_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_resume_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<SharedState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployments: Option<Vec<Deployment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_cooldown_ms: Option<u64>,
}

/// One entry of the `deployments` key: an endpoint of the same API with its
/// own key (which goes to no other deployment) and rate limit.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Shown in stats and metrics (default: its origin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its base URL.
    pub base_url: String,
    /// Its key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// An environment variable holding its key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Its share with `routing: "weighted"` (1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
    /// Its credential's limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// Debug output never shows the key.
impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_env", &self.api_key_env)
            .field("weight", &self.weight)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// The `rate_limit` key: limits of the client's credential per minute
/// (`None`: not configured; `RateLimit::default()` only learns them from
/// the provider's headers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

/// The `shared_state` key: rate limits and breakers shared by every
/// process using this Redis.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedState {
    /// `redis://[:password@]host:port/db`.
    pub redis: String,
    /// Key prefix ("esp").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Longest wait for Redis before deciding locally, in milliseconds (50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Builder methods, one per field: `text` ones take anything that becomes
/// a String, the others their exact type (so integer literals just work).
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $kind:tt;)*) => {
        $(setters!(@one $(#[$doc])* $name $kind);)*
    };
    (@one $(#[$doc:meta])* $name:ident text) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.$name = Some(value.into());
            self
        }
    };
    (@one $(#[$doc:meta])* $name:ident $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = Some(value);
            self
        }
    };
}

impl Config {
    /// The config as the JSON object libesp takes.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers, bools and a string map always serializes.
        serde_json::to_string(self).expect("Config serializes to JSON")
    }

    /// Limit the credential's requests and tokens per minute (`rate_limit`).
    #[must_use]
    pub fn rate_limit(mut self, value: RateLimit) -> Self {
        self.rate_limit = Some(value);
        self
    }

    /// Share rate limits and breakers with a fleet through Redis (`shared_state`).
    #[must_use]
    pub fn shared_state(mut self, value: SharedState) -> Self {
        self.shared_state = Some(value);
        self
    }

    /// Add a deployment (`deployments`): requests are spread over them and
    /// fail over from one to the next.
    #[must_use]
    pub fn deployment(mut self, value: Deployment) -> Self {
        self.deployments.get_or_insert_with(Vec::new).push(value);
        self
    }

    setters! {
        /// How a deployment is picked: "least_busy", "weighted" or "ordered".
        routing: text;
        /// How long a failing deployment is skipped, in milliseconds (5000).
        deployment_cooldown_ms: u64;
    }

    /// Add an origin ("https://files.example.com") besides `base_url`'s that
    /// may receive the client's credentials (`credential_origins`).
    #[must_use]
    pub fn credential_origin(mut self, origin: impl Into<String>) -> Self {
        self.credential_origins
            .get_or_insert_with(Vec::new)
            .push(origin.into());
        self
    }

    /// Add a socket option (`socket_options`): `setsockopt(level, option,
    /// value)` on every socket the client opens; such a client is isolated.
    #[must_use]
    pub fn socket_option(mut self, level: i32, option: i32, value: i32) -> Self {
        self.socket_options
            .get_or_insert_with(Vec::new)
            .push([level, option, value]);
        self
    }

    /// Add one default header sent with every request of the client.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), value.into());
        self
    }

    setters! {
        /// Preset for base_url and auth style: openai, azure, anthropic, gemini,
        /// groq, cerebras, mistral, together, openrouter, jina, ollama, generic.
        provider: text;
        /// A name for the client in stats and logs.
        name: text;
        /// API root; the preset's by default.
        base_url: text;
        /// The API key.
        api_key: text;
        /// The name of an environment variable holding the API key.
        api_key_env: text;
        /// OpenAI-Organization header.
        organization: text;
        /// OpenAI-Project header.
        project: text;
        /// Azure api-version or anthropic-version.
        api_version: text;
        /// Whole-request timeout in milliseconds (45000).
        timeout_ms: u64;
        /// DNS + TCP + TLS timeout in milliseconds (10000).
        connect_timeout_ms: u64;
        /// Longest wait for a free connection slot (timeout_ms).
        pool_timeout_ms: u64;
        /// Longest silence inside a streamed response (0: off).
        idle_timeout_ms: u64;
        /// Longest wait for the first response byte (0: off).
        first_byte_timeout_ms: u64;
        /// Connections per origin (64).
        max_connections: u32;
        /// HTTP/2 with multiplexing over TLS (true).
        http2: bool;
        /// Retries on 408/409/429/5xx and connection errors (2).
        max_retries: u32;
        /// Backoff base in milliseconds (500).
        retry_base_ms: u64;
        /// Backoff cap in milliseconds (8000).
        retry_max_ms: u64;
        /// Longest retry-after honoured, in milliseconds (60000).
        retry_after_max_ms: u64;
        /// Header carrying a generated idempotency key on retryable POSTs
        /// (Idempotency-Key; "" sends none).
        idempotency_header: text;
        /// Failures that open the per-origin circuit breaker (5; 0 disables).
        breaker_failures: u32;
        /// How long an open breaker stays open, in milliseconds (30000).
        breaker_cooldown_ms: u64;
        /// Linger after the last lease is released, in milliseconds (30000).
        idle_ttl_ms: u64;
        /// An idle connection older than this is not reused (60000).
        conn_max_idle_ms: u64;
        /// Verify the server's certificate (true).
        verify_tls: bool;
        /// CA bundle file.
        ca_file: text;
        /// Client certificate file.
        client_cert: text;
        /// Client key file.
        client_key: text;
        /// Proxy URL.
        proxy: text;
        /// Own connections, shared with no other config (false).
        isolate: bool;
        /// Responses larger than this fail with `TooLarge` (64 MiB).
        max_response_bytes: u64;
        /// Requests slower than this are logged, in milliseconds (10000).
        slow_request_ms: u64;
        /// How far a stream's reader may fall behind before the transfer
        /// pauses, in bytes (1 MiB).
        stream_buffer_bytes: u64;
        /// Where a paused stream resumes, in unread bytes (a quarter of
        /// `stream_buffer_bytes`).
        stream_resume_bytes: u64;
    }
}

/// Debug output never shows the API key.
impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redis = if self.redis.contains('@') { "<redacted>" } else { self.redis.as_str() };
        f.debug_struct("SharedState")
            .field("redis", &redis)
            .field("namespace", &self.namespace)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.clone();
        if shown.api_key.is_some() {
            shown.api_key = Some("<redacted>".to_owned());
        }
        for d in shown.deployments.iter_mut().flatten() {
            if d.api_key.is_some() {
                d.api_key = Some("<redacted>".to_owned());
            }
        }
        if let Some(s) = shown.shared_state.as_mut() {
            if s.redis.contains('@') {
                s.redis = "<redacted>".to_owned(); // a password in the URL
            }
        }
        write!(f, "Config {}", shown.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_and_shared_state_serialize_and_hide_the_redis_password() {
        let config = Config::default()
            .rate_limit(RateLimit { requests_per_minute: Some(60), tokens_per_minute: None })
            .shared_state(SharedState {
                redis: "redis://:pw-SECRET@127.0.0.1:6379/0".into(),
                namespace: Some("fleet".into()),
                timeout_ms: None,
            });
        assert_eq!(
            config.to_json(),
            r#"{"rate_limit":{"requests_per_minute":60},"shared_state":{"redis":"redis://:pw-SECRET@127.0.0.1:6379/0","namespace":"fleet"}}"#
        );
        assert!(!format!("{config:?}").contains("SECRET"));
    }

    #[test]
    fn deployments_serialize_and_hide_their_keys() {
        let config = Config::default().routing("ordered").deployment(Deployment {
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: Some("sk-dep-SECRET".into()),
            weight: Some(2),
            ..Deployment::default()
        });
        assert_eq!(
            config.to_json(),
            r#"{"deployments":[{"base_url":"http://127.0.0.1:1/v1","api_key":"sk-dep-SECRET","weight":2}],"routing":"ordered"}"#
        );
        assert!(!format!("{config:?}").contains("SECRET"));
    }

    #[test]
    fn only_set_fields_are_serialized() {
        assert_eq!(Config::default().to_json(), "{}");
        let config = Config::default()
            .base_url("http://h/v1")
            .max_connections(8)
            .http2(false)
            .header("x-a", "1");
        assert_eq!(
            config.to_json(),
            r#"{"base_url":"http://h/v1","headers":{"x-a":"1"},"max_connections":8,"http2":false}"#
        );
        let back: Config = serde_json::from_str(&config.to_json()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn debug_never_shows_the_api_key() {
        let shown = format!("{:?}", Config::default().api_key("sk-secret-123"));
        assert!(!shown.contains("sk-secret-123"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
