use pier_core::ErrorKind;
use pier_storage::{StorageError, Store, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = super::sqlite_config(dir.path());
    let first = Store::open(&cfg).await.unwrap();
    let err = Store::open(&cfg).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Locked { pid: Some(_), .. }),
        "{err}"
    );
    assert!(err.to_string().contains("in use by another pier process"));
    first.close().await;
    drop(first);
    // Once closed and dropped, the file can be opened again, with its data.
    let again = Store::open(&cfg).await.unwrap();
    again.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.db"), vec![b'x'; 8192]).unwrap();
    let err = Store::open(&super::sqlite_config(dir.path()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("failed to open database"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_a_long_insert_load() {
    let (store, _dir) = super::sqlite_store().await;
    store
        .execute(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT)",
            vec![],
        )
        .await
        .unwrap();
    let body = "x".repeat(4000);
    // About 40 MB of inserts against a 4 MiB WAL limit, with readers running alongside.
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let s = store.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..2500i64 {
                s.execute(
                    "INSERT INTO big (id, body) VALUES ($1, $2) RETURNING id",
                    vec![Value::Integer(w * 100_000 + i), body.clone().into()],
                )
                .await
                .unwrap();
                if i % 100 == 0 {
                    s.query("SELECT count(*) FROM big", vec![]).await.unwrap();
                }
            }
        }));
    }
    let mut max_wal = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        max_wal = max_wal.max(store.stats().wal_bytes);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.stats();
    // Group commit shared commits between writers.
    assert!(stats.commits < stats.committed_writes, "{stats:?}");
    assert!(
        max_wal < 16 * 1024 * 1024,
        "WAL grew to {max_wal} bytes against a 4 MiB limit"
    );
    store.close().await;
    // Closing checkpoints and truncates the WAL.
    let wal = _dir.path().join("data.db-wal");
    assert!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_that_is_down_is_unavailable_not_a_panic() {
    // Nothing listens on a freshly released port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = pier_config::DatabaseConfig::Postgres(pier_config::PostgresConfig {
        host: "127.0.0.1".into(),
        port,
        name: "x".into(),
        user: "x".into(),
        password: Some("hunter2-secret".to_owned().into()),
        tls: pier_config::PgTlsMode::Disable,
        tls_ca_file: None,
        pool_size: 2,
        connect_timeout: std::time::Duration::from_secs(2),
    });
    let store = Store::open(&cfg).await.unwrap();
    let err = store.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_do_not_wait_for_a_long_reader_at_checkpoints() {
    // A backup's `VACUUM INTO` is a read transaction that can last minutes; the writer's WAL
    // checkpoints must not stall writes for the busy timeout while it runs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let cfg = pier_config::DatabaseConfig::Sqlite(pier_config::SqliteConfig {
        path: path.clone(),
        durability: pier_config::Durability::Normal,
        read_connections: 1,
        busy_timeout: std::time::Duration::from_secs(3),
        wal_max_bytes: 1024 * 1024,
        max_batch: 64,
    });
    let store = Store::open(&cfg).await.unwrap();
    store
        .execute("CREATE TABLE t (b BLOB)", Vec::new())
        .await
        .unwrap();
    store
        .execute("INSERT INTO t VALUES (zeroblob(100))", Vec::new())
        .await
        .unwrap();
    // The long reader: an open read transaction on its own connection.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    let mut slowest = std::time::Duration::ZERO;
    for _ in 0..400 {
        let started = std::time::Instant::now();
        store
            .execute("INSERT INTO t VALUES (randomblob(8192))", Vec::new())
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
    }
    let wal = std::fs::metadata(dir.path().join("data.db-wal"))
        .unwrap()
        .len();
    assert!(
        wal > 1024 * 1024,
        "the WAL should have passed the limit: {wal}"
    );
    assert!(
        slowest < std::time::Duration::from_millis(1500),
        "a write waited {slowest:?} behind a checkpoint"
    );
    reader.execute_batch("COMMIT").unwrap();
    store.close().await;
}
