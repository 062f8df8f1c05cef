//! libesp vs reqwest on a loopback HTTP/1.1 server: sequential and at
//! concurrency 64, blocking and async (tokio). Prints, per scenario, the
//! median requests per second of each, the median of the per-round ratios
//! libesp / reqwest (above 1: libesp is faster), the client CPU per request
//! and the client's context switches per request (each a thread that waited
//! or was preempted: the thread hops a request costs).
//!
//!     make -C bindings/rust bench            # or: cargo run --release --example bench
//!     BENCH_REQUESTS=50000 BENCH_ROUNDS=7 cargo run --release --example bench
//!     BENCH_ONLY="64 tasks" ...              # only the scenarios whose name contains it
//!     BENCH_SIDE=esp ...                     # one side only (for a profiler), no ratios
//!
//! The server is a minimal keep-alive responder in a child process (this same
//! program, re-executed), so the process CPU time measured here is the
//! clients' alone and both clients pay the same server cost. Rounds are
//! interleaved: each round runs every scenario on both clients, the first
//! of the pair alternating, so a burst of load from elsewhere on the machine
//! hits both sides of a pair alike. The last line is `RESULT <json>` for
//! bench/run.py.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use libesp::{Client, Config, Request};

const CONCURRENCY: usize = 64;
const SERVE_ENV: &str = "LIBESP_BENCH_SERVE";
const BODY: &str = r#"{"model":"gpt-mock","messages":[{"role":"user","content":"hello"}]}"#;
const REPLY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the loopback server."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":6,"total_tokens":7}}"#;

/// One scenario's two contenders; each runs `count` requests when called.
struct Scenario<'a> {
    name: &'static str,
    count: usize,
    esp: Box<dyn FnMut() + 'a>,
    reqwest: Box<dyn FnMut() + 'a>,
}

/// Wall-clock rate, client CPU and context switches of one timed run.
#[derive(Clone, Copy)]
struct Run {
    rps: f64,
    cpu_us_per_req: f64,
    switches_per_req: f64,
}

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        return serve_until_stdin_closes();
    }
    let requests = env_usize("BENCH_REQUESTS", 20_000);
    let rounds = env_usize("BENCH_ROUNDS", 5).max(1);
    let (server, port) = start_server();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    println!(
        "libesp {} | {requests} requests per run ({} sequential), concurrency {CONCURRENCY}, {rounds} interleaved rounds",
        libesp::version_string(),
        requests / 4
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

    let mut scenarios = vec![
        Scenario {
            name: "blocking, sequential",
            count: sequential,
            esp: Box::new(|| {
                run_blocking(1, sequential, || {
                    check(esp.request(&esp_request).unwrap().body())
                })
            }),
            reqwest: Box::new(|| {
                run_blocking(1, sequential, || check(&reqwest_blocking(&blocking, &url)))
            }),
        },
        Scenario {
            name: "blocking, 64 threads",
            count: requests,
            esp: Box::new(|| {
                run_blocking(CONCURRENCY, requests, || {
                    check(esp.request(&esp_request).unwrap().body())
                })
            }),
            reqwest: Box::new(|| {
                run_blocking(CONCURRENCY, requests, || {
                    check(&reqwest_blocking(&blocking, &url))
                })
            }),
        },
        Scenario {
            name: "async tokio, sequential",
            count: sequential,
            esp: Box::new(|| {
                runtime.block_on(async {
                    for _ in 0..sequential {
                        check(esp.send(&esp_request).await.unwrap().body());
                    }
                })
            }),
            reqwest: Box::new(|| {
                runtime.block_on(async {
                    for _ in 0..sequential {
                        check(&reqwest_async(&asynchronous, &url).await);
                    }
                })
            }),
        },
        Scenario {
            name: "async tokio, 64 tasks",
            count: requests,
            esp: Box::new(|| {
                runtime.block_on(run_tasks(requests, {
                    let (esp, esp_request) = (Arc::clone(&esp), esp_request.clone());
                    move || {
                        let (esp, esp_request) = (Arc::clone(&esp), esp_request.clone());
                        async move { check(esp.send(&esp_request).await.unwrap().body()) }
                    }
                }))
            }),
            reqwest: Box::new(|| {
                runtime.block_on(run_tasks(requests, {
                    let (client, url) = (asynchronous.clone(), url.clone());
                    move || {
                        let (client, url) = (client.clone(), url.clone());
                        async move { check(&reqwest_async(&client, &url).await) }
                    }
                }))
            }),
        },
    ];

    if let Ok(only) = std::env::var("BENCH_ONLY") {
        scenarios.retain(|scenario| scenario.name.contains(only.as_str()));
    }
    match std::env::var("BENCH_SIDE").as_deref() {
        Ok("esp") => scenarios.iter_mut().for_each(|s| s.reqwest = Box::new(|| {})),
        Ok("reqwest") => scenarios.iter_mut().for_each(|s| s.esp = Box::new(|| {})),
        _ => {}
    }
    // Warm-up: opens the connections and fills both pools.
    for scenario in &mut scenarios {
        (scenario.esp)();
        (scenario.reqwest)();
    }
    let mut runs: Vec<Vec<(Run, Run)>> = vec![Vec::new(); scenarios.len()];
    for round in 0..rounds {
        for (scenario, runs) in scenarios.iter_mut().zip(&mut runs) {
            let count = scenario.count;
            let pair = if round % 2 == 0 {
                let esp = timed(count, &mut scenario.esp);
                (esp, timed(count, &mut scenario.reqwest))
            } else {
                let reqwest = timed(count, &mut scenario.reqwest);
                (timed(count, &mut scenario.esp), reqwest)
            };
            eprintln!(
                "round {}: {}: libesp {:.0} rps, reqwest {:.0} rps",
                round + 1,
                scenario.name,
                pair.0.rps,
                pair.1.rps
            );
            runs.push(pair);
        }
    }
    drop(server);
    report(&scenarios, &runs);
}

fn report(scenarios: &[Scenario], runs: &[Vec<(Run, Run)>]) {
    println!(
        "\n{:<24} {:>11} {:>12} {:>7}  {:<32} {:>14}  switches/req e/r",
        "scenario",
        "libesp rps",
        "reqwest rps",
        "ratio",
        "ratio per round",
        "CPU us/req e/r"
    );
    let mut rows = Vec::new();
    for (scenario, runs) in scenarios.iter().zip(runs) {
        let ratios: Vec<f64> = runs.iter().map(|(e, r)| e.rps / r.rps).collect();
        let esp_rps = median(runs.iter().map(|(e, _)| e.rps).collect());
        let reqwest_rps = median(runs.iter().map(|(_, r)| r.rps).collect());
        let esp_cpu = median(runs.iter().map(|(e, _)| e.cpu_us_per_req).collect());
        let reqwest_cpu = median(runs.iter().map(|(_, r)| r.cpu_us_per_req).collect());
        let esp_switches = median(runs.iter().map(|(e, _)| e.switches_per_req).collect());
        let reqwest_switches = median(runs.iter().map(|(_, r)| r.switches_per_req).collect());
        let ratio = median(ratios.clone());
        let per_round: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "{:<24} {esp_rps:>11.0} {reqwest_rps:>12.0} {ratio:>6.2}x  {:<32} {:>6.1} / {:<6.1}  {:.2} / {:.2}",
            scenario.name,
            per_round.join(" "),
            esp_cpu,
            reqwest_cpu,
            esp_switches,
            reqwest_switches
        );
        rows.push(serde_json::json!({
            "scenario": scenario.name, "esp_rps": esp_rps, "peer_rps": reqwest_rps,
            "ratio": ratio, "ratios": ratios, "esp_cpu_us": esp_cpu, "peer_cpu_us": reqwest_cpu,
            "esp_switches": esp_switches, "peer_switches": reqwest_switches,
        }));
    }
    println!("RESULT {}", serde_json::json!({"peer": "reqwest", "rows": rows}));
}

fn timed(count: usize, run: &mut dyn FnMut()) -> Run {
    let (start, cpu, switches) = (Instant::now(), process_cpu_seconds(), context_switches());
    run();
    let (secs, cpu, switches) = (
        start.elapsed().as_secs_f64(),
        process_cpu_seconds() - cpu,
        context_switches() - switches,
    );
    Run {
        rps: count as f64 / secs,
        cpu_us_per_req: cpu * 1e6 / count as f64,
        switches_per_req: switches as f64 / count as f64,
    }
}

/// Context switches of every thread of this process, voluntary (a thread
/// waiting) and involuntary (preempted), ended threads included.
fn context_switches() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_nvcsw + usage.ru_nivcsw
}

/// User + system time of every thread of this process (the server is not in it).
fn process_cpu_seconds() -> f64 {
    // SAFETY: clock_gettime fills the timespec it is given.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
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

/// The server child; it exits when its stdin closes (when this is dropped).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Re-executes this program as the server and reads the port it prints.
fn start_server() -> (Server, u16) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SERVE_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server child prints its port");
    (Server(child), port)
}

/// A keep-alive HTTP/1.1 server answering every request with REPLY, a
/// thread per connection; prints its port, exits when stdin closes.
fn serve_until_stdin_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve_connection(stream));
        }
    });
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
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
