//! The records engine: the [`Engine`] itself (construction, the store it holds, the collection
//! cache and its reloads) and the few helpers every room shares. What the engine does lives in
//! the rooms beside it: `collections/` (definitions and schema changes), `records/` (record
//! CRUD, rules, expand, field projection), `auth/` (passwords, tokens, sign-in, superusers) and
//! `events` (record events after commit).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use pier_config::EventsConfig;
use pier_core::time::format_datetime;
use pier_filter::FilterError;
use pier_storage::{Dialect, Rows, Store};
use serde_json::{Map, json};

use crate::auth;
use crate::collections::superusers_collection;
use crate::error::RecordError;
use crate::events::{Change, Events, Payload};
use crate::ids;
use crate::model::Collection;
use crate::values::Invalid;

#[derive(Default, Clone)]
struct Cache {
    by_name: HashMap<String, Arc<Collection>>,
    by_id: HashMap<String, Arc<Collection>>,
    loaded_at: Option<std::time::Instant>,
}

/// How stale the collection cache may get when other processes share the database
/// (PostgreSQL) and their changes cannot reach this one as events (the outbox is off or its
/// listener is disconnected): their schema and rule changes are seen within this delay.
const SHARED_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The records engine. Cheap to share behind an `Arc`.
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) limiter: Arc<crate::auth::FailureLimiter>,
    cache: Arc<RwLock<Cache>>,
    /// Record events after commit, shared by every engine made from this one.
    pub(crate) events: Arc<Events>,
    /// Verified against when an identity is unknown, so that both cases cost the same.
    pub(crate) dummy_hash: String,
    /// Rule queries run for realtime events (a metric).
    pub(crate) rule_queries: Arc<std::sync::atomic::AtomicU64>,
    /// When this process last wrote each API key's `lastUsed`.
    pub(crate) key_uses: Arc<crate::auth::KeyUses>,
}

pub(crate) fn now() -> String {
    format_datetime(SystemTime::now())
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn validation(message: &str, errors: Vec<(String, Invalid)>) -> RecordError {
    let mut fields = Map::new();
    for (name, e) in errors {
        let mut v = json!({"code": e.code, "message": e.message});
        if let Some(p) = e.params {
            v["params"] = p;
        }
        fields.insert(name, v);
    }
    RecordError::Validation {
        message: message.to_owned(),
        fields,
    }
}

/// A filter error as the API reports it: PocketBase answers any bad filter with the same 400.
pub(crate) fn filter_error(e: &FilterError, client: bool) -> RecordError {
    tracing::debug!(error = %e, client, "filter refused");
    RecordError::BadRequest("Something went wrong while processing your request.".into())
}

impl Engine {
    /// Creates the engine: makes sure the `_superusers` collection is registered and loads every
    /// collection definition. Run it after the migrations.
    ///
    /// # Errors
    /// When the database cannot be read or written.
    pub async fn new(store: Store) -> Result<Engine, RecordError> {
        Engine::open(store, EventsConfig::default()).await
    }

    /// Like [`Engine::new`], with the event settings of the configuration (`[events]`).
    ///
    /// # Errors
    /// When the database cannot be read or written.
    pub async fn open(store: Store, events: EventsConfig) -> Result<Engine, RecordError> {
        let events = Events::start(&store, events).await?;
        let dummy_hash = tokio::task::spawn_blocking(|| auth::hash_password(&ids::secret(24)))
            .await
            .map_err(|e| RecordError::BadRequest(e.to_string()))?
            .map_err(RecordError::BadRequest)?;
        let cache: Arc<RwLock<Cache>> = Arc::default();
        // Another backend changed a definition: the next lookup reloads them.
        let stale = Arc::downgrade(&cache);
        events.on_collections(Box::new(move || {
            if let Some(cache) = stale.upgrade()
                && let Ok(mut c) = cache.write()
            {
                c.loaded_at = None;
            }
        }));
        let engine = Engine {
            store,
            limiter: Arc::default(),
            cache,
            events,
            dummy_hash,
            rule_queries: Arc::default(),
            key_uses: Arc::default(),
        };
        let su = superusers_collection();
        let data = serde_json::to_string(&su).unwrap_or_default();
        engine
            .store
            .execute(
                "INSERT INTO _collections (id, name, type, system, data, created, updated)
                 VALUES ($1, $2, 'auth', TRUE, $3, $4, $4) ON CONFLICT DO NOTHING",
                vec![
                    su.id.clone().into(),
                    su.name.clone().into(),
                    data.into(),
                    su.created.clone().into(),
                ],
            )
            .await?;
        engine.reload().await?;
        engine.bootstrap_users().await?;
        Ok(engine)
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The same engine running every call through `store` (a [`pier_storage::Session`]'s, for
    /// a batch), sharing the collection cache and the login limits.
    pub fn scoped(&self, store: Store) -> Engine {
        Engine {
            store,
            limiter: self.limiter.clone(),
            cache: self.cache.clone(),
            events: self.events.clone(),
            dummy_hash: self.dummy_hash.clone(),
            rule_queries: self.rule_queries.clone(),
            key_uses: self.key_uses.clone(),
        }
    }

    /// Like [`Engine::scoped`], with a collection cache of its own: definitions changed inside
    /// a session are seen by it alone until the session commits.
    pub(crate) fn isolated(&self, store: Store) -> Engine {
        let cache = self.cache.read().map(|c| c.clone()).unwrap_or_default();
        Engine {
            store,
            limiter: self.limiter.clone(),
            cache: Arc::new(RwLock::new(cache)),
            events: self.events.clone(),
            dummy_hash: self.dummy_hash.clone(),
            rule_queries: self.rule_queries.clone(),
            key_uses: self.key_uses.clone(),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    pub(crate) async fn reload(&self) -> Result<(), RecordError> {
        let rows = self
            .store
            .query("SELECT data FROM _collections ORDER BY created, id", vec![])
            .await?;
        let mut cache = Cache::default();
        for r in rows.iter() {
            let Some(text) = r[0].as_str() else { continue };
            match serde_json::from_str::<Collection>(text) {
                Ok(c) => {
                    let c = Arc::new(c);
                    cache.by_name.insert(c.name.to_ascii_lowercase(), c.clone());
                    cache.by_id.insert(c.id.clone(), c);
                }
                Err(error) => tracing::error!(%error, "unreadable collection definition skipped"),
            }
        }
        cache.loaded_at = Some(std::time::Instant::now());
        if let Ok(mut c) = self.cache.write() {
            *c = cache;
        }
        Ok(())
    }

    /// True when another process may have changed the collections since the last load. SQLite
    /// is held by one process, whose own changes reload the cache, so it never goes stale.
    fn cache_is_stale(&self) -> bool {
        let by_events = self.events.shares_collection_changes();
        self.cache
            .read()
            .map(|c| {
                c.loaded_at
                    .is_none_or(|t| !by_events && t.elapsed() > SHARED_CACHE_TTL)
            })
            .unwrap_or(true)
    }

    pub(crate) fn cached(&self, id_or_name: &str) -> Option<Arc<Collection>> {
        let cache = self.cache.read().ok()?;
        cache
            .by_id
            .get(id_or_name)
            .or_else(|| cache.by_name.get(&id_or_name.to_ascii_lowercase()))
            .cloned()
    }

    /// A collection by id or name (case-insensitive). Another backend may have created it, so a
    /// miss reloads the definitions once.
    ///
    /// # Errors
    /// [`RecordError::NotFound`].
    pub async fn collection(&self, id_or_name: &str) -> Result<Arc<Collection>, RecordError> {
        if self.dialect() == Dialect::Postgres && self.cache_is_stale() {
            self.reload().await?;
        }
        if let Some(c) = self.cached(id_or_name) {
            return Ok(c);
        }
        self.reload().await?;
        self.cached(id_or_name).ok_or(RecordError::NotFound)
    }

    /// Record events after commit: subscribe here.
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// `c` as the cache shares it, for events, which outlive the request.
    pub(crate) fn shared(&self, c: &Collection) -> Arc<Collection> {
        self.cached(&c.id)
            .filter(|s| s.updated == c.updated && s.name == c.name)
            .unwrap_or_else(|| Arc::new(c.clone()))
    }

    /// One event per row of `rows` (a result of `c`'s columns), `previous` matched by id.
    /// Each event of a many-row result holds its own row, so that events kept for resuming
    /// subscribers keep only what they need.
    pub(crate) fn changes(
        action: crate::events::Action,
        c: &Arc<Collection>,
        rows: &Arc<Rows>,
        previous: Option<&Arc<Rows>>,
    ) -> Vec<Change> {
        let one = |rows: &Arc<Rows>, i: usize| match rows.len() {
            1 => rows.clone(),
            _ => Arc::new(rows.single(i).unwrap_or_default()),
        };
        let id_of = |rows: &Rows, i: usize| {
            rows.column_index("id")
                .and_then(|k| rows.iter().nth(i).and_then(|r| r.get(k)))
                .and_then(|v| v.as_str().map(str::to_owned))
        };
        let mut before = HashMap::new();
        if let Some(p) = previous {
            for i in 0..p.len() {
                if let Some(id) = id_of(p, i) {
                    before.insert(id, one(p, i));
                }
            }
        }
        (0..rows.len())
            .map(|i| {
                let row = one(rows, i);
                // A delete's record is its previous state: `Event::previous` says so.
                let previous = id_of(rows, i)
                    .filter(|_| action != crate::events::Action::Delete)
                    .and_then(|id| before.get(&id))
                    .map(|p| Payload::row(c, p, 0));
                Change::record(action, c, Payload::row(c, &row, 0), previous)
            })
            .collect()
    }

    /// Every collection, oldest first.
    pub fn collections(&self) -> Vec<Arc<Collection>> {
        let mut all: Vec<_> = self
            .cache
            .read()
            .map(|c| c.by_id.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a: &Arc<Collection>, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        all
    }
}
