//! libesp::shutdown invalidates every lease in the process, so it has a
//! test binary of its own.

mod common;

use std::time::Duration;

use common::config;
use libesp::{Client, Error, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_calls_in_flight_and_old_leases_but_not_new_ones() {
    let client = Client::get(&config()).unwrap();
    assert_eq!(
        client.request(&Request::get("models")).unwrap().status(),
        200
    );
    let hanging = tokio::spawn(client.send(&Request::get("models").header("x-mock-hang", "1")));
    tokio::time::sleep(Duration::from_millis(200)).await;

    libesp::shutdown(Duration::from_secs(5)).unwrap();

    let error = hanging.await.unwrap().unwrap_err();
    assert!(matches!(error, Error::Shutdown(_)), "{error:?}");
    let error = client.request(&Request::get("models")).unwrap_err();
    assert!(matches!(error, Error::Handle(_)), "{error:?}");
    let error = client.clone().request(&Request::get("models"));
    assert!(
        error.is_ok(),
        "a clone takes a new lease on the same config: {error:?}"
    );
    drop(client); // releasing an invalidated lease is harmless

    let fresh = Client::get(&config()).unwrap();
    assert_eq!(
        fresh.request(&Request::get("models")).unwrap().status(),
        200
    );
}
