//! Stopping a backend without losing a request, with the built binary: on SIGTERM it answers
//! `/readyz` with 503 for `http.drain_seconds` while still serving, tells `pier gateway` on every
//! answer so that traffic moves off it at once, ends realtime streams with a reconnect hint, and
//! exits 0; `pier healthcheck` reports ready and not ready; under systemd (`NOTIFY_SOCKET`) it
//! says `READY=1`, pings the watchdog and says `STOPPING=1`.

use std::time::{Duration, Instant};

use crate::helpers::{Server, gateway, get, pier, run};

fn healthcheck(dir: &std::path::Path, addr: &str) -> Option<i32> {
    let mut cmd = pier(dir);
    cmd.args(["healthcheck", "--http", addr]);
    run(&mut cmd).code
}

#[test]
fn a_draining_backend_fails_readiness_keeps_serving_and_the_gateway_moves_off_it() {
    let dir = tempfile::tempdir().unwrap();
    let backend = |name: &str| {
        let mut cmd = pier(dir.path());
        cmd.args(["backend", "--http", "127.0.0.1:0", "--dir", name])
            .env("PIER_HTTP__DRAIN_SECONDS", "2");
        Server::start(cmd)
    };
    let mut a = backend("a");
    let b = backend("b");
    let (a_addr, b_addr) = (
        a.base_url.trim_start_matches("http://").to_owned(),
        b.base_url.trim_start_matches("http://").to_owned(),
    );
    assert_eq!(healthcheck(dir.path(), &a_addr), Some(0));
    let mut cmd = gateway(dir.path(), &[&a.base_url, &b.base_url]);
    cmd.env("PIER_GATEWAY__HEALTH_INTERVAL_MILLISECONDS", "60000");
    let mut gw = Server::start(cmd);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (a_url, gw_url, a_pid) = (
        a.base_url.clone(),
        gw.base_url.clone(),
        a.child.id().to_string(),
    );
    let (statuses, hinted) = rt.block_on(async move {
        let mut stream = reqwest::get(format!("{a_url}/api/realtime")).await.unwrap();
        let _hello = stream.chunk().await.unwrap();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &a_pid])
            .status();
        // Readiness fails at once, while the API still answers.
        let started = Instant::now();
        loop {
            let r = reqwest::get(format!("{a_url}/readyz")).await.unwrap();
            if r.status() == 503 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "readyz still 200"
            );
        }
        let direct = reqwest::get(format!("{a_url}/api/health")).await.unwrap();
        assert_eq!(direct.status(), 200, "still serving while draining");
        assert_eq!(direct.headers()["x-pier-draining"], "1");
        // Through the gateway (its health checks a minute apart): nothing fails, and after the
        // first answer from the draining backend the gateway sends nothing more there.
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let r = client
                .get(format!("{gw_url}/api/health"))
                .send()
                .await
                .unwrap();
            assert!(
                r.headers().get("x-pier-draining").is_none(),
                "the gateway keeps the header to itself"
            );
            statuses.push(r.status().as_u16());
        }
        let mut rest = Vec::new();
        while let Ok(Some(c)) = stream.chunk().await {
            rest.extend_from_slice(&c);
        }
        (statuses, String::from_utf8_lossy(&rest).into_owned())
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        hinted.contains("retry:"),
        "the stream ended with a reconnect hint: {hinted:?}"
    );
    let (_, status) = get(&format!("{}/_pier/status", gw.base_url));
    assert!(status.contains("\"available\":1"), "{status}");
    // Not ready while it drains, then gone.
    assert_eq!(healthcheck(dir.path(), &a_addr), Some(1));
    assert_eq!(healthcheck(dir.path(), &b_addr), Some(0));
    let stopping = Instant::now();
    assert_eq!(a.signal_and_wait("TERM"), Some(0));
    assert!(stopping.elapsed() < Duration::from_secs(10));
    a.wait_for("draining", Duration::from_secs(1));
    assert_eq!(
        healthcheck(dir.path(), &a_addr),
        Some(1),
        "nothing listens any more"
    );
    assert_eq!(gw.signal_and_wait("TERM"), Some(0));
    drop(b);
}

#[test]
fn under_systemd_pier_says_ready_pings_the_watchdog_and_says_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // systemd names the watched process: a shell that becomes pier keeps its pid.
    let mut cmd = std::process::Command::new("sh");
    cmd.current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args([
            "-c",
            "WATCHDOG_PID=$$ exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_pier"),
        ])
        .args(["serve", "--http", "127.0.0.1:0", "--dir", "data"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000");
    let mut s = Server::start(cmd);
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
    };
    assert_eq!(next(), "READY=1");
    assert_eq!(next(), "WATCHDOG=1");
    assert_eq!(
        next(),
        "WATCHDOG=1",
        "pinged again within the watchdog period"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status();
    let mut seen = Vec::new();
    loop {
        let m = next();
        if m == "STOPPING=1" {
            break;
        }
        assert_eq!(m, "WATCHDOG=1", "{seen:?}");
        seen.push(m);
    }
    assert_eq!(s.signal_and_wait("TERM"), Some(0));
}
