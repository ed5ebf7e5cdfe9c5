//! The record-events benchmark's two programs (`bench/run events` drives them):
//!
//! - `events_bench serve N [--http ADDR] [--dir FOLDER]`: `pier serve`, configured as usual
//!   (environment, `pier.toml`, and those two of its flags), with
//!   N in-process subscribers that receive every event (and read its record, as a realtime
//!   connection would), to measure what publishing costs the writers. At the end it prints how
//!   many events they received and how often they lagged.
//! - `events_bench probe URL COUNT`: another backend on the configured (PostgreSQL) database:
//!   it creates COUNT records, one at a time, through the pier at URL, and times each from the
//!   write's acknowledgement (and from its request) to its event arriving here through the
//!   outbox. It prints the medians and 99th percentiles as JSON.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pier_config::{Config, Env, LoadOptions, Role};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", n, flags @ ..] => serve(n.parse().context("subscribers: a number")?, flags).await,
        ["probe", url, count] => probe(url, count.parse().context("count: a number")?).await,
        _ => bail!(
            "usage: events_bench serve SUBSCRIBERS [--http ADDR] [--dir FOLDER] | events_bench probe URL COUNT"
        ),
    }
}

fn config(role: Role, flags: &[&str]) -> anyhow::Result<Config> {
    let mut set = Vec::new();
    for pair in flags.chunks(2) {
        let (key, name) = match pair {
            ["--http", _] => ("http.addr", "--http"),
            ["--dir", _] => ("paths.data_dir", "--dir"),
            _ => bail!("unknown flags {pair:?}: only --http ADDR and --dir FOLDER"),
        };
        set.push(pier_config::Flag {
            key,
            value: pair[1].to_owned(),
            name,
        });
    }
    let options = LoadOptions {
        role,
        config_file: None,
        flags: set,
    };
    Ok(Config::load(options, &Env::from_process())?)
}

async fn serve(subscribers: usize, flags: &[&str]) -> anyhow::Result<()> {
    let config = config(Role::Serve, flags)?;
    config.prepare_folders()?;
    let app = pier_server::Application::build(config).await?;
    let engine = app.engine().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let received = Arc::new(AtomicU64::new(0));
    let lagged = Arc::new(AtomicU64::new(0));
    for _ in 0..subscribers {
        let mut sub = engine.events().subscribe();
        let (received, lagged) = (received.clone(), lagged.clone());
        tokio::spawn(async move {
            while let Some(next) = sub.recv().await {
                match next {
                    Ok(e) => {
                        std::hint::black_box(e.record().len());
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        lagged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    println!(
        "listening on http://{} with {subscribers} subscribers",
        app.addr()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    app.run_until_stopped(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
    .await?;
    println!(
        "{{\"subscribers\": {subscribers}, \"received\": {}, \"lagged\": {}}}",
        received.load(Ordering::Relaxed),
        lagged.load(Ordering::Relaxed)
    );
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn probe(url: &str, count: usize) -> anyhow::Result<()> {
    let config = config(Role::Tool, &[])?;
    let store = pier_storage::Store::open(&config.database).await?;
    let engine = pier_records::Engine::open(store, config.events.clone()).await?;
    let mut sub = engine.events().subscribe();
    let client = reqwest::Client::new();
    let target = format!(
        "{}/api/collections/posts/records",
        url.trim_end_matches('/')
    );
    let (mut after_ack, mut after_send) = (Vec::new(), Vec::new());
    for i in 0..count {
        let sent = Instant::now();
        let res = client
            .post(&target)
            .json(&serde_json::json!({"title": format!("probe {i}")}))
            .send()
            .await?;
        let acked = Instant::now();
        if !res.status().is_success() {
            bail!("create answered {}", res.status());
        }
        let body: serde_json::Value = res.json().await?;
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), sub.recv())
                .await
                .context("no event within 10 s")?;
            match next {
                Some(Ok(e)) if e.record().get("id").and_then(|v| v.as_str()) == Some(&id) => break,
                Some(Ok(_)) => {}
                Some(Err(lag)) => bail!("the probe lagged: {lag}"),
                None => bail!("the event hub stopped"),
            }
        }
        let arrived = Instant::now();
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        after_ack.push(micros(arrived.saturating_duration_since(acked)));
        after_send.push(micros(arrived - sent));
    }
    after_ack.sort_unstable();
    after_send.sort_unstable();
    println!(
        "{{\"count\": {count}, \"after_ack_p50_us\": {}, \"after_ack_p99_us\": {}, \"after_send_p50_us\": {}, \"after_send_p99_us\": {}}}",
        percentile(&after_ack, 0.5),
        percentile(&after_ack, 0.99),
        percentile(&after_send, 0.5),
        percentile(&after_send, 0.99)
    );
    Ok(())
}
