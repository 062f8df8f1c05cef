//! Futures on tokio's multi-thread runtime and on a hand-rolled executor.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use common::{cancelled, chat, client_counter, config, eventually, isolated_config};
use libesp::{Client, Error, Request};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_requests_on_tokio() {
    const REQUESTS: usize = 1000;
    let client = Arc::new(Client::get(&config()).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let client = Arc::clone(&client);
        tasks.spawn(async move {
            let text = format!("request {i}");
            let request = Request::post("chat/completions")
                .json(&chat(&text, false))
                .unwrap();
            let response = client.send(&request).await.unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().unwrap();
            assert_eq!(
                body["choices"][0]["message"]["content"],
                format!("echo: {text}")
            );
        });
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
        done += 1;
    }
    assert_eq!(done, REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_failures_are_errors_and_http_errors_are_responses() {
    let client = Client::get(&config()).unwrap();

    let request = Request::get("models")
        .header("x-mock-delay-ms", "5000")
        .timeout(Duration::from_millis(200));
    let error = client.send(&request).await.unwrap_err();
    assert!(matches!(error, Error::TimedOut(_)), "{error:?}");

    let error = client
        .send(&Request::get("models").header("x-bad", "a\0b"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");

    let response = client
        .send(&Request::get("models").header("x-mock-status", "503"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_unfinished_future_cancels_the_call() {
    // One connection: if the cancelled call kept its slot, the next request
    // would wait for it until pool_timeout_ms and fail.
    let client = Client::get(
        &isolated_config("async-cancel")
            .max_connections(1)
            .pool_timeout_ms(3000),
    )
    .unwrap();
    let before = cancelled(&client);
    {
        let hanging = client.send(&Request::get("models").header("x-mock-hang", "1"));
        assert!(tokio::time::timeout(Duration::from_millis(300), hanging)
            .await
            .is_err());
    }
    assert!(
        eventually(Duration::from_secs(10), || cancelled(&client) == before + 1),
        "the dropped call never completed as cancelled"
    );
    assert!(eventually(Duration::from_secs(10), || client_counter(
        &client,
        "in_flight"
    ) == 0));
    let response = client.send(&Request::get("models")).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn futures_need_no_particular_executor() {
    let client = Client::get(&config()).unwrap();
    let responses = block_on(async {
        // Two requests in flight at once, awaited one after the other.
        let first = client.send(
            &Request::post("chat/completions")
                .json(&chat("one", false))
                .unwrap(),
        );
        let second = client.send(
            &Request::post("chat/completions")
                .json(&chat("two", false))
                .unwrap(),
        );
        (first.await.unwrap(), second.await.unwrap())
    });
    let content = |r: &libesp::Response| {
        r.json::<Value>().unwrap()["choices"][0]["message"]["content"].clone()
    };
    assert_eq!(content(&responses.0), "echo: one");
    assert_eq!(content(&responses.1), "echo: two");
}

/// The smallest executor: park the thread until the waker unparks it.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}
