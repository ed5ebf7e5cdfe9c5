//! The records engine: the [`Engine`] itself (construction, the store it holds, the collection
//! cache and its reloads) and the few helpers every room shares. What the engine does lives in
//! the rooms beside it: `collections/` (definitions and schema changes), `records/` (record
//! CRUD, rules, expand, field projection), `auth/` (passwords, tokens, sign-in, superusers) and
//! `events` (record events after commit).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use pier_core::time::format_datetime;
use pier_filter::FilterError;
use pier_storage::{Dialect, Store};
use serde_json::{Map, json};

use crate::auth;
use crate::collections::superusers_collection;
use crate::error::RecordError;
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
/// (PostgreSQL): their schema and rule changes are seen within this delay.
const SHARED_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The records engine. Cheap to share behind an `Arc`.
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) limiter: Arc<crate::auth::FailureLimiter>,
    cache: Arc<RwLock<Cache>>,
    /// Verified against when an identity is unknown, so that both cases cost the same.
    pub(crate) dummy_hash: String,
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
        let dummy_hash = tokio::task::spawn_blocking(|| auth::hash_password(&ids::secret(24)))
            .await
            .map_err(|e| RecordError::BadRequest(e.to_string()))?
            .map_err(RecordError::BadRequest)?;
        let engine = Engine {
            store,
            limiter: Arc::default(),
            cache: Arc::default(),
            dummy_hash,
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
            dummy_hash: self.dummy_hash.clone(),
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
            dummy_hash: self.dummy_hash.clone(),
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
        self.cache
            .read()
            .map(|c| c.loaded_at.is_none_or(|t| t.elapsed() > SHARED_CACHE_TTL))
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
