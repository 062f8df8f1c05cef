//! Leases: Clone takes one, Drop gives it back. The only test in its binary,
//! so no other test's clients move the process-wide count meanwhile.

mod common;

use std::thread;

use common::{config, esp_stats};
use libesp::{Client, Request};

const NAME: &str = "rust-leases";

/// Leases held in the whole process, and on the client named NAME, from esp_stats.
fn leases() -> (u64, u64) {
    let stats = esp_stats();
    let all = stats["registry"]["leases_live"]
        .as_u64()
        .unwrap_or_else(|| panic!("no registry.leases_live in {stats}"));
    let named = stats["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == NAME)
        .map_or(0, |c| c["leases"].as_u64().unwrap());
    (all, named)
}

#[test]
fn clone_takes_a_lease_and_drop_releases_it() {
    let (before, _) = leases();
    let config = config().name(NAME);
    let first = Client::get(&config).unwrap();
    let second = first.clone();
    let third = Client::from_json(&config.to_json()).unwrap();
    assert_eq!(leases(), (before + 3, 3));

    // Leases taken and released on other threads, with requests in between.
    thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..10 {
                    let clone = first.clone();
                    assert_eq!(
                        clone.request(&Request::get("models")).unwrap().status(),
                        200
                    );
                }
            });
        }
    });
    assert_eq!(leases(), (before + 3, 3));

    drop(second);
    assert_eq!(leases(), (before + 2, 2));
    drop((first, third));
    assert_eq!(leases(), (before, 0));
}
