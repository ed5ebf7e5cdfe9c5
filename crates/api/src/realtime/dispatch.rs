//! From record events to frames: one task per process takes every committed event in order,
//! groups the subscriptions it concerns by what they would see (the same caller and the same
//! topic, options included), checks the rule once per group, renders the frame once, and
//! queues it for every client of the group. PocketBase runs one query per subscriber per event.
//!
//! Auth records' own events update or drop the auth of the clients signed in as them, as
//! PocketBase does, before the event is delivered. `replay` serves resuming clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;
use pier_records::{Action, Auth, Collection, CollectionType, Engine, Event, EventRule};
use pier_records::{RequestInfo, Subscription};
use serde_json::Value;

use super::broker::{Broker, Client, ClientAuth, Frame};
use super::topic::{Target, Topic};

/// Rule checks of one event run this many at a time.
const CONCURRENCY: usize = 16;

/// Starts the process's dispatcher once.
pub(crate) fn start(broker: &Arc<Broker>, engine: &Arc<Engine>) {
    if broker.engine.set(engine.clone()).is_err() {
        return;
    }
    let (broker, engine) = (broker.clone(), engine.clone());
    tokio::spawn(async move {
        let mut sub = engine.events().subscribe();
        broker.dispatched.store(sub.last_seq(), Ordering::Relaxed);
        loop {
            match sub.recv().await {
                None => return,
                Some(Ok(event)) => {
                    broker.counters.events.fetch_add(1, Ordering::Relaxed);
                    let frames = frames(&engine, &event, &broker.clients(), true).await;
                    let _guard = lock(&broker.dispatch);
                    for (frame, clients) in &frames {
                        for c in clients {
                            broker.push(c, frame);
                        }
                    }
                    broker.dispatched.store(event.seq, Ordering::Relaxed);
                }
                Some(Err(lagged)) => {
                    // This task fell behind the hub: take the rest from what it keeps.
                    sub = match engine.events().subscribe_after(lagged.after).await {
                        Ok(s) => s,
                        Err(gone) => {
                            tracing::warn!(error = %gone, "realtime fell behind; clients told to reload");
                            reset_all(&broker, gone.latest);
                            engine.events().subscribe()
                        }
                    };
                }
            }
        }
    });
}

pub(crate) fn lock(m: &std::sync::Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// `PB_RESET`: events after `after` cannot be replayed; the client must read again.
pub(crate) fn reset_frame(client: &str, after: u64, latest: u64) -> Arc<Frame> {
    let data = serde_json::json!({"clientId": client, "after": after, "latest": latest});
    Frame::new(
        0,
        &latest.to_string(),
        Arc::from("PB_RESET"),
        Bytes::from(data.to_string()),
    )
}

fn reset_all(broker: &Broker, latest: u64) {
    broker.counters.resets.fetch_add(1, Ordering::Relaxed);
    let dispatched = broker.dispatched.load(Ordering::Relaxed);
    for c in broker.clients() {
        // A reset is not a topic: queued directly, after what the client already has.
        broker.offer(&c, &reset_frame(&c.id, dispatched, latest));
    }
    broker.dispatched.store(latest, Ordering::Relaxed);
}

/// Subscribers that would see the same thing: one topic (options included), one caller.
type Group = (Arc<Topic>, Arc<ClientAuth>, Vec<Arc<Client>>);

/// The frames `event` makes for `clients`, each with the clients that receive it.
pub(crate) async fn frames(
    engine: &Engine,
    event: &Event,
    clients: &[Arc<Client>],
    live: bool,
) -> Vec<(Arc<Frame>, Vec<Arc<Client>>)> {
    if event.action == Action::Collections || clients.is_empty() {
        return Vec::new();
    }
    let Ok(c) = engine.collection(&event.collection_id).await else {
        return Vec::new();
    };
    let record = event.record();
    let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
    if live && c.kind == CollectionType::Auth {
        rebind_auth(&c, event, id, clients);
    }
    // Group the subscriptions this event concerns by what they would see.
    let mut groups: HashMap<(Arc<str>, Arc<str>), Group> = HashMap::new();
    for client in clients {
        let st = client.state();
        for t in st.topics.iter().filter(|t| t.matches(&c.name, &c.id, id)) {
            groups
                .entry((st.auth.key.clone(), t.raw.clone()))
                .or_insert_with(|| (t.clone(), st.auth.clone(), Vec::new()))
                .2
                .push(client.clone());
        }
    }
    let c = &c;
    futures_util::stream::iter(groups.into_values())
        .map(|(topic, auth, members)| async move {
            render(engine, c, event, &topic, &auth)
                .await
                .map(|f| (f, members))
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

/// The frame one group receives, or `None` when its rule or filter refuses the record.
async fn render(
    engine: &Engine,
    c: &Collection,
    event: &Event,
    topic: &Topic,
    auth: &ClientAuth,
) -> Option<Arc<Frame>> {
    let req = RequestInfo {
        auth: auth.auth.clone(),
        auth_record: auth.record.clone(),
        query: topic.query.clone(),
        headers: topic.headers.clone(),
        method: "GET".into(),
        ..RequestInfo::default()
    };
    let rule = match topic.target {
        Target::All => EventRule::List,
        Target::Record(_) => EventRule::View,
    };
    let record = event.record();
    match engine
        .event_visible(c, record, rule, topic.option("filter"), &req)
        .await
    {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            tracing::warn!(error = %e, collection = %c.name, "realtime rule check failed");
            return None;
        }
    }
    let view = match engine
        .event_view(
            c,
            record,
            topic.option("expand"),
            topic.option("fields"),
            &req,
        )
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, collection = %c.name, "realtime record view failed");
            return None;
        }
    };
    let mut data = b"{\"record\":".to_vec();
    serde_json::to_writer(&mut data, &view).ok()?;
    data.extend_from_slice(b",\"action\":\"");
    data.extend_from_slice(event.action.as_str().as_bytes());
    data.extend_from_slice(b"\"}");
    Some(Frame::new(
        event.seq,
        &event.seq.to_string(),
        topic.raw.clone(),
        Bytes::from(data),
    ))
}

/// An auth record changed: clients signed in as it see its new values in `@request.auth.*`;
/// once it is deleted they are guests (PocketBase does the same).
fn rebind_auth(c: &Collection, event: &Event, id: &str, clients: &[Arc<Client>]) {
    for client in clients {
        let mut st = client.state();
        if !st.auth.is(&c.id, id) {
            continue;
        }
        st.auth = Arc::new(match event.action {
            Action::Delete => ClientAuth::default(),
            _ => {
                let mut record = event.record().clone();
                for f in c.fields.iter().filter(|f| f.hidden) {
                    record.remove(&f.name);
                }
                ClientAuth::new(st.auth.auth.clone(), Some(record))
            }
        });
    }
}

/// Marks `client` as resuming after `after` (the caller holds `dispatch`, and has just set its
/// topics): live frames for it are held back from now on. Returns where the replay starts and
/// the last event the live path has handled.
pub(crate) fn begin_replay(broker: &Broker, client: &Client, after: u64) -> (u64, u64) {
    broker.counters.resumes.fetch_add(1, Ordering::Relaxed);
    let mut st = client.state();
    st.held = Some(std::collections::VecDeque::new());
    (
        after.max(st.last_queued),
        broker.dispatched.load(Ordering::Relaxed),
    )
}

/// Replays the events in `(from, until]` for one client, then releases the live frames held
/// back meanwhile. Outside what is kept (or after a number never issued), the client gets
/// `PB_RESET` instead.
pub(crate) async fn replay(
    broker: Arc<Broker>,
    engine: Arc<Engine>,
    client: Arc<Client>,
    from: u64,
    until: u64,
) {
    match engine.events().subscribe_after(from).await {
        Ok(sub) => replay_range(&broker, &engine, &client, sub, until).await,
        Err(gone) => {
            broker.counters.resets.fetch_add(1, Ordering::Relaxed);
            let _ = client
                .send(reset_frame(&client.id, from, gone.latest))
                .await;
        }
    }
    // Release what was held, until nothing is left to release.
    loop {
        let batch = {
            let _guard = lock(&broker.dispatch);
            let mut st = client.state();
            match st.held.as_mut() {
                Some(h) if !h.is_empty() => std::mem::take(h),
                _ => {
                    st.held = None;
                    return;
                }
            }
        };
        for frame in batch {
            if !client.send(frame).await {
                return;
            }
            broker.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn replay_range(
    broker: &Broker,
    engine: &Engine,
    client: &Arc<Client>,
    mut sub: Subscription,
    until: u64,
) {
    let one = [client.clone()];
    while sub.last_seq() < until {
        let Some(Ok(event)) = sub.recv().await else {
            return;
        };
        if event.seq > until {
            return;
        }
        for (frame, _) in frames(engine, &event, &one, false).await {
            let seq = frame.seq;
            if !client.send(frame).await {
                return;
            }
            broker.counters.delivered.fetch_add(1, Ordering::Relaxed);
            let mut st = client.state();
            st.last_queued = st.last_queued.max(seq);
        }
    }
}

/// The auth a subscribe request binds to its client.
pub(crate) async fn client_auth(engine: &Engine, auth: Auth) -> ClientAuth {
    let info = engine
        .request_info(
            auth,
            "GET",
            serde_json::Map::new(),
            serde_json::Map::new(),
            serde_json::Map::new(),
        )
        .await;
    ClientAuth::new(info.auth, info.auth_record)
}
