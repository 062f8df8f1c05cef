//! Shared test fixture: one mock LLM server (test/mock/server.js) per test
//! binary, started on first use. It serves until its stdin closes, which
//! happens when the test process exits.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libesp::{Client, Config, Request};
use serde_json::Value;

pub struct Mock {
    pub http_port: u16,
    pub https_port: u16,
    pub ca_file: String,
    // Held so the mock's stdin stays open for the life of the process.
    _stdin: ChildStdin,
    _child: Child,
}

pub fn mock() -> &'static Mock {
    static MOCK: OnceLock<Mock> = OnceLock::new();
    MOCK.get_or_init(|| {
        let root = std::env::var_os("ESP_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
        let server = root.join("test/mock/server.js");
        let mut child = Command::new("node")
            .arg(&server)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the mock server {}: {e}", server.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("mock server printed {line:?}: {e}"));
        Mock {
            http_port: info["http_port"].as_u64().unwrap() as u16,
            https_port: info["https_port"].as_u64().unwrap() as u16,
            ca_file: info["ca_file"].as_str().unwrap().to_owned(),
            _stdin: child.stdin.take().unwrap(),
            _child: child,
        }
    })
}

/// The mock's plain-HTTP OpenAI base URL.
pub fn base_url() -> String {
    format!("http://127.0.0.1:{}/v1", mock().http_port)
}

/// An OpenAI config for the mock, without retries so failures show at once.
pub fn config() -> Config {
    Config::default()
        .provider("openai")
        .base_url(base_url())
        .api_key("sk-test")
        .max_retries(0)
}

/// GET a control route of the mock (these do not count in its numbers).
pub fn mock_control(client: &Client, path: &str) -> Value {
    let url = format!("http://127.0.0.1:{}{path}", mock().http_port);
    client.request(&Request::get(url)).unwrap().json().unwrap()
}

/// libesp's process-wide stats.
pub fn esp_stats() -> Value {
    serde_json::from_str(&libesp::stats().unwrap()).unwrap()
}

/// Poll `check` every 20 ms until it returns true or `limit` elapses.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A chat-completions request body.
pub fn chat(content: &str, stream: bool) -> Value {
    serde_json::json!({
        "model": "gpt-mock",
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    })
}

/// A config whose client has connections of its own, so its numbers are
/// not shared with other tests running at the same time.
pub fn isolated_config(name: &str) -> Config {
    config().isolate(true).header("x-test-name", name)
}

/// This client's own numbers from esp_client_stats.
fn client_stats(client: &Client) -> Value {
    let stats: Value = serde_json::from_str(&client.stats().unwrap()).unwrap();
    stats["client"].clone()
}

/// One counter of a client's stats (e.g. "in_flight", "requests").
pub fn client_counter(client: &Client, name: &str) -> u64 {
    let stats = client_stats(client);
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name:?} in client stats {stats}"))
}

/// How many calls of this client completed cancelled.
pub fn cancelled(client: &Client) -> u64 {
    let stats = client_stats(client);
    stats["outcomes"]["cancelled"]
        .as_u64()
        .unwrap_or_else(|| panic!("no cancelled outcome in {stats}"))
}
