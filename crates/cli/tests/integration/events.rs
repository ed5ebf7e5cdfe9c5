//! Record events after commit, through the real API on both engines: what each write path
//! publishes, in which order, and only once its transaction has committed.
//! `events_across_backends.rs` has the PostgreSQL-only cases with several backends.

use std::sync::Arc;
use std::time::Duration;

use pier_records::{Action, Event, Subscription};
use serde_json::{Value, json};

use crate::records::{Api, on_both_engines};

/// The next record event (collection events skipped), failing after 10 s.
pub(crate) async fn next_record(sub: &mut Subscription) -> Arc<Event> {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("an event within 10 s")
            .expect("the hub is alive")
            .expect("the subscriber did not lag");
        if e.action != Action::Collections {
            return e;
        }
    }
}

/// Writes a marker record and returns the next record event: proof that nothing came between.
async fn after_marker(api: &Api, sub: &mut Subscription, collection: &str) -> Arc<Event> {
    let (s, b) = api
        .su(
            "POST",
            &format!("/api/collections/{collection}/records"),
            Some(json!({"title": "marker"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    next_record(sub).await
}

async fn notes(api: &Api, extra: Value) -> Value {
    let mut def = json!({
        "name": "notes",
        "listRule": "", "viewRule": "", "createRule": "title != 'refused'",
        "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "secret", "type": "text", "hidden": true},
            {"name": "body", "type": "json"}
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        def[k] = v.clone();
    }
    let (s, b) = api.su("POST", "/api/collections", Some(def)).await;
    assert_eq!(s, 200, "{b}");
    b
}

async fn writes_publish_after_commit_in_order(api: Api) {
    notes(&api, json!({})).await;
    let mut sub = api.app.engine.events().subscribe();
    let (s, created) = api
        .guest(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"title": "one", "secret": "dropped for guests"})),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    let id = created["id"].as_str().unwrap();
    let e = next_record(&mut sub).await;
    assert_eq!(e.action, Action::Create);
    assert_eq!(e.collection_name, "notes");
    assert_eq!(e.record()["id"], id);
    assert_eq!(e.record()["title"], "one");
    // As stored: the hidden field is there (empty here: guests cannot write it).
    assert_eq!(e.record()["secret"], "");
    assert!(e.previous().is_none());

    let (s, _) = api
        .guest(
            "PATCH",
            &format!("/api/collections/notes/records/{id}"),
            Some(json!({"title": "two"})),
        )
        .await;
    assert_eq!(s, 200);
    let u = next_record(&mut sub).await;
    assert_eq!(u.action, Action::Update);
    assert!(u.seq > e.seq, "numbers grow");
    assert_eq!(u.record()["title"], "two");
    assert_eq!(u.previous().unwrap()["title"], "one");

    // Refused writes publish nothing: a rule refusal rolls the insert back, a validation
    // error never writes.
    let (s, _) = api
        .guest(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"title": "refused"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = api
        .guest("POST", "/api/collections/notes/records", Some(json!({})))
        .await;
    assert_eq!(s, 400);
    let m = after_marker(&api, &mut sub, "notes").await;
    assert_eq!(
        m.record()["title"],
        "marker",
        "a refused write published an event"
    );

    let (s, _) = api
        .guest(
            "DELETE",
            &format!("/api/collections/notes/records/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let d = next_record(&mut sub).await;
    assert_eq!(d.action, Action::Delete);
    assert_eq!(d.record()["id"], id);
    assert_eq!(d.previous().unwrap()["title"], "two");
    assert!(d.seq > m.seq);
    // Secrets of auth records never travel in events.
    let (s, user) = api
        .guest(
            "POST",
            "/api/collections/users/records",
            Some(json!({"email": "e@example.com", "password": "Secret123!", "passwordConfirm": "Secret123!"})),
        )
        .await;
    assert_eq!(s, 200, "{user}");
    let a = next_record(&mut sub).await;
    assert_eq!(a.record()["email"], "e@example.com");
    assert!(a.record().get("password").is_none());
    assert!(a.record().get("tokenKey").is_none());
    let text = a.to_json().to_string();
    assert!(
        !text.contains("Secret123!") && !text.contains("argon2"),
        "{text}"
    );
}

async fn a_batch_publishes_only_if_it_commits(api: Api) {
    notes(&api, json!({})).await;
    let (s, _) = api
        .su(
            "PATCH",
            "/api/settings",
            Some(json!({"batch": {"enabled": true}})),
        )
        .await;
    assert_eq!(s, 200);
    let mut sub = api.app.engine.events().subscribe();
    let req =
        |method: &str, url: &str, body: Value| json!({"method": method, "url": url, "body": body});
    let url = "/api/collections/notes/records";
    let (s, b) = api
        .guest(
            "POST",
            "/api/batch",
            Some(json!({"requests": [
                req("POST", url, json!({"title": "a"})),
                req("POST", url, json!({"title": "b"})),
                req("POST", url, json!({"title": "c"}))
            ]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut titles = Vec::new();
    let mut last = 0;
    for _ in 0..3 {
        let e = next_record(&mut sub).await;
        assert!(e.seq > last);
        last = e.seq;
        titles.push(e.record()["title"].as_str().unwrap().to_owned());
    }
    assert_eq!(titles, ["a", "b", "c"], "in the batch's order");

    let (s, _) = api
        .guest(
            "POST",
            "/api/batch",
            Some(json!({"requests": [
                req("POST", url, json!({"title": "rolled back 1"})),
                req("POST", url, json!({"title": "rolled back 2"})),
                req("POST", url, json!({}))
            ]})),
        )
        .await;
    assert_eq!(s, 400);
    let m = after_marker(&api, &mut sub, "notes").await;
    assert_eq!(
        m.record()["title"],
        "marker",
        "a rolled-back batch published an event"
    );
}

async fn cascades_truncates_and_drops_publish_every_record(api: Api) {
    let open = json!({"listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""});
    let mut parent = json!({"name": "parents", "fields": [{"name": "title", "type": "text"}]});
    let open_rules = |def: &mut Value| {
        for (k, v) in open.as_object().unwrap() {
            def[k] = v.clone();
        }
    };
    open_rules(&mut parent);
    let (_, p) = api.su("POST", "/api/collections", Some(parent)).await;
    let pid = p["id"].as_str().unwrap();
    let mut child = json!({"name": "children", "fields": [
        {"name": "title", "type": "text"},
        {"name": "parent", "type": "relation", "collectionId": pid, "maxSelect": 1, "cascadeDelete": true}
    ]});
    open_rules(&mut child);
    let mut fan = json!({"name": "fans", "fields": [
        {"name": "title", "type": "text"},
        {"name": "likes", "type": "relation", "collectionId": pid, "maxSelect": 5}
    ]});
    open_rules(&mut fan);
    for def in [child, fan] {
        let (s, b) = api.su("POST", "/api/collections", Some(def)).await;
        assert_eq!(s, 200, "{b}");
    }
    let make = |c: &'static str, body: Value| {
        let api = &api;
        async move {
            let (s, b) = api
                .guest("POST", &format!("/api/collections/{c}/records"), Some(body))
                .await;
            assert_eq!(s, 200, "{b}");
            b["id"].as_str().unwrap().to_owned()
        }
    };
    // Subscribed before the records are made: on PostgreSQL their events may arrive after
    // the writes return, so they are read off first.
    let mut sub = api.app.engine.events().subscribe();
    let p1 = make("parents", json!({"title": "p1"})).await;
    let p2 = make("parents", json!({"title": "p2"})).await;
    let c1 = make("children", json!({"title": "c1", "parent": p1})).await;
    let f1 = make("fans", json!({"title": "f1", "likes": [p1, p2]})).await;
    for _ in 0..4 {
        assert_eq!(next_record(&mut sub).await.action, Action::Create);
    }
    let (s, _) = api
        .guest(
            "DELETE",
            &format!("/api/collections/parents/records/{p1}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = next_record(&mut sub).await;
        seen.push((
            e.action,
            e.collection_name.clone(),
            e.record()["id"].as_str().unwrap().to_owned(),
        ));
        if e.collection_name == "fans" {
            assert_eq!(e.record()["likes"], json!([p2]));
            assert_eq!(e.previous().unwrap()["likes"], json!([p1, p2]));
        }
    }
    seen.sort();
    let mut expected = vec![
        (Action::Delete, "children".to_owned(), c1),
        (Action::Update, "fans".to_owned(), f1),
        (Action::Delete, "parents".to_owned(), p1),
    ];
    expected.sort();
    assert_eq!(seen, expected);

    // Truncating and dropping a collection publish a delete per record.
    make("children", json!({"title": "c2"})).await;
    make("children", json!({"title": "c3"})).await;
    let _ = next_record(&mut sub).await;
    let _ = next_record(&mut sub).await;
    let (s, b) = api
        .su("DELETE", "/api/collections/children/truncate", None)
        .await;
    assert_eq!(s, 204, "{b}");
    let mut gone: Vec<String> = Vec::new();
    for _ in 0..2 {
        let e = next_record(&mut sub).await;
        assert_eq!(
            (e.action, e.collection_name.as_str()),
            (Action::Delete, "children")
        );
        gone.push(e.record()["title"].as_str().unwrap().to_owned());
    }
    gone.sort();
    assert_eq!(gone, ["c2", "c3"]);
    let (s, b) = api.su("DELETE", "/api/collections/fans", None).await;
    assert_eq!(s, 204, "{b}");
    let e = next_record(&mut sub).await;
    assert_eq!(
        (e.action, e.collection_name.as_str()),
        (Action::Delete, "fans")
    );
}

on_both_engines!(
    writes_publish_after_commit_in_order,
    a_batch_publishes_only_if_it_commits,
    cascades_truncates_and_drops_publish_every_record,
);

/// A subscriber that never reads is told it lagged; writers never wait for it, and it resumes
/// from the ring with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_lags_without_blocking_writers() {
    let app = pier_testkit::spawn_app_with(
        pier_testkit::Engine::Sqlite,
        vec![
            ("events.subscriber_buffer", "8".into()),
            ("events.ring_size", "500".into()),
        ],
    )
    .await;
    let token = crate::records::superuser_token(&app).await;
    let api = Api { app, token };
    notes(&api, json!({"createRule": ""})).await;
    let events = api.app.engine.events().clone();
    let mut slow = events.subscribe();
    let start = slow.last_seq();
    for i in 0..200 {
        let (s, _) = tokio::time::timeout(
            Duration::from_secs(10),
            api.guest(
                "POST",
                "/api/collections/notes/records",
                Some(json!({"title": format!("n{i}")})),
            ),
        )
        .await
        .expect("a write waited for a slow subscriber");
        assert_eq!(s, 200);
    }
    let lagged = tokio::time::timeout(Duration::from_secs(5), slow.recv())
        .await
        .unwrap()
        .unwrap();
    let after = lagged
        .expect_err("a subscriber 200 events behind an 8-event buffer lagged")
        .after;
    assert_eq!(after, start);
    // Resuming from where it was: every event, in order, from the ring.
    let mut resumed = events.subscribe_after(after).await.unwrap();
    let mut titles = Vec::new();
    while titles.len() < 200 {
        let e = next_record(&mut resumed).await;
        titles.push(e.record()["title"].as_str().unwrap().to_owned());
    }
    let expected: Vec<String> = (0..200).map(|i| format!("n{i}")).collect();
    assert_eq!(titles, expected);
    // The ring holds 500: a number older than it, or one never issued, is gone.
    for _ in 0..600 {
        let (s, _) = api
            .guest(
                "POST",
                "/api/collections/notes/records",
                Some(json!({"title": "more"})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let gone = events
        .subscribe_after(after)
        .await
        .err()
        .expect("older than the ring");
    assert!(gone.oldest > after + 1, "{gone}");
    assert!(
        events
            .subscribe_after(events.last_seq() + 10)
            .await
            .is_err()
    );
    let fine = events.subscribe_after(events.last_seq() - 3).await.unwrap();
    drop(fine);
}
