//! An acknowledged write survives the process being killed, in every durability mode.
//!
//! The parent test re-runs this test binary as a child that writes as fast as it can and prints
//! the id of every write once `Store::write` has returned; the parent SIGKILLs it mid-stream and
//! then checks that every printed id is in the database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use pier_config::{DatabaseConfig, Durability, SqliteConfig};
use pier_storage::{Store, Value};

const CHILD_DB: &str = "PIER_TEST_WRITER_CHILD_DB";
const CHILD_MODE: &str = "PIER_TEST_WRITER_CHILD_MODE";

fn config(path: std::path::PathBuf, durability: Durability) -> DatabaseConfig {
    DatabaseConfig::Sqlite(SqliteConfig {
        path,
        durability,
        read_connections: 1,
        busy_timeout: Duration::from_secs(5),
        wal_max_bytes: 4 * 1024 * 1024,
        max_batch: 64,
    })
}

/// The child: run only by the parent below, through `--ignored --exact`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by acknowledged_writes_survive_kill_9"]
async fn writer_child() {
    let path = std::env::var(CHILD_DB).expect("child needs its database path");
    let mode = match std::env::var(CHILD_MODE).as_deref() {
        Ok("normal") => Durability::Normal,
        _ => Durability::Full,
    };
    let store = Store::open(&config(path.into(), mode)).await.unwrap();
    store
        .execute(
            "CREATE TABLE IF NOT EXISTS acked (id INTEGER PRIMARY KEY, body TEXT)",
            vec![],
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50_000i64 {
                let id = w * 1_000_000 + i;
                s.execute(
                    "INSERT INTO acked (id, body) VALUES ($1, $2)",
                    vec![Value::Integer(id), Value::Text("x".repeat(200))],
                )
                .await
                .unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {id}").unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn kill_mid_stream(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "durability::writer_child",
            "--nocapture",
        ])
        .env(CHILD_DB, &db)
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(id) = line.strip_prefix("ack ") {
            acked.push(id.parse::<i64>().unwrap());
            if acked.len() == 2000 {
                child.kill().unwrap();
            }
        }
    }
    child.wait().unwrap();
    assert!(
        acked.len() >= 2000,
        "the child acknowledged only {} writes",
        acked.len()
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let present: std::collections::HashSet<i64> = rt.block_on(async {
        let store = Store::open(&config(db, Durability::Full)).await.unwrap();
        let rows = store.query("SELECT id FROM acked", vec![]).await.unwrap();
        let ids = rows.iter().filter_map(|r| r[0].as_i64()).collect();
        store.close().await;
        ids
    });
    let lost: Vec<_> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost after kill -9 ({mode}): {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

#[test]
fn acknowledged_writes_survive_kill_9_with_full_durability() {
    kill_mid_stream("full");
}

#[test]
fn acknowledged_writes_survive_kill_9_with_normal_durability() {
    kill_mid_stream("normal");
}
