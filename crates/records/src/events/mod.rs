//! Record events after commit: every write path stages one [`Event`] per changed record inside
//! its transaction, and subscribers receive them only once that transaction has committed, in
//! commit order, each with a sequence number that only grows.
//!
//! On one node the events stay in this process: a write registers its events with
//! [`pier_storage::Conn::after_commit`], and the storage runs that in commit order (on SQLite,
//! on the writer thread), where they are numbered. Numbers start from the process's start time
//! in microseconds, so they keep growing across restarts. With PostgreSQL and the outbox on,
//! the events go through the `_events` table instead (see `outbox`), so every backend on the
//! database delivers every backend's events, numbered in commit order by the database.
//!
//! Subscribers get a bounded channel ([`Subscription`]): one that falls more than
//! `events.subscriber_buffer` events behind is told it lagged and can resume from the last
//! number it saw; writers never wait for it. The last `events.ring_size` events stay in memory
//! (on PostgreSQL the outbox holds more) so that "everything after N" can be answered, or
//! refused with [`Gone`] when N is older than what is kept.

mod outbox;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pier_config::EventsConfig;
use pier_storage::{Conn, Dialect, Rows, StorageError, Store};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::auth::Auth;
use crate::engine::Engine;
use crate::model::Collection;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Create,
    Update,
    Delete,
    /// A collection definition changed (its `record` is empty): caches must reload.
    Collections,
}

impl Action {
    /// The lowercase name, as PocketBase's realtime messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Collections => "collections",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "collections" => Action::Collections,
            _ => return None,
        })
    }
}

/// A record as stored: a row read back by the write (turned into JSON only when someone asks),
/// or JSON that came through the outbox.
pub(crate) enum Payload {
    Row {
        collection: Arc<Collection>,
        rows: Arc<Rows>,
        index: usize,
        json: OnceLock<Map<String, Value>>,
    },
    Json(Map<String, Value>),
}

impl Payload {
    /// Row `index` of `rows`, a result of `collection`'s columns.
    pub(crate) fn row(collection: &Arc<Collection>, rows: &Arc<Rows>, index: usize) -> Payload {
        Payload::Row {
            collection: collection.clone(),
            rows: rows.clone(),
            index,
            json: OnceLock::new(),
        }
    }

    fn json(&self) -> &Map<String, Value> {
        match self {
            Payload::Json(m) => m,
            Payload::Row {
                collection,
                rows,
                index,
                json,
            } => json.get_or_init(|| {
                let row = rows.iter().nth(*index).unwrap_or_default();
                // As stored: hidden fields and email included (never the password hash or the
                // token key); each subscriber's own view is cut from it.
                let everything = Auth::Superuser { id: String::new() };
                Engine::row_json(collection, rows, row, &everything)
            }),
        }
    }
}

/// One change, staged inside a write's transaction and numbered once it commits.
pub(crate) struct Change {
    pub(crate) action: Action,
    pub(crate) collection_id: String,
    pub(crate) collection_name: String,
    pub(crate) record: Option<Payload>,
    pub(crate) previous: Option<Payload>,
}

impl Change {
    /// A change of one record of `c`.
    pub(crate) fn record(
        action: Action,
        c: &Collection,
        record: Payload,
        previous: Option<Payload>,
    ) -> Change {
        Change {
            action,
            collection_id: c.id.clone(),
            collection_name: c.name.clone(),
            record: Some(record),
            previous,
        }
    }

    /// The definition of `c` changed (or `c` was deleted).
    pub(crate) fn collections(c: &Collection) -> Change {
        Change {
            action: Action::Collections,
            collection_id: c.id.clone(),
            collection_name: c.name.clone(),
            record: None,
            previous: None,
        }
    }
}

/// A committed change, as subscribers receive it.
pub struct Event {
    /// Grows with every event; later commits have larger numbers.
    pub seq: u64,
    pub action: Action,
    pub collection_id: String,
    pub collection_name: String,
    record: Option<Payload>,
    previous: Option<Payload>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("seq", &self.seq)
            .field("action", &self.action)
            .field("collection", &self.collection_name)
            .field("id", &self.record().get("id"))
            .finish_non_exhaustive()
    }
}

static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();

impl Event {
    /// The record as stored after the change (for a delete: as it was), before any
    /// per-client projection. Empty for [`Action::Collections`].
    pub fn record(&self) -> &Map<String, Value> {
        match &self.record {
            Some(p) => p.json(),
            None => EMPTY.get_or_init(Map::new),
        }
    }

    /// The record before the change: for updates and deletes (a delete's is its record).
    pub fn previous(&self) -> Option<&Map<String, Value>> {
        match self.action {
            Action::Delete => Some(self.record()),
            _ => self.previous.as_ref().map(Payload::json),
        }
    }

    /// The event as JSON: `{seq, action, collectionId, collectionName, record, previous?}`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "seq": self.seq,
            "action": self.action.as_str(),
            "collectionId": self.collection_id,
            "collectionName": self.collection_name,
            "record": self.record(),
        });
        if let Some(p) = self.previous() {
            v["previous"] = Value::Object(p.clone());
        }
        v
    }

    fn from_change(seq: u64, c: Change) -> Event {
        Event {
            seq,
            action: c.action,
            collection_id: c.collection_id,
            collection_name: c.collection_name,
            record: c.record,
            previous: c.previous,
        }
    }

    /// Reads an event back from its outbox JSON.
    fn from_json(seq: u64, text: &str) -> Option<Event> {
        let mut v: Map<String, Value> = serde_json::from_str(text).ok()?;
        let text = |v: &Map<String, Value>, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let object = |v: &mut Map<String, Value>, k: &str| match v.remove(k) {
            Some(Value::Object(m)) => Some(Payload::Json(m)),
            _ => None,
        };
        Some(Event {
            seq,
            action: Action::parse(v.get("action")?.as_str()?)?,
            collection_id: text(&v, "collectionId"),
            collection_name: text(&v, "collectionName"),
            record: object(&mut v, "record"),
            previous: object(&mut v, "previous"),
        })
    }
}

/// A subscriber asked for events after a number this process no longer holds (or never
/// issued): it must resynchronise from the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events after {asked} are no longer kept (oldest kept: {oldest}, latest: {latest})")]
pub struct Gone {
    pub asked: u64,
    /// The oldest number still kept.
    pub oldest: u64,
    /// The latest number issued.
    pub latest: u64,
}

/// The subscriber fell behind by more than its buffer: events after `after` were dropped for
/// it. Resume with [`Events::subscribe_after`]`(after)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the subscriber lagged; resume after {after}")]
pub struct Lagged {
    pub after: u64,
}

struct Ring {
    /// The number of the last event delivered.
    last: u64,
    events: VecDeque<Arc<Event>>,
}

/// The event hub of one process: shared by every [`Engine`] made from the same one.
pub struct Events {
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Arc<Event>>,
    settings: EventsConfig,
    /// PostgreSQL with the outbox on: events go through the `_events` table.
    outbox: Option<Arc<outbox::Outbox>>,
    /// True while the outbox listener is connected (PostgreSQL).
    listening: AtomicBool,
    /// Told when another backend changed a collection definition.
    on_collections: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Told, once a write of this process commits, which files it took away.
    on_files_removed: OnceLock<FilesSink>,
}

/// Receives the files a committed write took away (on the writer's thread: it must not block).
pub type FilesSink = Arc<dyn Fn(Vec<crate::RemovedFile>) + Send + Sync>;

impl Events {
    /// The hub for `store`. On PostgreSQL with the outbox on, it starts the outbox's
    /// numbering and listening tasks (which stop once the hub is dropped).
    pub(crate) async fn start(
        store: &Store,
        settings: EventsConfig,
    ) -> Result<Arc<Events>, StorageError> {
        let shared = store.dialect() == Dialect::Postgres && settings.outbox;
        let first = if shared {
            outbox::head(store).await?
        } else {
            // Numbers keep growing across restarts: they start from the time.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
        };
        let (tx, _) = broadcast::channel(settings.subscriber_buffer.max(1));
        let events = Arc::new(Events {
            ring: Mutex::new(Ring {
                last: first,
                events: VecDeque::with_capacity(settings.ring_size.min(1024)),
            }),
            tx,
            outbox: shared.then(|| Arc::new(outbox::Outbox::new(store.clone()))),
            settings,
            listening: AtomicBool::new(false),
            on_collections: OnceLock::new(),
            on_files_removed: OnceLock::new(),
        });
        if let Some(o) = &events.outbox {
            o.spawn(
                Arc::downgrade(&events),
                events.settings.keep,
                events.settings.keep_count,
            );
        }
        Ok(events)
    }

    /// Stages `changes` inside the write transaction `tx`: they are delivered once it commits,
    /// and never if it rolls back.
    ///
    /// # Errors
    /// The outbox insert failed (the write then fails as a whole).
    pub(crate) async fn stage(
        self: &Arc<Self>,
        tx: &mut dyn Conn,
        changes: Vec<Change>,
    ) -> Result<(), StorageError> {
        if changes.is_empty() {
            return Ok(());
        }
        // Files are deleted by the process that wrote, exactly once, after the commit.
        if let Some(sink) = self.on_files_removed.get() {
            let removed = crate::records::removed_files(&changes);
            if !removed.is_empty() {
                let sink = sink.clone();
                tx.after_commit(Box::new(move || sink(removed)));
            }
        }
        match &self.outbox {
            Some(o) => {
                o.insert(tx, &changes).await?;
                let o = o.clone();
                tx.after_commit(Box::new(move || o.poke()));
            }
            None => {
                let hub = self.clone();
                tx.after_commit(Box::new(move || hub.publish(changes)));
            }
        }
        Ok(())
    }

    /// Numbers committed changes and hands them to the subscribers (one node).
    fn publish(&self, changes: Vec<Change>) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        for c in changes {
            ring.last += 1;
            let event = Arc::new(Event::from_change(ring.last, c));
            self.keep(&mut ring, event);
        }
    }

    /// Hands over an event numbered by the outbox; one already delivered is skipped.
    fn deliver(&self, event: Event) {
        let seen = |ring: &Ring| event.seq <= ring.last;
        if event.action == Action::Collections {
            // The cache forgets the old definition before anyone hears of the new one, so a
            // subscriber that reads the collection on this event sees the change (outside the
            // ring's lock; only the listener task delivers, so nothing slips in between).
            if self.ring.lock().map_or(true, |r| seen(&r)) {
                return;
            }
            if let Some(f) = self.on_collections.get() {
                f();
            }
        }
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        if seen(&ring) {
            return;
        }
        ring.last = event.seq;
        self.keep(&mut ring, Arc::new(event));
    }

    fn keep(&self, ring: &mut Ring, event: Arc<Event>) {
        if ring.events.len() >= self.settings.ring_size {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // No subscriber is not an error; a full channel drops its oldest for the slowest.
        let _ = self.tx.send(event);
    }

    /// The number of the last event delivered here.
    pub fn last_seq(&self) -> u64 {
        self.ring.lock().map(|r| r.last).unwrap_or(0)
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> Subscription {
        let ring = self.ring.lock();
        let last = ring.as_ref().map(|r| r.last).unwrap_or(0);
        Subscription {
            rx: self.tx.subscribe(),
            backlog: VecDeque::new(),
            last,
        }
    }

    /// Every event after number `after`, then every new one: from memory, or on PostgreSQL
    /// from the outbox when memory no longer holds them.
    ///
    /// # Errors
    /// [`Gone`] when events after `after` are no longer kept, or `after` was never issued.
    pub async fn subscribe_after(&self, after: u64) -> Result<Subscription, Gone> {
        let (rx, backlog, oldest, last) = {
            let ring = self.ring.lock().map_err(|_| Gone {
                asked: after,
                oldest: 0,
                latest: 0,
            })?;
            let oldest = ring.events.front().map_or(ring.last + 1, |e| e.seq);
            let backlog: VecDeque<Arc<Event>> = ring
                .events
                .iter()
                .filter(|e| e.seq > after)
                .cloned()
                .collect();
            (self.tx.subscribe(), backlog, oldest, ring.last)
        };
        let gone = |oldest: u64| Gone {
            asked: after,
            oldest,
            latest: last,
        };
        if after > last {
            // With the outbox, a number may be issued by the database before this process has
            // delivered it (its own writes come back through the listener too): the outbox has
            // what follows. Anything else past the last number was never issued.
            let issued = match &self.outbox {
                Some(o) => o.issued().await,
                None => None,
            };
            if issued.is_none_or(|h| after > h) {
                return Err(gone(oldest));
            }
        } else if after.saturating_add(1) >= oldest {
            return Ok(Subscription {
                rx,
                backlog,
                last: after,
            });
        }
        // Older than memory, or issued but not delivered here yet: the outbox holds them.
        let Some(o) = &self.outbox else {
            return Err(gone(oldest));
        };
        let most = usize::try_from(self.settings.keep_count).unwrap_or(usize::MAX);
        match o.since(after, most.max(self.settings.ring_size)).await {
            Some(events) => Ok(Subscription {
                rx,
                backlog: events.into_iter().map(Arc::new).collect(),
                last: after,
            }),
            None => {
                // Pruned, or more than a subscriber may be handed at once.
                let floor = last.saturating_sub(most.max(self.settings.ring_size) as u64) + 1;
                Err(gone(o.oldest().await.unwrap_or(oldest).max(floor)))
            }
        }
    }

    /// True when another backend's collection changes reach this one as events (PostgreSQL
    /// with the outbox listener connected).
    pub(crate) fn shares_collection_changes(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Runs `f` with the files each committed write of this process took away (replaced or
    /// removed from a file field, or deleted with their record, cascades included).
    pub fn on_files_removed(&self, f: FilesSink) {
        let _ = self.on_files_removed.set(f);
    }

    /// Runs `f` whenever an outbox event says a collection definition changed.
    pub(crate) fn on_collections(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_collections.set(f);
    }
}

/// One subscriber's view of the events: a backlog (when it resumed), then live events.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    backlog: VecDeque<Arc<Event>>,
    /// The last number handed out; nothing at or below it is handed out again.
    last: u64,
}

impl Subscription {
    /// The next event. `None` once the hub is gone.
    ///
    /// # Errors
    /// [`Lagged`] when the subscriber fell behind its buffer.
    pub async fn recv(&mut self) -> Option<Result<Arc<Event>, Lagged>> {
        loop {
            let next = match self.backlog.pop_front() {
                Some(e) => e,
                None => match self.rx.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some(Err(Lagged { after: self.last }));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            if next.seq > self.last {
                self.last = next.seq;
                return Some(Ok(next));
            }
        }
    }

    /// The number of the last event received.
    pub fn last_seq(&self) -> u64 {
        self.last
    }
}
