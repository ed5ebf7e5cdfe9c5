//! Realtime beyond what PocketBase does, through the real application: lossless resume
//! (`Last-Event-ID`, `lastEventId`, `PB_RESET` outside what is kept), one rule query per group
//! of like subscribers, a client that never reads cut off while the others keep up, a client
//! whose auth record is deleted becoming a guest, and bad input. The PocketBase-compatible
//! behaviour is in the SDK suite (`tests/sdk/realtime.mjs`); the WebSocket endpoint in
//! `realtime_ws`.

use std::time::Duration;

use pier_testkit::{Engine, spawn_app_with};
use serde_json::{Value, json};

use crate::events_across_backends::kill_listeners;
use crate::records::{Api, on_both_engines, superuser_token};

/// One SSE message.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// A realtime client over SSE, read message by message.
pub(crate) struct Sse {
    res: reqwest::Response,
    buf: Vec<u8>,
    pub(crate) client_id: String,
}

impl Sse {
    pub(crate) async fn open(base: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = reqwest::Client::new().get(format!("{base}/api/realtime"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut sse = Sse {
            res,
            buf: Vec::new(),
            client_id: String::new(),
        };
        let hello = sse.next().await.expect("PB_CONNECT");
        assert_eq!(hello.event, "PB_CONNECT");
        assert_eq!(hello.id, hello.data["clientId"].as_str().unwrap());
        sse.client_id = hello.id;
        sse
    }

    /// The next message (keep-alive comments skipped); `None` when the stream ended or nothing
    /// came for 10 s.
    pub(crate) async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(frame).unwrap();
                let mut m = Message {
                    id: String::new(),
                    event: String::new(),
                    data: Value::Null,
                };
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        m.id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        m.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        m.data = serde_json::from_str(v).unwrap();
                    }
                }
                if m.event.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(m);
            }
            match tokio::time::timeout(Duration::from_secs(10), self.res.chunk()).await {
                Ok(Ok(Some(c))) => self.buf.extend_from_slice(&c),
                _ => return None,
            }
        }
    }

    /// Sets the topics (and optionally where to resume), as the caller `token`.
    pub(crate) async fn subscribe(
        &self,
        base: &str,
        topics: &[&str],
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> u16 {
        let mut body = json!({"clientId": self.client_id, "subscriptions": topics});
        if let Some(id) = last_event_id {
            body["lastEventId"] = json!(id);
        }
        let mut req = reqwest::Client::new()
            .post(format!("{base}/api/realtime"))
            .json(&body);
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        req.send().await.unwrap().status().as_u16()
    }
}

async fn notes(a: &Api, list_rule: &str) {
    let (s, b) = a
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "notes",
                "listRule": list_rule, "viewRule": list_rule, "createRule": "", "updateRule": "", "deleteRule": "",
                "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "json", "maxSize": 2_000_000}]
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

async fn note(a: &Api, title: &str) -> String {
    let (s, b) = a
        .guest(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"title": title})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

fn titles(ms: &[Message]) -> Vec<String> {
    ms.iter()
        .map(|m| {
            m.data["record"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn take(sse: &mut Sse, n: usize) -> Vec<Message> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(
            sse.next()
                .await
                .unwrap_or_else(|| panic!("only {} of {n} messages: {out:?}", out.len())),
        );
    }
    out
}

async fn resume_replays_what_was_missed_in_order_then_goes_live(a: Api) {
    notes(&a, "").await;
    let base = a.app.base_url.clone();
    let mut first = Sse::open(&base, None).await;
    assert_eq!(first.subscribe(&base, &["notes/*"], None, None).await, 204);
    for t in ["one", "two", "three"] {
        note(&a, t).await;
    }
    let seen = take(&mut first, 3).await;
    assert_eq!(titles(&seen), ["one", "two", "three"]);
    let numbers: Vec<u64> = seen.iter().map(|m| m.id.parse().unwrap()).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "ids are growing sequence numbers: {numbers:?}"
    );

    // A reconnect with Last-Event-ID gets what came after it, then live events, once each.
    let mut again = Sse::open(&base, Some(&seen[0].id)).await;
    assert_ne!(again.client_id, first.client_id);
    assert_eq!(again.subscribe(&base, &["notes/*"], None, None).await, 204);
    note(&a, "four").await;
    let got = take(&mut again, 3).await;
    assert_eq!(titles(&got), ["two", "three", "four"]);
    assert_eq!(got[0].id, seen[1].id);

    // The same through the subscribe body.
    let mut third = Sse::open(&base, None).await;
    assert_eq!(
        third
            .subscribe(&base, &["notes/*"], None, Some(&seen[1].id))
            .await,
        204
    );
    let got = take(&mut third, 2).await;
    assert_eq!(titles(&got), ["three", "four"]);

    // A number never issued (or, on SQLite, from before what is kept) gets PB_RESET, then
    // live events.
    let mut lost = Sse::open(&base, Some("99999999999999999")).await;
    assert_eq!(lost.subscribe(&base, &["notes/*"], None, None).await, 204);
    let reset = lost.next().await.unwrap();
    assert_eq!(reset.event, "PB_RESET", "{reset:?}");
    assert_eq!(reset.data["after"], 99_999_999_999_999_999_u64);
    note(&a, "five").await;
    assert_eq!(titles(&take(&mut lost, 1).await), ["five"]);
    let live = take(&mut first, 2).await;
    assert_eq!(
        titles(&live),
        ["four", "five"],
        "the first client saw each once"
    );
}

async fn like_subscribers_cost_one_rule_query_per_event(a: Api) {
    // `~` is not decided in memory: every event is one query for the whole group.
    notes(&a, "title ~ 'show'").await;
    let base = a.app.base_url.clone();
    let mut clients = Vec::new();
    for _ in 0..40 {
        let s = Sse::open(&base, None).await;
        assert_eq!(s.subscribe(&base, &["notes/*"], None, None).await, 204);
        clients.push(s);
    }
    let before = a.app.engine.event_rule_queries();
    note(&a, "hidden").await;
    note(&a, "shown").await;
    for c in &mut clients {
        assert_eq!(titles(&take(c, 1).await), ["shown"]);
    }
    assert_eq!(
        a.app.engine.event_rule_queries() - before,
        2,
        "one query per event for 40 guests on one topic"
    );
    // A rule of plain comparisons is decided without a query.
    let (s, _) = a
        .su(
            "PATCH",
            "/api/collections/notes",
            Some(json!({"listRule": "title != 'hidden'"})),
        )
        .await;
    assert_eq!(s, 200);
    let before = a.app.engine.event_rule_queries();
    note(&a, "hidden").await;
    note(&a, "plain").await;
    for c in &mut clients {
        assert_eq!(titles(&take(c, 1).await), ["plain"]);
    }
    assert_eq!(a.app.engine.event_rule_queries() - before, 0);
}

/// Every answer the in-memory rule check gives equals the query's, on the same records and
/// callers, for rules it decides and rules it leaves to the query.
async fn rules_decided_in_memory_agree_with_the_query(a: Api) {
    let (s, users) = a
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "people", "type": "auth", "createRule": "", "fields": []})),
        )
        .await;
    assert_eq!(s, 200, "{users}");
    let mut people = Vec::new();
    for n in 0..2 {
        let (s, u) = a
            .guest("POST", "/api/collections/people/records", Some(json!({"email": format!("p{n}@example.com"), "password": "Secret12345", "passwordConfirm": "Secret12345"})))
            .await;
        assert_eq!(s, 200, "{u}");
        people.push(u["id"].as_str().unwrap().to_owned());
    }
    let (s, c) = a
        .su("POST", "/api/collections", Some(json!({
            "name": "docs", "createRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "status", "type": "select", "values": ["draft", "live"], "maxSelect": 1},
                {"name": "public", "type": "bool"},
                {"name": "views", "type": "number"},
                {"name": "secret", "type": "text", "hidden": true},
                {"name": "owner", "type": "relation", "collectionId": users["id"], "maxSelect": 1},
                {"name": "tags", "type": "select", "values": ["x", "y"], "maxSelect": 2}
            ]
        })))
        .await;
    assert_eq!(s, 200, "{c}");
    let mut records = Vec::new();
    for (title, status, public, views, owner, tags) in [
        ("Hello", "live", true, 0.0, Some(0), json!(["x"])),
        ("hello", "draft", false, 2.5, Some(1), json!([])),
        ("", "", false, -1.0, None, json!(["x", "y"])),
        ("it's \"quoted\"", "live", true, 1e15, Some(0), json!(["y"])),
    ] {
        let owner = owner.map_or(String::new(), |i: usize| people[i].clone());
        let (s, r) = a
            .su(
                "POST",
                "/api/collections/docs/records",
                Some(json!({"title": title, "status": status, "public": public,
                "views": views, "secret": "s", "owner": owner, "tags": tags})),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        records.push(r.as_object().unwrap().clone());
    }
    let rules = [
        "public = true",
        "public != false",
        "public = true && status = 'live'",
        "status = 'live' || owner = @request.auth.id",
        "owner = @request.auth.id",
        "owner != @request.auth.id",
        "@request.auth.id != ''",
        "@request.auth.id = ''",
        "title = 'Hello'",
        "title = 'hello'",
        "title != ''",
        "title = \"it's \\\"quoted\\\"\"",
        "views = 0",
        "views = 2.5",
        "views != 1000000000000000",
        "views = -1",
        "secret = 's'",
        "id != ''",
        "status = ''",
        // Left to the query (mixed kinds, other operators, multi-valued fields, relations).
        "views = '0'",
        "public = 1",
        "title ~ 'ell'",
        "views > 1",
        "tags = 'x'",
        "tags ?= 'y'",
        "owner.email != ''",
        "title = null",
        "public = true && views > 0",
        "public = false || title ~ 'H'",
    ];
    let engine = &a.app.engine;
    let docs = engine.collection("docs").await.unwrap();
    let mut decided = 0;
    for caller in [None, Some(0), Some(1)] {
        let auth = match caller {
            None => pier_records::Auth::Guest,
            Some(i) => pier_records::Auth::Record {
                collection_id: users["id"].as_str().unwrap().to_owned(),
                id: people[i].clone(),
            },
        };
        let req = engine
            .request_info(
                auth,
                "GET",
                Default::default(),
                Default::default(),
                Default::default(),
            )
            .await;
        for rule in rules {
            for r in &records {
                let by_query = engine
                    .event_rule_by_query(&docs, r, rule, &req)
                    .await
                    .unwrap();
                if let Some(in_memory) = engine.event_rule_in_memory(&docs, r, rule, &req) {
                    decided += 1;
                    assert_eq!(in_memory, by_query, "{rule} for {caller:?} on {r:?}");
                }
            }
        }
    }
    assert!(
        decided >= 19 * 4 * 3 - 12,
        "most plain rules were decided in memory: {decided}"
    );
}

async fn a_deleted_auth_record_leaves_its_client_a_guest(a: Api) {
    notes(&a, "@request.auth.id != '' || title = 'public'").await;
    let (s, users) = a
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "members", "type": "auth", "createRule": "", "fields": []})),
        )
        .await;
    assert_eq!(s, 200, "{users}");
    let (s, u) = a
        .guest(
            "POST",
            "/api/collections/members/records",
            Some(json!({"email": "m@example.com", "password": "Secret12345", "passwordConfirm": "Secret12345"})),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    let (_, auth) = a
        .guest(
            "POST",
            "/api/collections/members/auth-with-password",
            Some(json!({"identity": "m@example.com", "password": "Secret12345"})),
        )
        .await;
    let token = auth["token"].as_str().unwrap().to_owned();
    let base = a.app.base_url.clone();
    let mut sse = Sse::open(&base, None).await;
    assert_eq!(
        sse.subscribe(&base, &["notes/*"], Some(&token), None).await,
        204
    );
    note(&a, "members only").await;
    assert_eq!(titles(&take(&mut sse, 1).await), ["members only"]);
    let (s, _) = a
        .su(
            "DELETE",
            &format!(
                "/api/collections/members/records/{}",
                u["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 204);
    note(&a, "members only again").await;
    note(&a, "public").await;
    assert_eq!(titles(&take(&mut sse, 1).await), ["public"], "a guest now");
}

async fn bad_subscriptions_get_clear_errors(a: Api) {
    notes(&a, "").await;
    let base = a.app.base_url.clone();
    let mut sse = Sse::open(&base, None).await;
    let many: Vec<String> = (0..10_000).map(|i| format!("notes/{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(sse.subscribe(&base, &many, None, None).await, 400);
    let huge = format!("notes/*?options={}", "x".repeat(1 << 20));
    assert_eq!(sse.subscribe(&base, &[&huge], None, None).await, 400);
    // Broken options are ignored, an unknown collection is accepted (as PocketBase does): the
    // client keeps working.
    let topics = ["notes/*?options=%7Bbroken", "nowhere/*", "notes"];
    assert_eq!(sse.subscribe(&base, &topics, None, None).await, 204);
    note(&a, "still here").await;
    let got = take(&mut sse, 2).await;
    let mut names: Vec<&str> = got.iter().map(|m| m.event.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["notes", "notes/*?options=%7Bbroken"]);
    let res = reqwest::Client::new()
        .post(format!("{base}/api/realtime"))
        .body("\u{0}\u{1}garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], 400);
}

on_both_engines!(
    resume_replays_what_was_missed_in_order_then_goes_live,
    like_subscribers_cost_one_rule_query_per_event,
    rules_decided_in_memory_agree_with_the_query,
    a_deleted_auth_record_leaves_its_client_a_guest,
    bad_subscriptions_get_clear_errors,
);

/// Reads the value of one series from `/metrics`.
pub(crate) async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_the_others_keep_up() {
    let app = spawn_app_with(Engine::Sqlite, vec![("realtime.client_buffer", "4".into())]).await;
    let token = superuser_token(&app).await;
    let a = Api { app, token };
    notes(&a, "").await;
    let base = a.app.base_url.clone();
    // A raw connection that subscribes and then never reads a byte.
    let mut stalled = Sse::open(&base, None).await;
    assert_eq!(
        stalled.subscribe(&base, &["notes/*"], None, None).await,
        204
    );
    let mut reader = Sse::open(&base, None).await;
    assert_eq!(reader.subscribe(&base, &["notes/*"], None, None).await, 204);
    // 40 events of 256 KB: more than the kernel's socket buffers and the queue of 4 together.
    let body = "x".repeat(256 * 1024);
    let writer = tokio::spawn({
        let (base, body) = (base.clone(), body.clone());
        async move {
            let c = reqwest::Client::new();
            for i in 0..40 {
                let r = c
                    .post(format!("{base}/api/collections/notes/records"))
                    .json(&json!({"title": format!("n{i}"), "body": body}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }
    });
    let got = take(&mut reader, 40).await;
    writer.await.unwrap();
    assert_eq!(got.last().unwrap().data["record"]["title"], "n39");
    assert!(metric(&base, "pier_realtime_slow_disconnects_total").await >= 1.0);
    // The stalled stream ends once what was written before the cut is read.
    let mut n = 0;
    while stalled.next().await.is_some() {
        n += 1;
        assert!(n < 40, "the stalled client was cut off before the end");
    }
    assert_eq!(metric(&base, "pier_realtime_connections").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_streams_get_keepalives_and_idle_ones_are_closed() {
    let app = spawn_app_with(
        Engine::Sqlite,
        vec![
            ("realtime.keepalive_seconds", "1".into()),
            ("realtime.idle_timeout_seconds", "3".into()),
        ],
    )
    .await;
    let mut res = reqwest::get(app.url("/api/realtime")).await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let started = std::time::Instant::now();
    let mut text = String::new();
    while let Ok(Ok(Some(c))) = tokio::time::timeout(Duration::from_secs(10), res.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&c));
    }
    let took = started.elapsed();
    assert!(text.starts_with("id:"), "{text}");
    assert!(
        text.matches(":\n\n").count() >= 2,
        "keep-alive comments: {text:?}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "closed after the idle timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_another_backend_misses_nothing_while_its_listener_is_killed() {
    let a = Api::start(Engine::Postgres).await;
    notes(&a, "").await;
    let b = spawn_app_with(Engine::Sqlite, a.app.database_flags()).await;
    let mut sse = Sse::open(&b.base_url, None).await;
    assert_eq!(
        sse.subscribe(&b.base_url, &["notes/*"], None, None).await,
        204
    );
    let store = a.app.store.clone();
    let killer = tokio::spawn(async move {
        let mut kills = 0;
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            kills += kill_listeners(&store).await;
        }
        kills
    });
    let mut written = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2600) {
        let t = format!("n{}", written.len());
        note(&a, &t).await;
        written.push(t);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(killer.await.unwrap() >= 2, "the listeners were killed");
    let got = take(&mut sse, written.len()).await;
    assert_eq!(titles(&got), written, "every event once, in commit order");
}
