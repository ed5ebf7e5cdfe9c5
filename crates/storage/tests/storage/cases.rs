use pier_core::ErrorKind;
use pier_storage::{CORE_MIGRATIONS, Migration, StorageError, Store, Value};

pub(crate) async fn table(store: &Store) {
    store
        .write(|c| {
            Box::pin(async move {
                c.execute_script(
                    "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT UNIQUE, score DOUBLE PRECISION, data BYTEA)"
                        .replace("BYTEA", if c.dialect() == pier_storage::Dialect::Sqlite { "BLOB" } else { "BYTEA" })
                        .as_str(),
                )
                .await
            })
        })
        .await
        .unwrap();
}

async fn count(store: &Store) -> i64 {
    store
        .query("SELECT count(*) FROM t", vec![])
        .await
        .unwrap()
        .scalar()
        .and_then(Value::as_i64)
        .unwrap()
}

pub(crate) async fn every_value_type_round_trips(store: Store) {
    table(&store).await;
    let n = store
        .execute(
            "INSERT INTO t (id, name, score, data) VALUES ($1, $2, $3, $4)",
            vec![
                Value::Integer(i64::MAX),
                Value::Text("héllo 'quoted' \"x\" ; DROP TABLE t; --".into()),
                Value::Real(1.5),
                Value::Blob(vec![0, 1, 2, 255]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    store
        .execute(
            "INSERT INTO t (id, name, score, data) VALUES ($1, $2, $3, $4)",
            vec![Value::Integer(-1), Value::Null, Value::Null, Value::Null],
        )
        .await
        .unwrap();
    let rows = store
        .query(
            "SELECT id, name, score, data FROM t ORDER BY id DESC",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(rows.columns(), ["id", "name", "score", "data"]);
    let all: Vec<_> = rows.iter().map(<[Value]>::to_vec).collect();
    assert_eq!(
        all[0],
        vec![
            Value::Integer(i64::MAX),
            Value::Text("héllo 'quoted' \"x\" ; DROP TABLE t; --".into()),
            Value::Real(1.5),
            Value::Blob(vec![0, 1, 2, 255]),
        ]
    );
    assert_eq!(
        all[1],
        vec![Value::Integer(-1), Value::Null, Value::Null, Value::Null]
    );
}

pub(crate) async fn a_failing_write_leaves_nothing_behind(store: Store) {
    table(&store).await;
    let err = store
        .write(|c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO t (id, name) VALUES ($1, $2)",
                    &[1.into(), "a".into()],
                )
                .await?;
                c.execute(
                    "INSERT INTO t (id, name) VALUES ($1, $2)",
                    &[2.into(), "b".into()],
                )
                .await?;
                Err::<(), _>(StorageError::aborted(ErrorKind::Invalid, "changed my mind"))
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(count(&store).await, 0);
}

pub(crate) async fn concurrent_writes_are_all_committed(store: Store) {
    table(&store).await;
    let mut tasks = Vec::new();
    for i in 0..200i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.execute(
                "INSERT INTO t (id, name) VALUES ($1, $2)",
                vec![i.into(), format!("n{i}").into()],
            )
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 1);
    }
    assert_eq!(count(&store).await, 200);
    let stats = store.stats();
    if stats.engine == "sqlite" {
        assert!(stats.committed_writes >= 201, "{stats:?}");
    }
}

pub(crate) async fn one_failing_write_does_not_undo_its_neighbours(store: Store) {
    table(&store).await;
    store
        .execute("INSERT INTO t (id, name) VALUES (1000, 'taken')", vec![])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every tenth write collides with an existing unique name.
            let name = if i % 10 == 0 {
                "taken".to_owned()
            } else {
                format!("n{i}")
            };
            s.write(move |c| {
                Box::pin(async move {
                    c.execute(
                        "INSERT INTO t (id, name) VALUES ($1, $2)",
                        &[i.into(), name.into()],
                    )
                    .await
                })
            })
            .await
        }));
    }
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(n) => assert_eq!(n, 1),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 5);
    assert_eq!(count(&store).await, 46);
}

pub(crate) async fn unique_violations_are_conflicts(store: Store) {
    table(&store).await;
    store
        .execute("INSERT INTO t (id) VALUES (1)", vec![])
        .await
        .unwrap();
    let err = store
        .execute("INSERT INTO t (id) VALUES (1)", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
}

pub(crate) async fn placeholders_inside_literals_are_left_alone(store: Store) {
    let rows = store
        .query("SELECT '$1' AS a, $1 AS b", vec![Value::Text("x".into())])
        .await
        .unwrap();
    assert_eq!(rows.iter().next().unwrap()[0], Value::Text("$1".into()));
    assert_eq!(rows.iter().next().unwrap()[1], Value::Text("x".into()));
}

static TWO: &[Migration] = &[
    CORE_MIGRATIONS[0],
    Migration {
        version: 2,
        name: "notes",
        sqlite: "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        postgres: "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL);",
    },
];

pub(crate) async fn migrations_apply_once_and_are_listed(store: Store) {
    assert!(!store.migrations_applied(CORE_MIGRATIONS).await.unwrap());
    assert_eq!(store.migrate(CORE_MIGRATIONS).await.unwrap(), vec![1]);
    let state = store.migration_state(TWO).await.unwrap();
    assert_eq!(state.len(), 2);
    assert!(state[0].applied_at_ms.is_some());
    assert!(state[1].applied_at_ms.is_none());
    assert!(!store.migrations_applied(TWO).await.unwrap());
    assert_eq!(store.migrate(TWO).await.unwrap(), vec![2]);
    assert_eq!(store.migrate(TWO).await.unwrap(), Vec::<i64>::new());
    assert!(store.migrations_applied(TWO).await.unwrap());
    store
        .execute("INSERT INTO notes (body) VALUES ($1)", vec!["hi".into()])
        .await
        .unwrap();
}

pub(crate) async fn a_newer_schema_is_refused(store: Store) {
    store.migrate(TWO).await.unwrap();
    let err = store.migrate(CORE_MIGRATIONS).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::SchemaTooNew {
                database: 2,
                binary: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
}

static BROKEN: &[Migration] = &[
    CORE_MIGRATIONS[0],
    Migration {
        version: 2,
        name: "broken",
        sqlite: "CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1);",
        postgres: "CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1);",
    },
];

pub(crate) async fn a_failing_migration_is_rolled_back(store: Store) {
    let err = store.migrate(BROKEN).await.unwrap_err();
    assert!(
        err.to_string().contains("migration 2 `broken` failed"),
        "{err}"
    );
    // The half-created table is gone and the migration is not recorded.
    assert!(store.query("SELECT * FROM half", vec![]).await.is_err());
    let state = store.migration_state(BROKEN).await.unwrap();
    assert!(state[0].applied_at_ms.is_some());
    assert!(state[1].applied_at_ms.is_none());
}

pub(crate) async fn reads_see_one_snapshot(store: Store) {
    table(&store).await;
    store
        .execute("INSERT INTO t (id) VALUES (1)", vec![])
        .await
        .unwrap();
    let (a, b) = store
        .read(|c| {
            Box::pin(async move {
                let a = c.query("SELECT count(*) FROM t", &[]).await?;
                let b = c.query("SELECT id FROM t", &[]).await?;
                Ok((a.scalar().and_then(Value::as_i64), b.len()))
            })
        })
        .await
        .unwrap();
    assert_eq!(a, Some(1));
    assert_eq!(b, 1);
    // Reads refuse to write.
    let err = store
        .read(|c| Box::pin(async move { c.execute("INSERT INTO t (id) VALUES (2)", &[]).await }))
        .await;
    assert!(err.is_err());
    assert_eq!(count(&store).await, 1);
}

pub(crate) async fn wrong_parameter_counts_are_errors_not_panics(store: Store) {
    assert!(store.query("SELECT $1", vec![]).await.is_err());
    assert!(
        store
            .query("SELECT 1", vec![Value::Integer(1)])
            .await
            .is_err()
    );
    assert!(store.query("SELEKT nonsense", vec![]).await.is_err());
    // The store still works afterwards.
    store.ping().await.unwrap();
}

pub(crate) async fn a_panicking_closure_is_an_error(store: Store) {
    let s = store.clone();
    let r = tokio::spawn(async move {
        s.write(|_c| {
            Box::pin(async move {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                Ok(())
            })
        })
        .await
    })
    .await;
    match store.stats().engine {
        // SQLite runs closures on its own thread and turns a panic into an error.
        "sqlite" => assert_eq!(r.unwrap().unwrap_err().kind(), ErrorKind::Internal),
        // PostgreSQL runs them in the caller's task, whose panic stays the caller's.
        _ => assert!(r.is_err()),
    }
    store.ping().await.unwrap();
    store
        .execute("CREATE TABLE after_panic (id INTEGER)", vec![])
        .await
        .unwrap();
}

pub(crate) async fn sessions_commit_or_roll_back_as_one(store: Store) {
    table(&store).await;
    let s = store.session().await.unwrap();
    let tx = s.store();
    tx.execute("INSERT INTO t (id, name) VALUES (1, 'a')", vec![])
        .await
        .unwrap();
    // A failing write inside the session undoes only itself.
    assert!(
        tx.execute("INSERT INTO t (id, name) VALUES (1, 'dup')", vec![])
            .await
            .is_err()
    );
    tx.execute("INSERT INTO t (id, name) VALUES (2, 'b')", vec![])
        .await
        .unwrap();
    assert_eq!(count(&tx).await, 2, "the session reads its own writes");
    s.commit().await.unwrap();
    assert_eq!(count(&store).await, 2);

    let s = store.session().await.unwrap();
    s.store().execute("DELETE FROM t", vec![]).await.unwrap();
    s.rollback().await;
    assert_eq!(
        count(&store).await,
        2,
        "a rolled-back session leaves nothing"
    );

    let s = store.session().await.unwrap();
    s.store().execute("DELETE FROM t", vec![]).await.unwrap();
    drop(s);
    // The writer is free again and the dropped session's delete is gone.
    store
        .execute("INSERT INTO t (id, name) VALUES (3, 'c')", vec![])
        .await
        .unwrap();
    assert_eq!(count(&store).await, 3);
}
