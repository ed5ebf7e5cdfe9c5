//! The built binary as a running server: start-up, logs, locks, signals and an unreachable
//! database.

use std::time::Duration;

use crate::helpers::{Server, gateway, get, pier, run, send};

#[test]
fn serve_on_port_zero_reports_the_address_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir", "data"]);
    let mut s = Server::start(cmd);
    assert!(
        s.base_url.starts_with("http://127.0.0.1:"),
        "{}",
        s.base_url
    );
    assert!(!s.base_url.ends_with(":0"));
    let (status, body) = get(&format!("{}/readyz", s.base_url));
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&format!("{}/api/health", s.base_url));
    assert_eq!(status, 200);
    assert_eq!(s.signal_and_wait("TERM"), Some(0));
    s.wait_for("stopped", Duration::from_secs(5));
    // A clean stop checkpoints SQLite: no WAL is left behind.
    let wal = dir.path().join("data/data.db-wal");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
}

#[test]
fn sigint_stops_the_server_with_exit_code_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir", "data"]);
    let mut s = Server::start(cmd);
    assert_eq!(s.signal_and_wait("INT"), Some(0));
}

#[test]
fn production_logs_are_json_lines_with_one_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir", "data"])
        .env("APP_ENV", "production");
    let mut s = Server::start(cmd);
    let (status, _) = get(&format!("{}/api/health", s.base_url));
    assert_eq!(status, 200);
    let line = s.wait_for("\"/api/health\"", Duration::from_secs(5));
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["route"], "/api/health");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 50);
    assert!(v["request_id"].as_str().is_some_and(|s| s.len() == 24));
    assert!(v["duration_us"].is_u64());
    assert_eq!(s.signal_and_wait("TERM"), Some(0));
    for line in &s.seen {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    // Production also writes daily files into the logs folder.
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("data/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(text.contains("\"route\":\"/api/health\""), "{text}");
}

#[test]
fn a_second_pier_on_the_same_data_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir", "data"]);
    let _first = Server::start(cmd);
    let out = run(pier(dir.path()).args(["serve", "--http", "127.0.0.1:0", "--dir", "data"]));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("in use by another pier process (pid"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_database_from_a_newer_pier_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let up = run(pier(dir.path()).args(["migrate", "--dir", "d"]));
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = pier_config::Config::from_flags(
            pier_config::Role::Tool,
            vec![pier_config::Flag {
                key: "paths.data_dir",
                value: dir.path().join("d").display().to_string(),
                name: "test",
            }],
        )
        .unwrap();
        let store = pier_storage::Store::open(&cfg.database).await.unwrap();
        store
            .execute(
                "INSERT INTO _migrations (version, name, applied_at) VALUES (9999, 'future', 0)",
                vec![],
            )
            .await
            .unwrap();
        store.close().await;
    });
    let out = run(pier(dir.path()).args(["serve", "--http", "127.0.0.1:0", "--dir", "d"]));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("schema version 9999 is newer"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unreachable_postgres_keeps_readyz_at_503_and_is_retried() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pier(dir.path());
    cmd.args(["backend", "--http", "127.0.0.1:0", "--dir", "data"])
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", port.to_string())
        .env("DB_PASSWORD", "pw-never-logged");
    let mut s = Server::start(cmd);
    let (status, body) = get(&format!("{}/readyz", s.base_url));
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["checks"]["database"]
            .as_str()
            .unwrap()
            .starts_with("unreachable"),
        "{body}"
    );
    assert_eq!(v["checks"]["migrations"], "pending");
    let (status, _) = get(&format!("{}/livez", s.base_url));
    assert_eq!(status, 200);
    s.wait_for("database unavailable; retrying", Duration::from_secs(10));
    assert_eq!(s.signal_and_wait("TERM"), Some(0));
    assert!(!s.seen.iter().any(|l| l.contains("pw-never-logged")));
}

#[test]
fn two_backends_share_one_postgres_database() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(pier_pgtest::database());
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let mut cmd = pier(dir.path());
        cmd.args(["backend", "--http", "127.0.0.1:0", "--dir", name]);
        for (k, v) in db.env() {
            cmd.env(k, v);
        }
        Server::start(cmd)
    };
    let mut a = start("a");
    let mut b = start("b");
    for s in [&a, &b] {
        let (status, body) = get(&format!("{}/readyz", s.base_url));
        assert_eq!(status, 200, "{body}");
    }
    // Both ran the migrations; each was applied exactly once.
    let rows = rt.block_on(async {
        let c = pier_pgtest::connect(&db).await.unwrap();
        c.query("SELECT version FROM _migrations", &[])
            .await
            .unwrap()
            .len()
    });
    assert_eq!(rows, pier_server::MIGRATIONS.len());
    assert_eq!(a.signal_and_wait("TERM"), Some(0));
    assert_eq!(b.signal_and_wait("TERM"), Some(0));
}

#[test]
fn records_written_through_one_backend_are_read_through_another() {
    let rt = tokio::runtime::Runtime::new().unwrap();
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
    let start = |name: &str| {
        let mut cmd = pier(dir.path());
        cmd.args(["backend", "--http", "127.0.0.1:0", "--dir", name]);
        with_db(&mut cmd);
        Server::start(cmd)
    };
    let mut a = start("a");
    let mut b = start("b");
    rt.block_on(async {
        let client = reqwest::Client::new();
        let auth: serde_json::Value = client
            .post(format!("{}/api/collections/_superusers/auth-with-password", a.base_url))
            .json(&serde_json::json!({"identity": "admin@example.com", "password": "AdminPass123!"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = auth["token"].as_str().unwrap().to_owned();
        let res = client
            .post(format!("{}/api/collections", a.base_url))
            .header("authorization", &token)
            .json(&serde_json::json!({"name": "shared", "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{"name": "title", "type": "text"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let created: serde_json::Value = client
            .post(format!("{}/api/collections/shared/records", a.base_url))
            .json(&serde_json::json!({"title": "from a"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap();
        // Backend b never saw the collection being made; it finds it and the record.
        let seen: serde_json::Value = client
            .get(format!("{}/api/collections/shared/records/{id}", b.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen["title"], "from a");
        // A rule changed through a is honoured by b as soon as the change's event reaches it
        // through the outbox: well before the 2-second limit of b's collection cache, which
        // b has just loaded.
        let res = client
            .patch(format!("{}/api/collections/shared", a.base_url))
            .header("authorization", &token)
            .json(&serde_json::json!({"viewRule": null}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let changed = std::time::Instant::now();
        loop {
            let res = client
                .get(format!("{}/api/collections/shared/records/{id}", b.base_url))
                .send()
                .await
                .unwrap();
            if res.status() == 403 {
                break;
            }
            assert_eq!(res.status(), 200);
            assert!(
                changed.elapsed() < Duration::from_millis(1500),
                "backend b still used the old rule 1.5 s after the change"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(a.signal_and_wait("TERM"), Some(0));
    assert_eq!(b.signal_and_wait("TERM"), Some(0));
}

#[test]
fn pier_gateway_fronts_backends_and_loses_no_request_when_one_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/index.html"), "<p>front</p>").unwrap();
    let backend = |name: &str| {
        let mut cmd = pier(dir.path());
        cmd.args(["backend", "--http", "127.0.0.1:0", "--dir", name]);
        Server::start(cmd)
    };
    let b1 = backend("b1");
    let mut b2 = backend("b2");
    let mut cmd = gateway(dir.path(), &[&b1.base_url, &b2.base_url]);
    cmd.args(["--public-dir", "public"])
        .env("PIER_GATEWAY__HEALTH_INTERVAL_MILLISECONDS", "200");
    let mut gw = Server::start(cmd);
    assert_eq!(
        get(&format!("{}/", gw.base_url)),
        (200, "<p>front</p>".into())
    );
    let (status, body) = get(&format!("{}/api/health", gw.base_url));
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&format!("{}/readyz", gw.base_url)).0, 200);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("{}/api/health", gw.base_url);
    let victim = b2.child.id();
    let statuses = rt.block_on(async move {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (c, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let until = tokio::time::Instant::now() + Duration::from_millis(1500);
                while tokio::time::Instant::now() < until {
                    out.push(c.get(&url).send().await.map(|r| r.status().as_u16()));
                }
                out
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::process::Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .unwrap();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let _ = b2.child.wait();
    assert!(statuses.len() > 100, "load ran: {}", statuses.len());
    let failed: Vec<_> = statuses.iter().filter(|s| !matches!(s, Ok(200))).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        statuses.len(),
        &failed[..failed.len().min(5)]
    );
    let (_, status) = get(&format!("{}/_pier/status", gw.base_url));
    assert!(status.contains("\"available\":1"), "{status}");
    assert_eq!(gw.signal_and_wait("TERM"), Some(0));
    drop(b1);
}

/// Signs a superuser in through `base`: the token.
fn superuser_sign_in(base: &str, email: &str, password: &str) -> String {
    let (st, auth) = send(
        "POST",
        &format!("{base}/api/collections/_superusers/auth-with-password"),
        None,
        Some(serde_json::json!({"identity": email, "password": password})),
    );
    assert_eq!(st, 200, "{auth}");
    auth["token"].as_str().unwrap().to_owned()
}

#[test]
fn first_start_in_development_offers_a_one_time_setup_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir", "data"]);
    let mut s = Server::start(cmd);
    let line = s.wait_for("/_/#/pbinstal/", Duration::from_secs(20));
    let link = line.trim();
    assert!(link.starts_with(&s.base_url), "{link}");
    let token = link.rsplit('/').next().unwrap().to_owned();
    assert!(token.len() >= 32, "{token}");
    let (status, page) = get(&format!("{}/_/", s.base_url));
    assert_eq!(status, 200);
    assert!(page.contains("pbinstal"), "the page handles the link");

    let records = format!("{}/api/collections/_superusers/records", s.base_url);
    let body = |email: &str, password: &str| serde_json::json!({"email": email, "password": password, "passwordConfirm": password});
    // Anything but the token is a guest; the token allows nothing but this one creation.
    let (st, _) = send(
        "POST",
        &records,
        Some("nope"),
        Some(body("a@example.com", "password123")),
    );
    assert_eq!(st, 403);
    let (st, _) = send("GET", &records, Some(&token), None);
    assert_eq!(st, 403, "the token lists nothing");
    let (st, _) = send(
        "POST",
        &format!("{}/api/collections", s.base_url),
        Some(&token),
        Some(serde_json::json!({"name": "x", "type": "base"})),
    );
    assert_eq!(st, 401, "the token creates no collection");
    // A failed creation (bad input) keeps the token for the next try.
    let (st, b) = send(
        "POST",
        &records,
        Some(&token),
        Some(body("a@example.com", "short")),
    );
    assert_eq!(st, 400, "{b}");
    assert_eq!(
        b["data"]["password"]["code"],
        "validation_min_text_constraint"
    );
    let (st, b) = send(
        "POST",
        &records,
        Some(&format!("Bearer {token}")),
        Some(body("first@example.com", "password123")),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["email"], "first@example.com");
    // Spent: a second superuser cannot be made with it.
    let (st, _) = send(
        "POST",
        &records,
        Some(&token),
        Some(body("second@example.com", "password123")),
    );
    assert_eq!(st, 403);
    superuser_sign_in(&s.base_url, "first@example.com", "password123");
    assert_eq!(s.signal_and_wait("TERM"), Some(0));
    assert!(
        !s.seen
            .iter()
            .any(|l| l.contains("pbinstal") && l.contains("INFO")),
        "the link is printed, never logged"
    );

    // Once a superuser exists, no link is offered; nor ever in production.
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir", "data"]);
    let mut again = Server::start(cmd);
    let (st, _) = get(&format!("{}/readyz", again.base_url));
    assert_eq!(st, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(again.signal_and_wait("TERM"), Some(0));
    assert!(
        !again.seen.iter().any(|l| l.contains("pbinstal")),
        "{:?}",
        again.seen
    );
    let fresh = tempfile::tempdir().unwrap();
    let mut cmd = pier(fresh.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir", "data"])
        .env("APP_ENV", "production");
    let mut prod = Server::start(cmd);
    let (st, _) = get(&format!("{}/readyz", prod.base_url));
    assert_eq!(st, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(prod.signal_and_wait("TERM"), Some(0));
    assert!(!prod.seen.iter().any(|l| l.contains("pbinstal")));
}

#[test]
fn on_a_single_cpu_pier_serves_everything() {
    // `taskset -c 0`: one CPU, so one runtime worker does everything.
    let dir = tempfile::tempdir().unwrap();
    let made = run(pier(dir.path()).args([
        "superuser",
        "upsert",
        "one@example.com",
        "password123",
        "--dir",
        "data",
    ]));
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let mut cmd = std::process::Command::new("taskset");
    cmd.current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["-c", "0", env!("CARGO_BIN_EXE_pier")])
        .args(["serve", "--http", "127.0.0.1:0", "--dir", "data"]);
    let mut s = Server::start(cmd);
    let (st, _) = get(&format!("{}/readyz", s.base_url));
    assert_eq!(st, 200);
    // A sign-in hashes a password and a create writes to SQLite: both finish on one thread.
    let token = superuser_sign_in(&s.base_url, "one@example.com", "password123");
    let (st, c) = send(
        "POST",
        &format!("{}/api/collections", s.base_url),
        Some(&token),
        Some(
            serde_json::json!({"name": "notes", "createRule": "", "listRule": "",
            "fields": [{"name": "body", "type": "text"}]}),
        ),
    );
    assert_eq!(st, 200, "{c}");
    for i in 0..20 {
        let (st, r) = send(
            "POST",
            &format!("{}/api/collections/notes/records", s.base_url),
            None,
            Some(serde_json::json!({"body": format!("note {i}")})),
        );
        assert_eq!(st, 200, "{r}");
    }
    let (st, l) = send(
        "GET",
        &format!("{}/api/collections/notes/records", s.base_url),
        None,
        None,
    );
    assert_eq!((st, l["totalItems"].as_i64()), (200, Some(20)), "{l}");
    assert_eq!(s.signal_and_wait("TERM"), Some(0));
}
