//! Blocking requests against the mock server.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{chat, config, mock};
use libesp::{Client, Config, Error, Request};
use serde_json::Value;

#[test]
fn client_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Client>();
    assert_send_sync::<libesp::Response>();
    assert_send_sync::<libesp::ResponseFuture>();
    fn assert_send<T: Send>() {}
    assert_send::<libesp::EventStream>();
    assert_send::<libesp::AsyncEventStream>();
    assert_send::<libesp::StreamFuture>();
}

#[test]
fn chat_completion_round_trip() {
    let client = Client::get(&config()).unwrap();
    let request = Request::post("chat/completions")
        .json(&chat("hi there", false))
        .unwrap();
    let response = client.request(&request).unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.is_success());
    assert_eq!(response.attempts(), 1);
    assert_eq!(response.http_version(), 11);
    assert!(response
        .header("Content-Type")
        .unwrap()
        .starts_with("application/json"));
    let body: Value = response.json().unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hi there");
}

#[test]
fn echo_sees_method_path_headers_and_body() {
    let client = Client::get(&config().header("x-default", "from-config")).unwrap();
    let request = Request::new(
        "PUT",
        format!("http://127.0.0.1:{}/echo/thing?a=1", mock().http_port),
    )
    .header("x-extra", "from-request")
    .body(b"\x00binary\xffbody".to_vec());
    let echoed: Value = client.request(&request).unwrap().json().unwrap();
    assert_eq!(echoed["method"], "PUT");
    assert_eq!(echoed["path"], "/echo/thing");
    assert_eq!(echoed["query"]["a"], "1");
    assert_eq!(echoed["headers"]["x-extra"], "from-request");
    assert_eq!(echoed["headers"]["x-default"], "from-config");
    assert_eq!(echoed["headers"]["authorization"], "Bearer sk-test");
    assert_eq!(
        echoed["body"],
        String::from_utf8_lossy(b"\x00binary\xffbody").as_ref()
    );
}

#[test]
fn http_error_status_is_a_response_not_an_error() {
    let client = Client::get(&config()).unwrap();
    let request = Request::post("chat/completions")
        .json(&chat("x", false))
        .unwrap()
        .header("x-mock-status", "429");
    let response = client.request(&request).unwrap();
    assert_eq!(response.status(), 429);
    assert!(!response.is_success());
    let missing = client.request(&Request::get("no/such/route")).unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn bad_config_is_a_config_error_naming_the_key() {
    let error = Client::from_json(r#"{"no_such_key": 1}"#).unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert_eq!(error.code(), libesp::sys::ESP_ECONFIG);
    assert!(error.message().contains("no_such_key"), "{error}");

    let error = Client::from_json(r#"{"timeout_ms": "soon"}"#).unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(error.to_string().contains("timeout_ms"), "{error}");

    let error = Client::from_json("{not json").unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
}

#[test]
fn from_json_and_config_reach_the_same_server() {
    let json = format!(
        r#"{{"base_url": "{}", "api_key": "sk-test"}}"#,
        common::base_url()
    );
    let client = Client::from_json(&json).unwrap();
    let response = client.request(&Request::get("models")).unwrap();
    assert_eq!(response.status(), 200);
    let models: Value = response.json().unwrap();
    assert!(models["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "gpt-mock"));
}

#[test]
fn refused_connection_is_a_connect_error() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::get(
        &Config::default()
            .base_url(format!("http://127.0.0.1:{port}/v1"))
            .max_retries(0)
            .breaker_failures(0),
    )
    .unwrap();
    let error = client.request(&Request::get("models")).unwrap_err();
    assert!(matches!(error, Error::Connect(_)), "{error:?}");
    assert!(!error.message().is_empty());
}

#[test]
fn request_timeout_is_a_timed_out_error() {
    let client = Client::get(&config()).unwrap();
    let request = Request::get("models")
        .header("x-mock-delay-ms", "5000")
        .timeout(Duration::from_millis(200));
    let error = client.request(&request).unwrap_err();
    assert!(matches!(error, Error::TimedOut(_)), "{error:?}");
}

#[test]
fn nul_in_a_header_is_an_invalid_argument() {
    let client = Client::get(&config()).unwrap();
    let error = client
        .request(&Request::get("models").header("x-bad", "a\0b"))
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    let error = client
        .request(&Request::get("models").header("x-bad", "a\r\nb"))
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
}

#[test]
fn one_client_from_many_threads() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 25;
    let client = Arc::new(Client::get(&config()).unwrap());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    // Half the threads share the Arc, half take leases of their own.
                    let own;
                    let client = if t % 2 == 0 {
                        &*client
                    } else {
                        own = client.as_ref().clone();
                        &own
                    };
                    let text = format!("thread {t} request {i}");
                    let request = Request::post("chat/completions")
                        .json(&chat(&text, false))
                        .unwrap();
                    let body: Value = client.request(&request).unwrap().json().unwrap();
                    assert_eq!(
                        body["choices"][0]["message"]["content"],
                        format!("echo: {text}")
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

#[test]
fn https_with_the_test_ca() {
    let mock = mock();
    let client = Client::get(
        &config()
            .base_url(format!("https://localhost:{}/v1", mock.https_port))
            .ca_file(mock.ca_file.clone()),
    )
    .unwrap();
    let response = client.request(&Request::get("models")).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.http_version(), 20);
}

#[test]
fn version_and_metrics() {
    // The crate's version is include/esp.h's (make sync-versions): MAJOR*10000 + MINOR*100 + PATCH.
    let part: Vec<u32> = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(libesp::version(), part[0] * 10000 + part[1] * 100 + part[2]);
    assert!(libesp::version_string().starts_with(env!("CARGO_PKG_VERSION")));
    let client = Client::get(&config()).unwrap();
    client.request(&Request::get("models")).unwrap();
    let stats: Value = serde_json::from_str(&client.stats().unwrap()).unwrap();
    assert!(stats.is_object());
    assert!(libesp::metrics_prometheus().unwrap().contains("# TYPE"));
}

/// The body is read where libesp put it (the Response owns the esp_response):
/// it stays whole after the client is gone, and clones and into_body copy it.
#[test]
fn a_large_body_arrives_whole_and_outlives_its_client() {
    const SIZE: usize = 3_000_000;
    let client = Client::get(&config()).unwrap();
    let request = Request::get("models").header("x-mock-body-bytes", SIZE.to_string());
    let response = client.request(&request).unwrap();
    let asynchronous = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(client.send(&request))
        .unwrap();
    drop(client);
    for response in [&response, &asynchronous] {
        assert_eq!(response.body().len(), SIZE);
        assert!(response.body().iter().all(|&b| b == b'x'));
    }
    let copy = response.clone();
    assert_eq!(copy, response);
    assert_eq!(response.into_body(), copy.body());
    assert_eq!(asynchronous.into_body().len(), SIZE);
}
