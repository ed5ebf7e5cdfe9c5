//! `bench_realtime MODE PORT CLIENTS [ARGS]`: the realtime bench's load client, the same for
//! pier and PocketBase (both speak PocketBase's SSE protocol). Each subscriber is one raw TCP
//! connection read by a small task (chunked framing decoded here), so that thousands cost the
//! client little; subscribe requests and writes go through one HTTP client. Prints one JSON
//! line with what it measured.
//!
//! Modes (`COLLECTION` has a number field `t`, and a list rule for the fan-out):
//! - `idle PORT N COLLECTION`: N subscribers of `COLLECTION/*`; prints `{"ready":N}`, then
//!   holds them until stdin closes, and prints `{"alive":…}` (how many streams were still open).
//! - `fanout PORT N COLLECTION ROUNDS`: N subscribers; ROUNDS times, one record is updated and
//!   the time from the request to the last subscriber's event is measured (each event is
//!   stamped with its send time in `t`): `{"p50_ms":…,"p99_ms":…,"last_ms":[…]}`.
//! - `sustained PORT N COLLECTION RATE SECONDS [TOKEN]`: N subscribers (signed in with TOKEN,
//!   when given), records created at RATE per second for SECONDS; every delivery's latency:
//!   `{"deliveries":…,"per_second":…,"p50_ms":…,"p99_ms":…,"missing":…}`. With `STALLED=K` in
//!   the environment, K more subscribers (4 KiB receive buffers) never read a byte.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

fn now_us() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as f64
}

/// Decodes `Transfer-Encoding: chunked` and splits SSE messages.
struct Reader {
    stream: TcpStream,
    raw: Vec<u8>,
    body: Vec<u8>,
    head_done: bool,
}

impl Reader {
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 2048];
        match self.stream.read(&mut buf).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.decode();
                true
            }
        }
    }

    fn decode(&mut self) {
        if !self.head_done {
            let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            self.raw.drain(..end + 4);
            self.head_done = true;
        }
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = std::str::from_utf8(&self.raw[..eol])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .unwrap_or(0);
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    /// The next message's `data:` line.
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let msg: Vec<u8> = self.body.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&msg);
                if let Some(d) = text.lines().find_map(|l| l.strip_prefix("data:")) {
                    return Some(d.to_owned());
                }
                continue;
            }
            if !self.fill().await {
                return None;
            }
        }
    }
}

/// Opens a stream and subscribes it to `topic`: the reader, positioned after PB_CONNECT.
async fn subscriber(port: u16, http: &reqwest::Client, topic: &str, token: Option<&str>) -> Reader {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    subscribe_on(stream, port, http, topic, token).await
}

/// A subscriber that will never read after subscribing, with a small receive buffer so that
/// the server's side fills soon.
async fn stalled(port: u16, http: &reqwest::Client, topic: &str) -> Reader {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    subscribe_on(stream, port, http, topic, None).await
}

async fn subscribe_on(
    mut stream: TcpStream,
    port: u16,
    http: &reqwest::Client,
    topic: &str,
    token: Option<&str>,
) -> Reader {
    stream
        .write_all(
            b"GET /api/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let mut r = Reader {
        stream,
        raw: Vec::new(),
        body: Vec::new(),
        head_done: false,
    };
    let hello: Value = serde_json::from_str(&r.next().await.unwrap()).unwrap();
    let id = hello["clientId"].as_str().unwrap().to_owned();
    let mut req = http
        .post(format!("http://127.0.0.1:{port}/api/realtime"))
        .json(&json!({"clientId": id, "subscriptions": [topic]}));
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let res = req.send().await.unwrap();
    assert_eq!(
        res.status(),
        204,
        "subscribe: {}",
        res.text().await.unwrap_or_default()
    );
    r
}

async fn subscribers(port: u16, n: usize, topic: &str, token: Option<&str>) -> Vec<Reader> {
    let http = reqwest::Client::new();
    let mut out = Vec::with_capacity(n);
    // A few at a time, as many clients connecting would.
    let mut pending = Vec::new();
    for _ in 0..n {
        let (http, topic, token) = (http.clone(), topic.to_owned(), token.map(str::to_owned));
        pending.push(tokio::spawn(async move {
            subscriber(port, &http, &topic, token.as_deref()).await
        }));
        if pending.len() == 64 {
            for p in pending.drain(..) {
                out.push(p.await.unwrap());
            }
        }
    }
    for p in pending {
        out.push(p.await.unwrap());
    }
    out
}

/// Latency of one delivery: now minus the `t` the record carries, in ms (read without parsing
/// the whole message, so that the client stays cheap at 100,000 messages a second).
fn latency_ms(data: &str) -> Option<f64> {
    let at = data.find("\"t\":")? + 4;
    let rest = &data[at..];
    let end = rest
        .find(|c: char| {
            !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
        })
        .unwrap_or(rest.len());
    Some((now_us() - rest[..end].parse::<f64>().ok()?) / 1000.0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Every reader's deliveries' latencies, through a channel.
fn drain(readers: Vec<Reader>) -> mpsc::UnboundedReceiver<f64> {
    let (tx, rx) = mpsc::unbounded_channel();
    for mut r in readers {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(d) = r.next().await {
                if let Some(l) = latency_ms(&d) {
                    let _ = tx.send(l);
                }
            }
        });
    }
    rx
}

async fn write(http: &reqwest::Client, port: u16, coll: &str, id: Option<&str>) {
    let body = json!({"t": now_us(), "public": true});
    let req = match id {
        Some(id) => http.patch(format!(
            "http://127.0.0.1:{port}/api/collections/{coll}/records/{id}"
        )),
        None => http.post(format!(
            "http://127.0.0.1:{port}/api/collections/{coll}/records"
        )),
    };
    let res = req.json(&body).send().await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "write: {}",
        res.text().await.unwrap_or_default()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, port, n, coll) = (
        args[1].as_str(),
        args[2].parse::<u16>().unwrap(),
        args[3].parse::<usize>().unwrap(),
        args[4].clone(),
    );
    let topic = format!("{coll}/*");
    let http = reqwest::Client::new();
    match mode {
        "idle" => {
            let readers = subscribers(port, n, &topic, None).await;
            println!("{}", json!({"ready": readers.len()}));
            let alive = Arc::new(AtomicUsize::new(readers.len()));
            for mut r in readers {
                let alive = alive.clone();
                tokio::spawn(async move {
                    while r.next().await.is_some() {}
                    alive.fetch_sub(1, Ordering::Relaxed);
                });
            }
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)
            })
            .await;
            println!("{}", json!({"alive": alive.load(Ordering::Relaxed)}));
        }
        "fanout" => {
            let rounds: usize = args[5].parse().unwrap();
            let readers = subscribers(port, n, &topic, None).await;
            let mut rx = drain(readers);
            let res: Value = http
                .post(format!(
                    "http://127.0.0.1:{port}/api/collections/{coll}/records"
                ))
                .json(&json!({"t": now_us(), "public": false}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = res["id"].as_str().unwrap().to_owned();
            let mut last = Vec::new();
            for _ in 0..rounds {
                write(&http, port, &coll, Some(&id)).await;
                let mut worst: f64 = 0.0;
                for _ in 0..n {
                    match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                        Ok(Some(l)) => worst = worst.max(l),
                        _ => break,
                    }
                }
                last.push(worst);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let mut sorted = last.clone();
            println!(
                "{}",
                json!({"p50_ms": percentile(&mut sorted, 0.5), "p99_ms": percentile(&mut sorted, 0.99), "last_ms": last})
            );
        }
        "sustained" => {
            let rate: f64 = args[5].parse().unwrap();
            let seconds: f64 = args[6].parse().unwrap();
            let token = args.get(7).map(String::as_str);
            let readers = subscribers(port, n, &topic, token).await;
            // STALLED=K: K more subscribers that never read (held, not drained).
            let stalled_count: usize = std::env::var("STALLED")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut held = Vec::new();
            for _ in 0..stalled_count {
                held.push(stalled(port, &reqwest::Client::new(), &topic).await);
            }
            let mut rx = drain(readers);
            let writes = (rate * seconds) as usize;
            let start = tokio::time::Instant::now();
            let writer = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                let mut tasks = Vec::new();
                for _ in 0..writes {
                    tick.tick().await;
                    let (http, coll) = (http.clone(), coll.clone());
                    tasks.push(tokio::spawn(async move {
                        write(&http, port, &coll, None).await
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
            let expected = writes * n;
            let mut lat = Vec::with_capacity(expected);
            let mut last_at = start;
            while lat.len() < expected {
                match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                    Ok(Some(l)) => {
                        lat.push(l);
                        last_at = tokio::time::Instant::now();
                    }
                    _ => break,
                }
            }
            let elapsed = (last_at - start).as_secs_f64();
            writer.await.unwrap();
            let got = lat.len();
            drop(held);
            println!(
                "{}",
                json!({"deliveries": got, "per_second": got as f64 / elapsed, "p50_ms": percentile(&mut lat, 0.5),
                       "p99_ms": percentile(&mut lat, 0.99), "missing": expected - got, "seconds": elapsed})
            );
        }
        other => panic!("unknown mode {other}"),
    }
}
