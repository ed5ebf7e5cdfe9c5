//! `kill -9` in the middle of HTTP writes, on both engines: no acknowledged record is lost.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::hardening::{call_json, heavy};
use crate::helpers::{Server, get, pier, run};

const WRITERS: usize = 8;

#[test]
fn kill_9_during_http_writes_loses_no_acknowledged_record_on_sqlite() {
    kill_9_during_writes(None);
}

#[test]
fn kill_9_during_http_writes_loses_no_acknowledged_record_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(pier_pgtest::database());
    kill_9_during_writes(Some((&rt, db)));
}

fn kill_9_during_writes(pg: Option<(&tokio::runtime::Runtime, pier_pgtest::TestDb)>) {
    let _turn = heavy();
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = pg.as_ref().map(|(_, db)| db.env()).unwrap_or_default();
    let command = |args: &[&str]| {
        let mut cmd = pier(dir.path());
        cmd.args(args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd
    };
    let out = run(&mut command(&[
        "superuser",
        "upsert",
        "admin@example.com",
        "AdminPass123!",
        "--dir",
        "data",
    ]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let serve = ["serve", "--http", "127.0.0.1:0", "--dir", "data"];
    let mut s = Server::start(command(&serve));
    let base = s.base_url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let (st, b) = call_json(
            &client,
            "POST",
            &format!("{base}/api/collections/_superusers/auth-with-password"),
            Some(&json!({"identity": "admin@example.com", "password": "AdminPass123!"})),
            None,
        )
        .await;
        assert_eq!(st, 200, "{b}");
        let su = b["token"].as_str().unwrap().to_owned();
        let (st, b) = call_json(
            &client,
            "POST",
            &format!("{base}/api/collections"),
            Some(
                &json!({"name": "writes", "createRule": "", "listRule": "", "viewRule": "",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "n", "type": "number"},
                    {"name": "writer", "type": "number"},
                    {"name": "meta", "type": "json"}
                ]}),
            ),
            Some(&su),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    });

    // Writers: each sends one create at a time and keeps what a 200 acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (stop, url) = (stop.clone(), format!("{base}/api/collections/writes/records"));
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let client = reqwest::Client::new();
                    let mut acked: Vec<(String, Value)> = Vec::new();
                    let mut refused: Vec<(u16, String)> = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let body = json!({
                            "title": format!("writer {w} record {n} ✓"),
                            "n": n,
                            "writer": w,
                            "meta": {"w": w, "n": n, "pad": "x".repeat(usize::try_from(n % 200).unwrap())}
                        });
                        let res = match client.post(&url).json(&body).send().await {
                            Ok(r) => r,
                            Err(_) => break, // The server is gone.
                        };
                        let status = res.status().as_u16();
                        let Ok(text) = res.text().await else { break };
                        if status == 200 {
                            let v: Value = serde_json::from_str(&text).unwrap();
                            let id = v["id"].as_str().unwrap().to_owned();
                            for k in ["title", "n", "writer", "meta"] {
                                assert_eq!(v[k], body[k], "the acknowledgement echoes {k}");
                            }
                            acked.push((id, body));
                        } else {
                            refused.push((status, text));
                        }
                    }
                    (acked, refused)
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let code = s.signal_and_wait("KILL");
    assert_eq!(code, None, "pier died of the signal");
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<(String, Value)> = Vec::new();
    let mut refused = Vec::new();
    for w in writers {
        let (a, r) = w.join().unwrap();
        acked.extend(a);
        refused.extend(r);
    }
    drop(s);
    assert!(
        refused.is_empty(),
        "writes refused before the kill: {:?}",
        &refused[..refused.len().min(5)]
    );
    assert!(
        acked.len() >= 50,
        "the load ran: {} acknowledged",
        acked.len()
    );
    let engine = if pg.is_some() { "postgres" } else { "sqlite" };
    println!(
        "{engine}: {} writes acknowledged before kill -9",
        acked.len()
    );

    // The database as the crash left it.
    let rows_on_disk = match &pg {
        None => sqlite_after_crash(&dir.path().join("data")),
        Some((prt, db)) => prt.block_on(async {
            let c = pier_pgtest::connect(db).await.unwrap();
            let n: i64 = c
                .query_one("SELECT count(*) FROM writes", &[])
                .await
                .unwrap()
                .get(0);
            n
        }),
    };
    let acked_n = i64::try_from(acked.len()).unwrap();
    let in_flight = i64::try_from(WRITERS).unwrap();
    assert!(
        (acked_n..=acked_n + in_flight).contains(&rows_on_disk),
        "{rows_on_disk} rows stored for {acked_n} acknowledged writes"
    );

    // Restarted on the same folder (and database), pier serves every acknowledged record.
    let mut s = Server::start(command(&serve));
    let base = s.base_url.clone();
    let (st, b) = get(&format!("{base}/readyz"));
    assert_eq!(st, 200, "{b}");
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut stored: HashMap<String, Value> = HashMap::new();
        let mut total = None;
        for page in 1.. {
            let (st, l) = call_json(
                &client,
                "GET",
                &format!(
                    "{base}/api/collections/writes/records?perPage=1000&page={page}&sort=@rowid"
                ),
                None,
                None,
            )
            .await;
            assert_eq!(st, 200, "{l}");
            total.get_or_insert(l["totalItems"].as_i64().unwrap());
            let items = l["items"].as_array().unwrap();
            if items.is_empty() {
                break;
            }
            for r in items {
                stored.insert(r["id"].as_str().unwrap().to_owned(), r.clone());
            }
        }
        let total = total.unwrap();
        assert_eq!(
            total, rows_on_disk,
            "the list counts what the database holds"
        );
        assert_eq!(i64::try_from(stored.len()).unwrap(), total);
        for (id, sent) in &acked {
            let r = stored
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged record {id} was lost"));
            for k in ["title", "n", "writer", "meta"] {
                assert_eq!(r[k], sent[k], "record {id}: {k}");
            }
        }
        // The newest acknowledged write of each writer, read on its own.
        let mut last: HashMap<i64, &(String, Value)> = HashMap::new();
        for a in &acked {
            last.insert(a.1["writer"].as_i64().unwrap(), a);
        }
        for (id, sent) in last.values() {
            let (st, r) = call_json(
                &client,
                "GET",
                &format!("{base}/api/collections/writes/records/{id}"),
                None,
                None,
            )
            .await;
            assert_eq!(st, 200, "{r}");
            assert_eq!(r["meta"], sent["meta"]);
        }
        // And pier still takes writes.
        let (st, b) = call_json(
            &client,
            "POST",
            &format!("{base}/api/collections/writes/records"),
            Some(&json!({"title": "after the crash"})),
            None,
        )
        .await;
        assert_eq!(st, 200, "{b}");
    });
    assert_eq!(s.signal_and_wait("TERM"), Some(0));
    if pg.is_none() {
        // After a clean stop the file alone is the database; it is sound.
        let info = pier_storage::check_sqlite(&dir.path().join("data/data.db"))
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{info:?}");
    }
}

/// Opens the SQLite database the crash left behind (recovering its WAL, as pier would), checks
/// it with `PRAGMA integrity_check`, and counts the `writes` rows.
fn sqlite_after_crash(data_dir: &Path) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = pier_config::Config::from_flags(
            pier_config::Role::Tool,
            vec![pier_config::Flag {
                key: "paths.data_dir",
                value: data_dir.display().to_string(),
                name: "test",
            }],
        )
        .unwrap();
        let store = pier_storage::Store::open(&cfg.database).await.unwrap();
        let check = store.query("PRAGMA integrity_check", vec![]).await.unwrap();
        let lines: Vec<String> = check
            .iter()
            .map(|r| r[0].as_str().unwrap_or("?").to_owned())
            .collect();
        assert_eq!(lines, ["ok"], "integrity_check after kill -9");
        let n = store
            .query("SELECT count(*) FROM writes", vec![])
            .await
            .unwrap()
            .scalar()
            .and_then(pier_storage::Value::as_i64)
            .unwrap();
        store.close().await;
        n
    })
}

// JWT pieces: base64url without padding, and HMAC-SHA256 (the crates pier's tokens use).
