//! Streaming at scale, Rust side (bench/run.py scenario streams): N concurrent
//! SSE streams from bench/streams/sse_server.go read by N tokio tasks, through
//! libesp (`Client::stream_async`) or reqwest (`Response::chunk` with a line
//! splitter: what a Rust gateway uses today), measuring events/s reaching user
//! code, CPU per event, RSS per live stream and server-write-to-user delay.
//!
//!     cargo run --release --example sse_streams -- esp|reqwest <url with ?n=&ms=> <streams>

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_core::Stream;
use libesp::{Client, Config, Request};

/// What every task reports into.
#[derive(Default)]
struct Tally {
    events: AtomicUsize,
    live: AtomicI64,
    failed: AtomicUsize,
    delays_us: Mutex<Vec<i64>>,
}

impl Tally {
    /// One event delivered to user code: every 8th one's delay from the server's stamp.
    fn seen(&self, data: &[u8]) {
        let n = self.events.fetch_add(1, Ordering::Relaxed) + 1;
        if n & 7 != 0 {
            return;
        }
        let Some(at) = data.windows(4).position(|w| w == b"\"t\":") else {
            return;
        };
        let digits: Vec<u8> = data[at + 4..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        let Some(sent_ns) = std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        else {
            return;
        };
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        self.delays_us.lock().unwrap().push((now_ns - sent_ns) / 1000);
    }
}

async fn via_esp(client: &Client, path: &str, tally: &Tally) -> libesp::Result<()> {
    let mut stream = client.stream_async(&Request::get(path)).await?;
    tally.live.fetch_add(1, Ordering::Relaxed);
    let result = loop {
        match poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
            Some(Ok(event)) => tally.seen(event.data()),
            Some(Err(error)) => break Err(error),
            None => break Ok(()),
        }
    };
    tally.live.fetch_sub(1, Ordering::Relaxed);
    result
}

async fn via_reqwest(client: &reqwest::Client, url: &str, tally: &Tally) -> reqwest::Result<()> {
    let mut response = client.get(url).send().await?.error_for_status()?;
    tally.live.fetch_add(1, Ordering::Relaxed);
    let mut pending: Vec<u8> = Vec::new();
    let result = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                pending.extend_from_slice(&chunk);
                let mut start = 0;
                while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
                    let line = &pending[start..start + end];
                    if let Some(data) = line.strip_prefix(b"data: ") {
                        tally.seen(data);
                    }
                    start += end + 1;
                }
                pending.drain(..start);
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    tally.live.fetch_sub(1, Ordering::Relaxed);
    result
}

fn rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(-1)
}

/// User + system time of every thread of this process.
fn cpu_seconds() -> f64 {
    // SAFETY: clock_gettime fills the timespec it is given.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn percentile_ms(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return -1.0;
    }
    sorted[((p * sorted.len() as f64) as usize).min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, url, n) = match args.as_slice() {
        [mode, url, n] if mode == "esp" || mode == "reqwest" => {
            (mode.clone(), url.clone(), n.parse::<usize>().expect("streams"))
        }
        _ => {
            eprintln!("usage: sse_streams esp|reqwest <url> <streams>");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let (origin, path) = {
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        let slash = url[after_scheme..]
            .find('/')
            .map_or(url.len(), |i| after_scheme + i);
        (url[..slash].to_string(), url[slash..].to_string())
    };
    let esp = Arc::new(
        Client::get(
            &Config::default()
                .provider("generic")
                .base_url(origin)
                .max_connections(n as u32)
                .timeout_ms(600_000),
        )
        .unwrap(),
    );
    let peer = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()
        .unwrap();

    let (rss0, cpu0, t0) = (rss_kb(), cpu_seconds(), Instant::now());
    let (peak_live, rss_live) = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (tally, esp, peer, mode, url, path) = (
                Arc::clone(&tally),
                Arc::clone(&esp),
                peer.clone(),
                mode.clone(),
                url.clone(),
                path.clone(),
            );
            tasks.spawn(async move {
                let failure = if mode == "esp" {
                    via_esp(&esp, &path, &tally).await.err().map(|e| e.to_string())
                } else {
                    via_reqwest(&peer, &url, &tally)
                        .await
                        .err()
                        .map(|e| e.to_string())
                };
                if let Some(failure) = failure {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("stream failed: {failure}");
                }
            });
        }
        // RSS at the most streams open at once (on a saturated machine the
        // first streams may end before the last ones start).
        let (mut peak_live, mut rss_live) = (0, rss0);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                joined = tasks.join_next() => if joined.is_none() { break },
                _ = tick.tick() => {
                    let live = tally.live.load(Ordering::Relaxed);
                    if live > peak_live {
                        (peak_live, rss_live) = (live, rss_kb());
                    }
                }
            }
        }
        (peak_live, rss_live)
    });
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let events = tally.events.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let mut delays = tally.delays_us.lock().unwrap().clone();
    delays.sort_unstable();
    println!(
        "RESULT {}",
        serde_json::json!({
            "mode": mode, "streams": n, "events": events, "failed": failed, "secs": secs,
            "events_per_s": events as f64 / secs,
            "cpu_us_per_event": cpu * 1e6 / events.max(1) as f64,
            "peak_live": peak_live,
            "rss_per_stream_kb": if peak_live > 0 { (rss_live - rss0) as f64 / peak_live as f64 } else { -1.0 },
            "delay_p50_ms": percentile_ms(&delays, 0.5), "delay_p99_ms": percentile_ms(&delays, 0.99),
        })
    );
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
