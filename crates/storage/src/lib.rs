//! pier's storage core: the embedded SQLite engine (the default) and PostgreSQL, behind one
//! interface, plus the migrations runner.
//!
//! # Layout
//! - [`Store`] is a cheap, cloneable handle. [`Store::read`] and [`Store::write`] run a closure
//!   against a [`Conn`] inside one transaction; [`Store::query`] and [`Store::execute`] run one
//!   statement.
//! - SQL is written with PostgreSQL's `$1, $2, …` placeholders for both engines; SQLite gets them
//!   rewritten to `?1, ?2, …`. Values are always bound, never pasted into SQL.
//! - SQLite: one writer thread owns the read-write connection and commits queued writes in groups
//!   (each in its own savepoint, so one failure does not undo the others) to share one fsync;
//!   reader threads own read-only connections. Async callers only ever await a channel.
//! - PostgreSQL: a connection pool, optionally over TLS; [`Store::listen`] opens a connection
//!   of its own for `LISTEN`.
//! - [`Conn::after_commit`]: work a write registers to run once it has committed, in commit
//!   order (record events are published this way).
//!
//! - [`snapshot`] and its siblings: consistent copies of the database for backups, their
//!   checks, and putting one back.
//!
//! This crate knows nothing of HTTP; errors carry a [`pier_core::ErrorKind`].
#![deny(clippy::unwrap_used)]

mod error;
mod migrate;
mod postgres;
mod snapshot;
mod sql;
mod sqlite;
mod value;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pier_config::DatabaseConfig;

pub use error::StorageError;
pub use migrate::{CORE_MIGRATIONS, Migration, MigrationState};
pub use snapshot::{
    DatabaseLock, SnapshotInfo, check_pg_dump, check_pg_restore, check_sqlite, lock_sqlite,
    pg_pier_sessions, restore_postgres, snapshot, snapshot_postgres, snapshot_sqlite, sqlite_files,
};
pub use value::{Rows, Value};

/// Work to run once a transaction has committed (see [`Conn::after_commit`]).
pub type AfterCommit = Box<dyn FnOnce() + Send + Sync>;

/// A boxed, sendable future borrowing from `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Lowercase engine name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A connection inside a transaction, handed to [`Store::read`] and [`Store::write`] closures.
///
/// The closure may await only these methods: on SQLite it runs on the database's own thread.
/// It must not issue `BEGIN`, `COMMIT` or `ROLLBACK` itself; returning an error rolls back.
#[async_trait::async_trait]
pub trait Conn: Send {
    /// The SQL dialect of this connection.
    fn dialect(&self) -> Dialect;
    /// Runs a statement that returns rows.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StorageError>;
    /// Runs a statement and returns the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StorageError>;
    /// Runs several `;`-separated statements without parameters (schema changes).
    async fn execute_script(&mut self, sql: &str) -> Result<(), StorageError>;
    /// Runs `f` once this write has committed and never before: at the end of its
    /// transaction, or of the [`Session`] it runs in. Writes that commit one after another run
    /// their work in that order (on SQLite, on the writer thread, before the writes' callers
    /// are answered), so keep it short. When the write rolls back, `f` is dropped unrun. On a
    /// read-only transaction `f` is dropped.
    fn after_commit(&mut self, f: AfterCommit);
}

/// Gauges and counters of the storage engine, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// `sqlite` or `postgres`.
    pub engine: &'static str,
    /// Writes waiting for the SQLite writer thread.
    pub write_queue: usize,
    /// Reads waiting for a SQLite reader thread.
    pub read_queue: usize,
    /// Open connections (SQLite: readers + writer; PostgreSQL: pool size now).
    pub connections: usize,
    /// Idle pooled connections (PostgreSQL).
    pub idle_connections: usize,
    /// Largest pool size (PostgreSQL) or connection count (SQLite).
    pub max_connections: usize,
    /// Callers waiting for a PostgreSQL connection.
    pub waiting: usize,
    /// SQLite WAL file size in bytes.
    pub wal_bytes: u64,
    /// Transactions committed by the SQLite writer.
    pub commits: u64,
    /// Writes committed by the SQLite writer (greater than `commits` when grouped).
    pub committed_writes: u64,
}

enum Engine {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
    /// A session holding the SQLite writer: every call runs inside its one transaction.
    SqliteSession(flume::Sender<sqlite::SessionCmd>),
    /// A session holding one PostgreSQL connection in one transaction.
    PgSession(postgres::PgSession),
}

/// One transaction spanning many calls: [`Session::store`] is a [`Store`] whose reads see the
/// session's own writes and whose writes commit only with [`Session::commit`]. Dropping a
/// session without committing rolls it back. On SQLite a session holds the single writer, so
/// keep it short (it is rolled back after 30 s without a call).
pub struct Session {
    store: Store,
}

impl Session {
    /// The store to run the session's calls through.
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Commits everything done through the session.
    ///
    /// # Errors
    /// The commit failed; nothing was kept.
    pub async fn commit(self) -> Result<(), StorageError> {
        match &*self.store.engine {
            Engine::SqliteSession(cmds) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                cmds.send(sqlite::SessionCmd::Commit(tx))
                    .map_err(|_| StorageError::closed())?;
                rx.await.map_err(|_| StorageError::closed())?
            }
            Engine::PgSession(s) => s.end(true).await,
            _ => Ok(()),
        }
    }

    /// Discards everything done through the session.
    pub async fn rollback(self) {
        match &*self.store.engine {
            Engine::SqliteSession(cmds) => {
                let _ = cmds.send(sqlite::SessionCmd::Rollback);
            }
            Engine::PgSession(s) => {
                let _ = s.end(false).await;
            }
            _ => {}
        }
    }
}

fn on_session<T, F>(
    cmds: &flume::Sender<sqlite::SessionCmd>,
    f: F,
) -> tokio::sync::oneshot::Receiver<Result<T, StorageError>>
where
    T: Send + 'static,
    F: FnOnce(&mut sqlite::SqliteConn) -> Result<T, StorageError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Box<dyn FnOnce(&mut sqlite::SqliteConn) + Send> = Box::new(move |conn| {
        let _ = tx.send(f(conn));
    });
    // A closed session drops the job, and the receiver reports it.
    let _ = cmds.send(sqlite::SessionCmd::Run(job));
    rx
}

/// A connection of its own that `LISTEN`s on one PostgreSQL channel ([`Store::listen`]).
pub struct Listener {
    notifications: tokio::sync::mpsc::Receiver<String>,
    /// Keeps the connection open; `None` once it ended.
    _client: Option<tokio_postgres::Client>,
}

impl Listener {
    /// The payload of the next notification; `None` once the connection has ended (the server
    /// went away or closed it), after which nothing more arrives: listen again.
    pub async fn next(&mut self) -> Option<String> {
        self.notifications.recv().await
    }
}

/// A handle to the database. Clone it freely.
#[derive(Clone)]
pub struct Store {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect())
            .finish()
    }
}

impl Store {
    /// Opens the configured database. SQLite is opened (and locked against other pier
    /// processes) at once; PostgreSQL connects lazily, so a server that is down now only makes
    /// [`Store::ping`] fail until it is up.
    ///
    /// # Errors
    /// SQLite: the file cannot be opened, is not a database, or is held by another process.
    /// PostgreSQL: the TLS settings are unusable.
    pub async fn open(config: &DatabaseConfig) -> Result<Store, StorageError> {
        let engine = match config {
            DatabaseConfig::Sqlite(c) => {
                let c = c.clone();
                let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&c))
                    .await
                    .map_err(|e| StorageError::Unavailable {
                        message: "database open task failed".into(),
                        source: Some(Box::new(e)),
                    })??;
                Engine::Sqlite(store)
            }
            DatabaseConfig::Postgres(c) => Engine::Postgres(postgres::PgStore::new(c)?),
        };
        Ok(Store {
            engine: Arc::new(engine),
        })
    }

    /// The dialect of the engine.
    pub fn dialect(&self) -> Dialect {
        match &*self.engine {
            Engine::Sqlite(_) | Engine::SqliteSession(_) => Dialect::Sqlite,
            Engine::Postgres(_) | Engine::PgSession(_) => Dialect::Postgres,
        }
    }

    /// Starts a [`Session`]: one transaction for many calls.
    ///
    /// # Errors
    /// The database is unavailable, or this store is already a session.
    pub async fn session(&self) -> Result<Session, StorageError> {
        let engine = match &*self.engine {
            Engine::Sqlite(s) => Engine::SqliteSession(s.session().await?),
            Engine::Postgres(p) => Engine::PgSession(p.session().await?),
            _ => {
                return Err(StorageError::aborted(
                    pier_core::ErrorKind::Internal,
                    "sessions do not nest",
                ));
            }
        };
        Ok(Session {
            store: Store {
                engine: Arc::new(engine),
            },
        })
    }

    /// Runs `f` in a read-only transaction (one consistent snapshot).
    ///
    /// # Errors
    /// What `f` returns, or [`StorageError::Unavailable`] when the database cannot be reached.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>
            + Send
            + 'static,
    {
        match &*self.engine {
            Engine::Sqlite(s) => s.read(f).await,
            Engine::Postgres(p) => p.read(f).await,
            Engine::SqliteSession(cmds) => on_session(cmds, move |c| sqlite::session_read(c, f))
                .await
                .map_err(|_| StorageError::closed())?,
            Engine::PgSession(s) => s.run(f, false).await,
        }
    }

    /// Runs `f` in a read-write transaction: all of it commits, or none of it when it fails.
    /// On SQLite, concurrent writes may share one commit (and one fsync); each runs in its own
    /// savepoint, and the result is returned only once the commit is durable.
    ///
    /// # Errors
    /// What `f` returns, a failed commit, or [`StorageError::Unavailable`].
    pub async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>
            + Send
            + 'static,
    {
        match &*self.engine {
            Engine::Sqlite(s) => s.write(f).await,
            Engine::Postgres(p) => p.write(f).await,
            Engine::SqliteSession(cmds) => on_session(cmds, move |c| sqlite::session_write(c, f))
                .await
                .map_err(|_| StorageError::closed())?,
            Engine::PgSession(s) => s.run(f, true).await,
        }
    }

    /// Runs one read statement.
    ///
    /// # Errors
    /// As [`Store::read`].
    pub async fn query(
        &self,
        sql: impl Into<String>,
        params: Vec<Value>,
    ) -> Result<Rows, StorageError> {
        let sql = sql.into();
        match &*self.engine {
            Engine::Sqlite(s) => s.query(sql, params).await,
            Engine::Postgres(p) => p.query(&sql, &params).await,
            Engine::SqliteSession(_) | Engine::PgSession(_) => {
                self.read(move |c| Box::pin(async move { c.query(&sql, &params).await }))
                    .await
            }
        }
    }

    /// Runs one write statement in its own transaction.
    ///
    /// # Errors
    /// As [`Store::write`].
    pub async fn execute(
        &self,
        sql: impl Into<String>,
        params: Vec<Value>,
    ) -> Result<u64, StorageError> {
        let sql = sql.into();
        self.write(move |c| Box::pin(async move { c.execute(&sql, &params).await }))
            .await
    }

    /// `LISTEN`s on a PostgreSQL channel over a connection of its own.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the server cannot be reached; an error on SQLite,
    /// which has no notifications.
    pub async fn listen(&self, channel: &str) -> Result<Listener, StorageError> {
        match &*self.engine {
            Engine::Postgres(p) => p.listen(channel).await,
            Engine::PgSession(_) | Engine::Sqlite(_) | Engine::SqliteSession(_) => Err(
                StorageError::aborted(pier_core::ErrorKind::Internal, "LISTEN needs PostgreSQL"),
            ),
        }
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.query("SELECT 1", Vec::new()).await.map(|_| ())
    }

    /// Current gauges and counters.
    pub fn stats(&self) -> StoreStats {
        match &*self.engine {
            Engine::Sqlite(s) => s.stats(),
            Engine::Postgres(p) => p.stats(),
            Engine::SqliteSession(_) => StoreStats {
                engine: "sqlite",
                ..StoreStats::default()
            },
            Engine::PgSession(_) => StoreStats {
                engine: "postgres",
                ..StoreStats::default()
            },
        }
    }

    /// Finishes queued work, checkpoints (SQLite) and closes every connection. Calls after
    /// this fail with [`StorageError::Unavailable`].
    pub async fn close(&self) {
        match &*self.engine {
            Engine::Sqlite(s) => s.close().await,
            Engine::Postgres(p) => p.close(),
            Engine::SqliteSession(_) | Engine::PgSession(_) => {}
        }
    }
}
