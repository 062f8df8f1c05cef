//! libesp vs reqwest on a loopback HTTP/1.1 server: sequential and at
//! concurrency 64, blocking and async (tokio). Prints requests per second
//! and the ratio libesp / reqwest (above 1: libesp is faster).
//!
//!     make -C bindings/rust bench            # or: cargo run --release --example bench
//!     BENCH_REQUESTS=50000 cargo run --release --example bench
//!
//! The server is a minimal keep-alive responder on threads of this process,
//! so both clients pay the same server cost and the difference is theirs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use libesp::{Client, Config, Request};

const CONCURRENCY: usize = 64;
const BODY: &str = r#"{"model":"gpt-mock","messages":[{"role":"user","content":"hello"}]}"#;
const REPLY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the loopback server."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":6,"total_tokens":7}}"#;

fn main() {
    let requests: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let port = serve();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    println!(
        "libesp {} | {requests} requests per run, concurrency {CONCURRENCY}",
        libesp::version_string()
    );

    let esp = Arc::new(
        Client::get(
            &Config::default()
                .base_url(format!("http://127.0.0.1:{port}/v1"))
                .api_key("sk-bench"),
        )
        .unwrap(),
    );
    let esp_request = Request::post("chat/completions")
        .header("content-type", "application/json")
        .body(BODY);
    let blocking = reqwest::blocking::Client::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let asynchronous = reqwest::Client::new();

    let sequential = requests / 4;
    let mut rows = Vec::new();

    rows.push(compare(
        "blocking, sequential",
        sequential,
        || {
            run_blocking(1, sequential, || {
                check(esp.request(&esp_request).unwrap().body())
            })
        },
        || {
            run_blocking(1, sequential, || {
                check(&reqwest_blocking(&blocking, &url));
            })
        },
    ));
    rows.push(compare(
        "blocking, 64 threads",
        requests,
        || {
            run_blocking(CONCURRENCY, requests, || {
                check(esp.request(&esp_request).unwrap().body())
            })
        },
        || {
            run_blocking(CONCURRENCY, requests, || {
                check(&reqwest_blocking(&blocking, &url));
            })
        },
    ));
    rows.push(compare(
        "async tokio, sequential",
        sequential,
        || {
            runtime.block_on(async {
                for _ in 0..sequential {
                    check(esp.send(&esp_request).await.unwrap().body());
                }
            })
        },
        || {
            runtime.block_on(async {
                for _ in 0..sequential {
                    check(&reqwest_async(&asynchronous, &url).await);
                }
            })
        },
    ));
    rows.push(compare(
        "async tokio, 64 tasks",
        requests,
        || {
            runtime.block_on(run_tasks(requests, {
                let (esp, esp_request) = (Arc::clone(&esp), esp_request.clone());
                move || {
                    let (esp, esp_request) = (Arc::clone(&esp), esp_request.clone());
                    async move { check(esp.send(&esp_request).await.unwrap().body()) }
                }
            }))
        },
        || {
            runtime.block_on(run_tasks(requests, {
                let (client, url) = (asynchronous.clone(), url.clone());
                move || {
                    let (client, url) = (client.clone(), url.clone());
                    async move { check(&reqwest_async(&client, &url).await) }
                }
            }))
        },
    ));

    println!(
        "\n{:<26} {:>12} {:>12} {:>8}",
        "scenario", "libesp rps", "reqwest rps", "ratio"
    );
    for (name, esp_rps, reqwest_rps) in rows {
        println!(
            "{name:<26} {esp_rps:>12.0} {reqwest_rps:>12.0} {:>7.2}x",
            esp_rps / reqwest_rps
        );
    }
}

/// Run both sides (a short warm-up first), each timed over `count` requests.
fn compare(
    name: &'static str,
    count: usize,
    mut esp: impl FnMut(),
    mut reqwest: impl FnMut(),
) -> (&'static str, f64, f64) {
    let rate = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        count as f64 / start.elapsed().as_secs_f64()
    };
    // Warm-up: opens the connections and fills the pools.
    esp();
    reqwest();
    let (esp_rps, reqwest_rps) = (rate(&mut esp), rate(&mut reqwest));
    eprintln!("{name}: libesp {esp_rps:.0} rps, reqwest {reqwest_rps:.0} rps");
    (name, esp_rps, reqwest_rps)
}

fn check(body: &[u8]) {
    assert_eq!(body.len(), REPLY.len());
}

fn reqwest_blocking(client: &reqwest::blocking::Client, url: &str) -> Vec<u8> {
    let response = client
        .post(url)
        .header("authorization", "Bearer sk-bench")
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().unwrap().to_vec()
}

async fn reqwest_async(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let response = client
        .post(url)
        .header("authorization", "Bearer sk-bench")
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// `total` calls of `one` spread over `threads` threads.
fn run_blocking(threads: usize, total: usize, one: impl Fn() + Sync) {
    thread::scope(|scope| {
        for _ in 0..threads {
            let one = &one;
            scope.spawn(move || (0..total / threads).for_each(|_| one()));
        }
    });
}

/// `total` requests over CONCURRENCY tokio tasks.
async fn run_tasks<F, Fut>(total: usize, make: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let make = make.clone();
        tasks.spawn(async move {
            for _ in 0..total / CONCURRENCY {
                make().await;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
}

/// A keep-alive HTTP/1.1 server answering every request with REPLY, a
/// thread per connection. Returns its port.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve_connection(stream));
        }
    });
    port
}

fn serve_connection(stream: TcpStream) {
    stream.set_nodelay(true).ok();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{REPLY}",
        REPLY.len()
    );
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut content_length = 0usize;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() || writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
