//! Work registered with `Conn::after_commit`: run once the write commits, in commit order,
//! never for a write (or a session) that rolls back.

use std::sync::{Arc, Mutex};

use pier_core::ErrorKind;
use pier_storage::{StorageError, Store, Value};

use crate::cases::table;

type Log = Arc<Mutex<Vec<i64>>>;

/// Inserts `id` and registers work that logs it; `fail` makes the write roll back after it.
async fn insert(store: &Store, log: &Log, id: i64, fail: bool) -> Result<(), StorageError> {
    let log = log.clone();
    store
        .write(move |c| {
            Box::pin(async move {
                c.execute("INSERT INTO t (id) VALUES ($1)", &[Value::Integer(id)])
                    .await?;
                c.after_commit(Box::new(move || {
                    if let Ok(mut l) = log.lock() {
                        l.push(id);
                    }
                }));
                if fail {
                    return Err(StorageError::aborted(ErrorKind::Invalid, "refused"));
                }
                Ok(())
            })
        })
        .await
}

fn logged(log: &Log) -> Vec<i64> {
    log.lock().unwrap().clone()
}

pub(crate) async fn after_commit_work_runs_only_for_committed_writes_in_order(store: Store) {
    table(&store).await;
    let log: Log = Arc::default();
    insert(&store, &log, 1, false).await.unwrap();
    // The work has run by the time the write returns.
    assert_eq!(logged(&log), vec![1]);
    assert!(insert(&store, &log, 2, true).await.is_err());
    assert_eq!(logged(&log), vec![1], "a rolled-back write ran its work");

    // Concurrent writes (grouped into shared commits on SQLite), some failing: the work of
    // each committed one runs exactly once, and none of a failed one.
    let mut tasks = Vec::new();
    for id in 10..60 {
        let (store, log) = (store.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            insert(&store, &log, id, id % 7 == 0).await.is_ok()
        }));
    }
    let mut committed = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() {
            committed.push(10 + i as i64);
        }
    }
    let mut seen = logged(&log);
    assert_eq!(seen.len(), committed.len() + 1);
    seen.sort_unstable();
    let mut expected = committed.clone();
    expected.push(1);
    expected.sort_unstable();
    assert_eq!(seen, expected);

    // A session runs its writes' work at its commit, and none of it when it rolls back.
    let session = store.session().await.unwrap();
    insert(&session.store(), &log, 100, false).await.unwrap();
    assert!(insert(&session.store(), &log, 101, true).await.is_err());
    insert(&session.store(), &log, 102, false).await.unwrap();
    assert!(
        !logged(&log).contains(&100),
        "ran before the session committed"
    );
    session.commit().await.unwrap();
    let tail: Vec<i64> = logged(&log).into_iter().rev().take(2).collect();
    assert_eq!(tail, vec![102, 100]);

    let before = logged(&log).len();
    let session = store.session().await.unwrap();
    insert(&session.store(), &log, 200, false).await.unwrap();
    session.rollback().await;
    // A write after the rollback proves the writer moved on; the rolled-back work never ran.
    insert(&store, &log, 201, false).await.unwrap();
    assert_eq!(logged(&log).len(), before + 1);
    assert!(!logged(&log).contains(&200));
}
