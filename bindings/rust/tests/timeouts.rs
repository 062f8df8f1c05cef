//! A request's own first-byte and idle timeouts (esp_request_opts 0.2.0)
//! against the mock server's late heads and slow bodies: each one reaches
//! libesp, bounds only its own phase, and says which one fired.

mod common;

use std::time::{Duration, Instant};

use common::config;
use libesp::{Client, Error, Request};

/// A client whose own first-byte limit (100 ms) is shorter than what the
/// requests below set, so a failure at the request's limit shows it was used.
fn client() -> Client {
    Client::get(&config().first_byte_timeout_ms(100).breaker_failures(0)).unwrap()
}

fn timed_out(client: &Client, request: &Request) -> (String, Duration) {
    let started = Instant::now();
    let error = client.request(request).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, Error::TimedOut(_)), "{error:?}");
    (error.message().to_owned(), took)
}

#[test]
fn first_byte_timeout_bounds_the_wait_for_the_head() {
    let client = client();
    let late_head = Request::get("models").header("x-mock-delay-ms", "600");
    let (message, took) = timed_out(
        &client,
        &late_head
            .clone()
            .first_byte_timeout(Duration::from_millis(250)),
    );
    assert!(message.starts_with("first-byte timeout"), "{message}");
    assert!(message.contains("(250 ms)"), "{message}");
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_millis(550), "{took:?}");

    // Duration::MAX lifts the client's 100 ms limit: the late head is waited for.
    let response = client
        .request(&late_head.first_byte_timeout(Duration::MAX))
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn idle_timeout_bounds_silences_in_the_body_but_not_the_head() {
    let client = client();
    // 20 bytes, one every 400 ms: the first silence is over the limit.
    let (message, took) = timed_out(
        &client,
        &Request::get("models")
            .header("x-mock-slowloris", "400")
            .idle_timeout(Duration::from_millis(150)),
    );
    assert!(message.starts_with("idle timeout"), "{message}");
    assert!(message.contains("(150 ms)"), "{message}");
    assert!(took < Duration::from_millis(1_000), "{took:?}");

    // A head later than the idle limit is the first-byte limit's business.
    let late_head = Request::get("models")
        .header("x-mock-delay-ms", "300")
        .first_byte_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_millis(150));
    assert_eq!(client.request(&late_head).unwrap().status(), 200);

    // A body that keeps talking within the limit completes.
    let steady = Request::get("models")
        .header("x-mock-slowloris", "30")
        .idle_timeout(Duration::from_millis(300));
    assert_eq!(client.request(&steady).unwrap().status(), 200);
}

/// The message of the timeout an async request ends with.
async fn timed_out_async(client: &Client, request: &Request) -> String {
    let error = client.send(request).await.unwrap_err();
    assert!(matches!(error, Error::TimedOut(_)), "{error:?}");
    error.message().to_owned()
}

#[tokio::test]
async fn async_requests_carry_both_timeouts() {
    let client = client();
    let late_head = Request::get("models")
        .header("x-mock-delay-ms", "600")
        .first_byte_timeout(Duration::from_millis(200));
    let message = timed_out_async(&client, &late_head).await;
    assert!(
        message.starts_with("first-byte timeout") && message.contains("(200 ms)"),
        "{message}"
    );
    let slow_body = Request::get("models")
        .header("x-mock-slowloris", "400")
        .idle_timeout(Duration::from_millis(150));
    let message = timed_out_async(&client, &slow_body).await;
    assert!(
        message.starts_with("idle timeout") && message.contains("(150 ms)"),
        "{message}"
    );
}
