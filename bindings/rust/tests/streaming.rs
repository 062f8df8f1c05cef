//! Streamed responses: the blocking iterator and the async stream.

mod common;

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use common::{cancelled, chat, client_counter, config, eventually, isolated_config};
use futures_core::Stream;
use libesp::{AsyncEventStream, Client, Event, Request, Result};
use serde_json::Value;

const EVENTS: usize = 5;

fn streamed_chat() -> Request {
    Request::post("chat/completions")
        .json(&chat("stream please", true))
        .unwrap()
        .header("x-mock-events", EVENTS.to_string())
}

/// The text a chat-completions SSE stream carried, and whether it ended with [DONE].
fn assemble(events: &[Event]) -> (String, bool) {
    let mut text = String::new();
    let mut done = false;
    for event in events {
        let Event::Sse(sse) = event else {
            panic!("expected SSE events, got {event:?}")
        };
        assert_eq!(sse.event, "message");
        if sse.data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(&sse.data).unwrap();
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(piece);
        }
    }
    (text, done)
}

fn expected_text() -> String {
    (0..EVENTS).map(|i| format!("tok{i} ")).collect()
}

async fn next(stream: &mut AsyncEventStream) -> Option<Result<Event>> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[test]
fn blocking_iterator_yields_sse_events() {
    let client = Client::get(&config()).unwrap();
    let stream = client.stream(&streamed_chat()).unwrap();
    assert_eq!(stream.response().status(), 200);
    assert!(stream
        .response()
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events: Vec<Event> = stream.collect::<Result<_>>().unwrap();
    // role chunk, one chunk per token, the stop chunk, then [DONE]
    assert_eq!(events.len(), EVENTS + 3);
    assert_eq!(assemble(&events), (expected_text(), true));
}

#[test]
fn blocking_iterator_raw_chunks() {
    let client = Client::get(&config()).unwrap();
    let stream = client.stream(&streamed_chat().raw_stream()).unwrap();
    let mut body = Vec::new();
    for event in stream {
        match event.unwrap() {
            Event::Chunk(bytes) => body.extend_from_slice(&bytes),
            other => panic!("expected raw chunks, got {other:?}"),
        }
    }
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with("data: {"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
}

#[test]
fn blocking_stream_of_a_plain_body_and_of_an_error_status() {
    let client = Client::get(&config()).unwrap();
    let stream = client.stream(&Request::get("models")).unwrap();
    let body: Vec<u8> = stream
        .flat_map(|event| event.unwrap().data().to_vec())
        .collect();
    let models: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(models["object"], "list");

    let stream = client
        .stream(&streamed_chat().header("x-mock-status", "500"))
        .unwrap();
    assert_eq!(stream.response().status(), 500);
    let body: Vec<u8> = stream
        .flat_map(|event| event.unwrap().data().to_vec())
        .collect();
    assert!(!body.is_empty());
}

#[test]
fn blocking_stream_failure_ends_the_iterator() {
    let client = Client::get(&config()).unwrap();
    let request = streamed_chat().header("x-mock-drop", "mid-body").no_retry();
    let results: Vec<Result<Event>> = client.stream(&request).unwrap().collect();
    let last = results.last().expect("at least the failure");
    assert!(last.is_err(), "{results:?}");
    assert!(results[..results.len() - 1].iter().all(Result::is_ok));
}

#[test]
fn dropping_a_blocking_stream_midway_cancels_it() {
    let client = Client::get(&isolated_config("blocking-stream-drop").max_connections(1)).unwrap();
    let before = cancelled(&client);
    let request = streamed_chat()
        .header("x-mock-events", "200")
        .header("x-mock-chunk-delay-ms", "50");
    let mut stream = client.stream(&request).unwrap();
    assert!(stream.next().unwrap().is_ok());
    drop(stream);
    assert!(eventually(Duration::from_secs(10), || cancelled(&client) == before + 1));
    assert!(eventually(Duration::from_secs(10), || client_counter(
        &client,
        "in_flight"
    ) == 0));
    // The one connection slot is free again.
    assert_eq!(
        client.request(&Request::get("models")).unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stream_yields_sse_events() {
    let client = Client::get(&config()).unwrap();
    let mut stream = client.stream_async(&streamed_chat()).await.unwrap();
    assert_eq!(stream.response().status(), 200);
    let mut events = Vec::new();
    while let Some(event) = next(&mut stream).await {
        events.push(event.unwrap());
    }
    assert_eq!(events.len(), EVENTS + 3);
    assert_eq!(assemble(&events), (expected_text(), true));
    assert!(
        next(&mut stream).await.is_none(),
        "a finished stream stays finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stream_raw_chunks_and_failure() {
    let client = Client::get(&config()).unwrap();
    let mut stream = client.stream_async(&Request::get("models")).await.unwrap();
    let mut body = Vec::new();
    while let Some(event) = next(&mut stream).await {
        match event.unwrap() {
            Event::Chunk(bytes) => body.extend_from_slice(&bytes),
            other => panic!("expected raw chunks, got {other:?}"),
        }
    }
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["object"],
        "list"
    );

    // An event stream read raw: the SSE bytes as they came, no parsed events.
    let mut stream = client
        .stream_async(&streamed_chat().raw_stream())
        .await
        .unwrap();
    let mut body = Vec::new();
    while let Some(event) = next(&mut stream).await {
        match event.unwrap() {
            Event::Chunk(bytes) => body.extend_from_slice(&bytes),
            other => panic!("expected raw chunks, got {other:?}"),
        }
    }
    assert!(String::from_utf8(body)
        .unwrap()
        .ends_with("data: [DONE]\n\n"));

    let request = streamed_chat().header("x-mock-drop", "mid-body").no_retry();
    let mut stream = client.stream_async(&request).await.unwrap();
    let mut last = None;
    while let Some(event) = next(&mut stream).await {
        last = Some(event);
    }
    assert!(last.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_async_stream_midway_cancels_it() {
    let client = Client::get(&isolated_config("async-stream-drop").max_connections(1)).unwrap();
    let before = cancelled(&client);
    let request = streamed_chat()
        .header("x-mock-events", "200")
        .header("x-mock-chunk-delay-ms", "50");
    let mut stream = client.stream_async(&request).await.unwrap();
    assert!(next(&mut stream).await.unwrap().is_ok());
    drop(stream);
    assert!(eventually(Duration::from_secs(10), || cancelled(&client) == before + 1));
    assert!(eventually(Duration::from_secs(10), || client_counter(
        &client,
        "in_flight"
    ) == 0));
    assert_eq!(
        client.send(&Request::get("models")).await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_future_before_headers_cancels_it() {
    let client = Client::get(&isolated_config("stream-future-drop").max_connections(1)).unwrap();
    let before = cancelled(&client);
    let pending = client.stream_async(&streamed_chat().header("x-mock-hang", "1"));
    assert!(tokio::time::timeout(Duration::from_millis(300), pending)
        .await
        .is_err());
    assert!(eventually(Duration::from_secs(10), || cancelled(&client) == before + 1));
    assert!(eventually(Duration::from_secs(10), || client_counter(
        &client,
        "in_flight"
    ) == 0));
    assert_eq!(
        client.send(&Request::get("models")).await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_async_reader_gets_every_byte_of_a_large_body() {
    const BYTES: usize = 8 << 20;
    let client = Client::get(&isolated_config("slow-reader")).unwrap();
    let request = Request::get("models").header("x-mock-body-bytes", BYTES.to_string());
    let mut stream = client.stream_async(&request).await.unwrap();
    let mut received = 0;
    let mut reads = 0;
    while let Some(event) = next(&mut stream).await {
        let data = event.unwrap();
        assert!(data.data().iter().all(|&b| b == b'x'));
        received += data.data().len();
        reads += 1;
        if reads == 1 {
            // Fall behind: libesp pauses the transfer once 1 MiB (its
            // stream_buffer_bytes) waits unread, and resumes as we catch up.
            tokio::time::sleep(Duration::from_millis(500)).await;
            // The first item may have been taken after the pause: then what
            // is held is 1 MiB less that item, still paused (over the resume mark).
            assert_eq!(client_counter(&client, "streams_paused"), 1);
            let held = client_counter(&client, "stream_buffered_bytes");
            let first = data.data().len() as u64;
            assert!(
                ((1 << 20) - first..2 << 20).contains(&held),
                "{held} bytes held after a first item of {first}"
            );
        }
    }
    assert_eq!(received, BYTES);
    assert_eq!(client_counter(&client, "streams_paused"), 0);
}
