//! The PostgreSQL outbox: events that cross backends.
//!
//! `LISTEN/NOTIFY` alone loses events (payloads are capped at 8,000 bytes, a listener that is
//! disconnected misses what was sent meanwhile, and a transaction holding a NOTIFY takes a
//! global lock at commit). So, as Mercure's and Centrifugo's PostgreSQL transports do, each write
//! transaction appends its events to `_events` itself, unnumbered. After the commit, a
//! numbering transaction, outside any user transaction, gives the committed rows their delivery
//! numbers and sends a tiny NOTIFY with the highest. Numbering transactions take the one row of
//! `_events_head` for update, so they run one at a time and each sees every commit before it:
//! numbers follow commit order, and a reader can never see a number while a lower one is still
//! to come (the trap of numbering by a sequence at insert time, where a transaction holding 41
//! may commit after one holding 42). Every backend runs the numbering after its own commits and
//! once a second, so a backend that dies between its commit and its numbering leaves nothing
//! behind.
//!
//! Each backend's listener reads `seq > last_seen` whenever it is notified, every second, and
//! after reconnecting, so payloads of any size cross and a reconnect fills its own gap. The
//! outbox is pruned as a ring (`events.keep_seconds`, `events.keep_count`), which also serves
//! subscribers resuming from a number memory no longer holds.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use pier_storage::{Conn, StorageError, Store, Value as Db};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{Change, Event, Events};

/// The channel the numbering transaction notifies.
const CHANNEL: &str = "pier_events";
/// How often the numbering and the listener look even when nothing told them to.
const TICK: Duration = Duration::from_secs(1);
/// Rows read or numbered per statement.
const CHUNK: i64 = 1000;
/// How often delivered events past the ring's bounds are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

pub(super) struct Outbox {
    store: Store,
    poke: Notify,
}

/// The highest number handed out so far.
pub(super) async fn head(store: &Store) -> Result<u64, StorageError> {
    let rows = store
        .query("SELECT seq FROM _events_head WHERE id = 1", vec![])
        .await?;
    Ok(rows
        .scalar()
        .and_then(Db::as_i64)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0))
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Outbox {
    pub(super) fn new(store: Store) -> Outbox {
        Outbox {
            store,
            poke: Notify::new(),
        }
    }

    /// Appends `changes` to the outbox inside the write transaction `tx`.
    pub(super) async fn insert(
        &self,
        tx: &mut dyn Conn,
        changes: &[Change],
    ) -> Result<(), StorageError> {
        let now = unix_ms();
        for c in changes {
            let mut v = json!({
                "action": c.action.as_str(),
                "collectionId": c.collection_id,
                "collectionName": c.collection_name,
            });
            if let Some(r) = &c.record {
                v["record"] = Value::Object(r.json().clone());
            }
            if let Some(p) = &c.previous {
                v["previous"] = Value::Object(p.json().clone());
            }
            tx.execute(
                "INSERT INTO _events (created_at, payload) VALUES ($1, $2)",
                &[Db::Integer(now), Db::Text(v.to_string())],
            )
            .await?;
        }
        Ok(())
    }

    /// Asks for a numbering round now (a write has committed).
    pub(super) fn poke(&self) {
        self.poke.notify_one();
    }

    /// Starts the numbering and the listener; both stop once `hub` is gone.
    pub(super) fn spawn(self: &Arc<Self>, hub: Weak<Events>, keep: Duration, keep_count: u64) {
        let numbering = self.clone();
        let h = hub.clone();
        tokio::spawn(async move {
            let mut pruned = std::time::Instant::now();
            while h.strong_count() > 0 {
                let _ = tokio::time::timeout(TICK, numbering.poke.notified()).await;
                if let Err(error) = numbering.number().await {
                    tracing::warn!(%error, "numbering outbox events failed; retrying");
                }
                if pruned.elapsed() > PRUNE_EVERY {
                    pruned = std::time::Instant::now();
                    if let Err(error) = numbering.prune(keep, keep_count).await {
                        tracing::warn!(%error, "pruning the outbox failed");
                    }
                }
            }
        });
        let listening = self.clone();
        tokio::spawn(async move { listening.listen(hub).await });
    }

    /// One numbering transaction: committed, unnumbered rows get the next numbers in the order
    /// they were written, then one NOTIFY carries the highest.
    async fn number(&self) -> Result<(), StorageError> {
        self.store
            .write(|tx| {
                Box::pin(async move {
                    let pending = tx
                        .query("SELECT 1 FROM _events WHERE seq IS NULL LIMIT 1", &[])
                        .await?;
                    if pending.is_empty() {
                        return Ok(());
                    }
                    // Taking the head row in its own statement makes every later statement of
                    // this transaction see the commits of the numbering before it.
                    let head = tx
                        .query("SELECT seq FROM _events_head WHERE id = 1 FOR UPDATE", &[])
                        .await?
                        .scalar()
                        .and_then(Db::as_i64)
                        .unwrap_or(0);
                    let top = tx
                        .query(
                            "WITH pending AS (
                                 SELECT id, row_number() OVER (ORDER BY id) AS n FROM _events
                                 WHERE seq IS NULL ORDER BY id LIMIT $2
                             ), numbered AS (
                                 UPDATE _events e SET seq = $1 + pending.n FROM pending
                                 WHERE e.id = pending.id RETURNING e.seq
                             )
                             SELECT COALESCE(MAX(seq), $1) FROM numbered",
                            &[Db::Integer(head), Db::Integer(CHUNK * 10)],
                        )
                        .await?
                        .scalar()
                        .and_then(Db::as_i64)
                        .unwrap_or(head);
                    if top > head {
                        tx.execute(
                            "UPDATE _events_head SET seq = $1 WHERE id = 1",
                            &[Db::Integer(top)],
                        )
                        .await?;
                        tx.query(
                            "SELECT pg_notify($1, $2)",
                            &[Db::Text(CHANNEL.into()), Db::Text(top.to_string())],
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn prune(&self, keep: Duration, keep_count: u64) -> Result<(), StorageError> {
        let cutoff = unix_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX / 2);
        let head = i64::try_from(head(&self.store).await?).unwrap_or(i64::MAX);
        let below = head - i64::try_from(keep_count).unwrap_or(i64::MAX / 2);
        self.store
            .execute(
                "DELETE FROM _events WHERE seq IS NOT NULL AND (created_at < $1 OR seq <= $2)",
                vec![Db::Integer(cutoff), Db::Integer(below)],
            )
            .await
            .map(|_| ())
    }

    /// Delivered events after `after`, up to `limit` of them; `None` when the outbox no
    /// longer holds the first of them or there are more than `limit`.
    pub(super) async fn since(&self, after: u64, limit: usize) -> Option<Vec<Event>> {
        let oldest = self.oldest().await?;
        if after.saturating_add(1) < oldest {
            return None;
        }
        let events = self
            .read(after, i64::try_from(limit).ok()? + 1)
            .await
            .ok()?;
        (events.len() <= limit).then_some(events)
    }

    /// The last number the database has issued (delivered here or not yet).
    pub(super) async fn issued(&self) -> Option<u64> {
        head(&self.store).await.ok()
    }

    /// The oldest number the outbox still holds.
    pub(super) async fn oldest(&self) -> Option<u64> {
        let rows = self
            .store
            .query(
                "SELECT COALESCE(MIN(seq), (SELECT seq + 1 FROM _events_head WHERE id = 1)) \
                 FROM _events WHERE seq IS NOT NULL",
                vec![],
            )
            .await
            .ok()?;
        rows.scalar()
            .and_then(Db::as_i64)
            .and_then(|n| u64::try_from(n).ok())
    }

    async fn read(&self, after: u64, limit: i64) -> Result<Vec<Event>, StorageError> {
        let rows = self
            .store
            .query(
                "SELECT seq, payload FROM _events WHERE seq > $1 ORDER BY seq LIMIT $2",
                vec![
                    Db::Integer(i64::try_from(after).unwrap_or(i64::MAX)),
                    Db::Integer(limit),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let seq = u64::try_from(r[0].as_i64()?).ok()?;
                let event = Event::from_json(seq, r[1].as_str()?);
                if event.is_none() {
                    tracing::warn!(seq, "unreadable outbox event skipped");
                }
                event
            })
            .collect())
    }

    /// Delivers everything numbered after the last delivered event.
    async fn catch_up(&self, hub: &Events) -> Result<(), StorageError> {
        loop {
            let events = self.read(hub.last_seq(), CHUNK).await?;
            let full = events.len() as i64 == CHUNK;
            for e in events {
                hub.deliver(e);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Listens, reconnecting with a growing pause when the connection is lost; each
    /// (re)connection first catches up on what it missed.
    async fn listen(&self, hub: Weak<Events>) {
        let mut pause = Duration::from_millis(50);
        while hub.strong_count() > 0 {
            let mut listener = match self.store.listen(CHANNEL).await {
                Ok(l) => l,
                Err(error) => {
                    tracing::warn!(%error, "outbox listener cannot connect; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            pause = Duration::from_millis(50);
            if let Some(h) = hub.upgrade() {
                h.listening.store(true, Ordering::Relaxed);
            }
            loop {
                let Some(h) = hub.upgrade() else { return };
                if let Err(error) = self.catch_up(&h).await {
                    tracing::warn!(%error, "reading the outbox failed");
                }
                drop(h);
                match tokio::time::timeout(TICK, listener.next()).await {
                    Ok(Some(_)) | Err(_) => {}
                    Ok(None) => break,
                }
            }
            if let Some(h) = hub.upgrade() {
                h.listening.store(false, Ordering::Relaxed);
            }
            tracing::info!("outbox listener disconnected; reconnecting");
        }
    }
}
