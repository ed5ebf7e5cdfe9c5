//! Record events across backends on one PostgreSQL database: two real pier applications share
//! a database, writes go through one's HTTP API, and the other's subscribers receive them
//! through the outbox, in commit order, with nothing lost or repeated, even when its listener's
//! connection is killed again and again.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pier_records::Action;
use pier_testkit::{Engine, TestApp, spawn_app_with};
use serde_json::{Value, json};

use crate::events::next_record;
use crate::records::{Api, superuser_token};

/// Ends every outbox listener's PostgreSQL connection (each backend reconnects): how many.
pub(crate) async fn kill_listeners(store: &pier_storage::Store) -> u32 {
    let rows = store
        .query(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'pier-listener') k",
            vec![],
        )
        .await
        .unwrap();
    u32::try_from(
        rows.scalar()
            .and_then(pier_storage::Value::as_i64)
            .unwrap_or(0),
    )
    .unwrap_or(0)
}

/// A second application on the first one's database.
async fn second_backend(first: &TestApp, extra: Vec<(&'static str, String)>) -> TestApp {
    assert!(first.pg.is_some(), "the first app runs on PostgreSQL");
    let mut flags = first.database_flags();
    flags.extend(extra);
    spawn_app_with(Engine::Sqlite, flags).await
}

async fn two_backends(extra: Vec<(&'static str, String)>) -> (Api, TestApp) {
    let app = spawn_app_with(Engine::Postgres, extra.clone()).await;
    let token = superuser_token(&app).await;
    let a = Api { app, token };
    let b = second_backend(&a.app, extra).await;
    let (s, body) = a
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "notes",
                "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
                "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "json"}]
            })),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    (a, b)
}

async fn create(a: &Api, body: Value) -> String {
    let (s, b) = a
        .guest("POST", "/api/collections/notes/records", Some(body))
        .await;
    assert_eq!(s, 200, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_through_one_backend_reach_another() {
    let (a, b) = two_backends(Vec::new()).await;
    let mut sub = b.engine.events().subscribe();
    let one = create(&a, json!({"title": "one"})).await;
    // 64 KB: far past NOTIFY's 8,000-byte payload limit.
    let big = "x".repeat(64 * 1024);
    let two = create(&a, json!({"title": "two", "body": {"text": big}})).await;
    let (s, _) = a
        .guest(
            "PATCH",
            &format!("/api/collections/notes/records/{one}"),
            Some(json!({"title": "uno"})),
        )
        .await;
    assert_eq!(s, 200);
    let e1 = next_record(&mut sub).await;
    let e2 = next_record(&mut sub).await;
    let e3 = next_record(&mut sub).await;
    assert_eq!(
        (e1.action, e1.record()["id"].as_str()),
        (Action::Create, Some(one.as_str()))
    );
    assert_eq!(e2.record()["id"], two);
    assert_eq!(
        e2.record()["body"]["text"].as_str().map(str::len),
        Some(64 * 1024)
    );
    assert_eq!(e3.action, Action::Update);
    assert_eq!(e3.previous().unwrap()["title"], "one");
    assert!(e1.seq < e2.seq && e2.seq < e3.seq);
    // The writing backend delivers the same events, with the same numbers.
    let mut own = a
        .app
        .engine
        .events()
        .subscribe_after(e1.seq - 1)
        .await
        .unwrap();
    assert_eq!(next_record(&mut own).await.seq, e1.seq);
    assert_eq!(next_record(&mut own).await.seq, e2.seq);
}

/// A transaction that wrote first but commits last: its event is delivered after the other's,
/// and neither is lost (a sequence taken at insert time would have skipped it for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_commits_last_is_not_skipped() {
    let (a, b) = two_backends(Vec::new()).await;
    let mut sub = b.engine.events().subscribe();
    let session = a.app.store.session().await.unwrap();
    let inside = a.app.engine.scoped(session.store());
    let notes = inside.collection("notes").await.unwrap();
    let req = inside
        .request_info(
            pier_records::Auth::Guest,
            "POST",
            serde_json::Map::new(),
            serde_json::Map::new(),
            json!({"title": "first written"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .await;
    // Its outbox row is written now, uncommitted.
    inside.create(&notes, &req).await.unwrap();
    create(&a, json!({"title": "second written"})).await;
    let e = next_record(&mut sub).await;
    assert_eq!(e.record()["title"], "second written");
    session.commit().await.unwrap();
    let late = next_record(&mut sub).await;
    assert_eq!(late.record()["title"], "first written");
    assert!(late.seq > e.seq);
}

/// A rule change made through one backend is honoured by the other as soon as its event
/// arrives, not after the cache's time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_change_reaches_the_other_backend_as_an_event() {
    let (a, b) = two_backends(Vec::new()).await;
    let loaded = Instant::now();
    let before = b.engine.collection("notes").await.unwrap();
    assert_eq!(before.list_rule.as_deref(), Some(""));
    let mut sub = b.engine.events().subscribe();
    let (s, body) = a
        .su(
            "PATCH",
            "/api/collections/notes",
            Some(json!({"listRule": "title = 'x'"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if e.action == Action::Collections && e.collection_name == "notes" {
            break;
        }
    }
    let after = b.engine.collection("notes").await.unwrap();
    assert!(
        loaded.elapsed() < Duration::from_secs(2),
        "too slow to tell the event from the cache's 2-second limit"
    );
    assert_eq!(after.list_rule.as_deref(), Some("title = 'x'"));
}

/// A minute of writes while every listener's connection is killed every 2 seconds: the other
/// backend delivers every event exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_listener_every_two_seconds_loses_and_repeats_nothing() {
    let (a, b) = two_backends(Vec::new()).await;
    let mut sub = b.engine.events().subscribe();
    let writing = Duration::from_secs(
        std::env::var("PIER_TEST_KILL_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let killer_store = a.app.store.clone();
    let killer = tokio::spawn(async move {
        let mut kills = 0u32;
        let started = Instant::now();
        while started.elapsed() < writing {
            tokio::time::sleep(Duration::from_secs(2)).await;
            kills += kill_listeners(&killer_store).await;
        }
        kills
    });
    // The subscriber reads while the writes go on (it would lag behind its buffer otherwise),
    // until it has as many events as were written.
    let (total_tx, mut total_rx) = tokio::sync::watch::channel(None::<usize>);
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut last = 0;
        loop {
            if let Some(n) = *total_rx.borrow_and_update()
                && seen.len() >= n
            {
                break;
            }
            let e = tokio::select! {
                // The total is known: look again whether everything has arrived.
                Ok(()) = total_rx.changed() => continue,
                e = tokio::time::timeout(Duration::from_secs(20), sub.recv()) => match e {
                    Ok(Some(Ok(e))) => e,
                    Ok(other) => panic!("the subscription failed: {other:?}"),
                    Err(_) => panic!("{} events arrived, then nothing for 20 s", seen.len()),
                },
            };
            if e.action == Action::Collections {
                continue;
            }
            assert!(e.seq > last, "out of order or repeated");
            last = e.seq;
            seen.push(e.record()["id"].as_str().unwrap().to_owned());
        }
        // And nothing more arrives.
        let extra = tokio::time::timeout(Duration::from_millis(1500), sub.recv()).await;
        assert!(extra.is_err(), "an event arrived twice");
        seen
    });
    let mut written = Vec::new();
    let started = Instant::now();
    while started.elapsed() < writing {
        written.push(create(&a, json!({"title": format!("n{}", written.len())})).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    total_tx.send(Some(written.len())).unwrap();
    let kills = killer.await.unwrap();
    let rounds = u32::try_from(writing.as_secs() / 2).unwrap_or(1);
    assert!(
        kills + 1 >= rounds,
        "only {kills} listeners were killed in {rounds} rounds"
    );
    let seen = reader.await.unwrap();
    assert_eq!(seen, written, "every event once, in commit order");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), written.len());
}

/// A subscriber resuming from a number the outbox has pruned is told so; one the outbox still
/// holds, though memory does not, is answered from the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_a_pruned_number_is_refused() {
    let (a, b) = two_backends(vec![
        ("events.ring_size", "3".into()),
        ("events.keep_count", "5".into()),
    ])
    .await;
    let mut sub = b.engine.events().subscribe();
    let first = {
        create(&a, json!({"title": "t0"})).await;
        next_record(&mut sub).await.seq
    };
    for i in 1..4 {
        create(&a, json!({"title": format!("t{i}")})).await;
        next_record(&mut sub).await;
    }
    // Memory holds 3, the outbox all 4: the first is served from the outbox.
    let mut resumed = b.engine.events().subscribe_after(first - 1).await.unwrap();
    assert_eq!(next_record(&mut resumed).await.record()["title"], "t0");
    for i in 4..12 {
        create(&a, json!({"title": format!("t{i}")})).await;
        next_record(&mut sub).await;
    }
    // Pruning runs every 10 s and keeps 5.
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let oldest = a
            .app
            .store
            .query("SELECT MIN(seq) FROM _events", vec![])
            .await
            .unwrap()
            .scalar()
            .and_then(pier_storage::Value::as_i64)
            .unwrap();
        if u64::try_from(oldest).unwrap() > first + 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the outbox was never pruned");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let gone = b
        .engine
        .events()
        .subscribe_after(first)
        .await
        .err()
        .unwrap();
    assert!(gone.oldest > first + 1, "{gone}");
    let last = b.engine.events().last_seq();
    assert!(b.engine.events().subscribe_after(last - 2).await.is_ok());
}
