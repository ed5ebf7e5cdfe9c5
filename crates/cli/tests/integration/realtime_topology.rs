//! Realtime in the production topology, with the built binary: two `pier backend` processes on
//! one PostgreSQL database behind `pier gateway`. A subscriber on one backend (and one through
//! the gateway) receives what a writer sends through the other, at once, across a reload of the
//! gateway; a backend stopping with SIGTERM ends its streams so their clients can reconnect, and
//! exits cleanly.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Server, gateway, pier, run, send};
use crate::realtime::Sse;

#[test]
fn events_written_through_one_backend_reach_subscribers_on_every_backend() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(pier_pgtest::database());
    let dir = tempfile::tempdir().unwrap();
    let with_db = |cmd: &mut std::process::Command| {
        for (k, v) in db.env() {
            cmd.env(k, v);
        }
    };
    let mut up = pier(dir.path());
    up.args([
        "superuser",
        "upsert",
        "admin@example.com",
        "AdminPass123!",
        "--dir",
        "su",
    ]);
    with_db(&mut up);
    let out = run(&mut up);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let backend = |name: &str| {
        let mut cmd = pier(dir.path());
        cmd.args(["backend", "--http", "127.0.0.1:0", "--dir", name]);
        with_db(&mut cmd);
        Server::start(cmd)
    };
    let mut a = backend("a");
    let mut b = backend("b");
    let mut gw = Server::start(gateway(dir.path(), &[&a.base_url, &b.base_url]));

    let (st, auth) = send(
        "POST",
        &format!(
            "{}/api/collections/_superusers/auth-with-password",
            b.base_url
        ),
        None,
        Some(json!({"identity": "admin@example.com", "password": "AdminPass123!"})),
    );
    assert_eq!(st, 200, "{auth}");
    let token = auth["token"].as_str().unwrap().to_owned();
    let (st, c) = send(
        "POST",
        &format!("{}/api/collections", b.base_url),
        Some(&token),
        Some(
            json!({"name": "feed", "listRule": "title != 'hidden'", "viewRule": "", "createRule": "",
            "fields": [{"name": "title", "type": "text"}]}),
        ),
    );
    assert_eq!(st, 200, "{c}");

    let (a_url, b_url, gw_url) = (a.base_url.clone(), b.base_url.clone(), gw.base_url.clone());
    let gw_pid = gw.child.id().to_string();
    rt.block_on(async {
        let mut on_a = Sse::open(&a_url, None).await;
        assert_eq!(on_a.subscribe(&a_url, &["feed/*"], None, None).await, 204);
        let mut via_gw = Sse::open(&gw_url, None).await;
        assert_eq!(
            via_gw.subscribe(&gw_url, &["feed/*"], None, None).await,
            204
        );
        let client = reqwest::Client::new();
        for title in ["hidden", "first", "second"] {
            if title == "second" {
                // A reload of the gateway keeps the open stream.
                let _ = std::process::Command::new("kill")
                    .args(["-HUP", &gw_pid])
                    .status();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let started = Instant::now();
            let r = client
                .post(format!("{b_url}/api/collections/feed/records"))
                .json(&json!({"title": title}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            if title == "hidden" {
                continue;
            }
            for sse in [&mut on_a, &mut via_gw] {
                let m = sse.next().await.expect("an event");
                assert_eq!(m.data["record"]["title"], title, "{m:?}");
                assert_eq!(m.data["action"], "create");
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "delivered at once, not buffered: {:?}",
                    started.elapsed()
                );
            }
        }
        // SIGTERM: backend a ends its open stream (the client reconnects elsewhere) and exits 0
        // well before the shutdown deadline.
        let stopping = Instant::now();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &a.child.id().to_string()])
            .status();
        assert!(on_a.next().await.is_none(), "the stream ended");
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "{:?}",
            stopping.elapsed()
        );
    });
    assert_eq!(a.signal_and_wait("TERM"), Some(0));
    gw.wait_for("reloading the gateway", Duration::from_secs(5));
    assert_eq!(gw.signal_and_wait("TERM"), Some(0));
    assert_eq!(b.signal_and_wait("TERM"), Some(0));
}
