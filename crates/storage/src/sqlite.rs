//! The embedded SQLite engine: one writer thread with group commit, N reader threads.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use pier_config::{Durability, SqliteConfig};
use pier_core::ErrorKind;
use rusqlite::{Connection, OpenFlags, types::ValueRef};
use tokio::sync::oneshot;

use crate::sql::to_sqlite;
use crate::{AfterCommit, BoxFuture, Conn, Dialect, Rows, StorageError, StoreStats, Value};

/// How long the writer waits for work before doing idle maintenance.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;
/// How long the writer's own checkpoints wait for readers. A long read (a backup's
/// `VACUUM INTO`) pins WAL frames for its whole length; waiting the full busy timeout for it
/// would stall every write queued behind the checkpoint, so the writer gives up quickly and
/// tries again later.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(20);

type ReadJob = Box<dyn FnOnce(&mut SqliteConn) + Send>;

/// A queued write: `run` executes the caller's closure inside the current transaction and
/// reports success; `finish` delivers the result once the commit outcome is known.
trait WriteTask: Send {
    fn run(&mut self, conn: &mut SqliteConn) -> bool;
    fn finish(self: Box<Self>, commit_error: Option<&StorageError>);
}

enum WriterMsg {
    Write(Box<dyn WriteTask>),
    /// Hold the writer for one long transaction driven by a [`crate::Session`].
    Session(
        flume::Receiver<SessionCmd>,
        oneshot::Sender<Result<(), StorageError>>,
    ),
    /// Finish what is queued before this message, checkpoint, close the connection and exit.
    Shutdown,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    committed_writes: AtomicU64,
}

pub(crate) struct SqliteStore {
    writer: Mutex<Option<flume::Sender<WriterMsg>>>,
    writer_tx: flume::Sender<WriterMsg>,
    readers: flume::Sender<ReadJob>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    counters: Arc<Counters>,
    wal_path: PathBuf,
    reader_count: usize,
    /// Held for the life of the store: the advisory lock that keeps other pier processes out.
    _lock: File,
}

impl SqliteStore {
    pub(crate) fn open(config: &SqliteConfig) -> Result<SqliteStore, StorageError> {
        let path = config.path.clone();
        let lock = lock_database(&path)?;
        let open_err = |e: rusqlite::Error| StorageError::Open {
            path: path.clone(),
            source: Box::new(e),
        };

        let writer_conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        configure_writer(&writer_conn, config).map_err(open_err)?;

        let mut reader_conns = Vec::with_capacity(config.read_connections);
        for _ in 0..config.read_connections {
            let c = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err)?;
            configure_reader(&c, config).map_err(open_err)?;
            reader_conns.push(c);
        }

        let counters = Arc::new(Counters::default());
        let (writer_tx, writer_rx) = flume::unbounded::<WriterMsg>();
        let (reader_tx, reader_rx) = flume::unbounded::<ReadJob>();
        let mut threads = Vec::new();
        let wal_path = wal_path(&path);
        {
            let counters = counters.clone();
            let max_batch = config.max_batch;
            let wal_max = config.wal_max_bytes;
            let busy_timeout = config.busy_timeout;
            let wal = wal_path.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("pier-sqlite-writer".into())
                    .spawn(move || {
                        let limits = WriterLimits {
                            max_batch,
                            wal_max,
                            busy_timeout,
                        };
                        writer_loop(writer_conn, writer_rx, &limits, &wal, &counters)
                    })
                    .map_err(|e| StorageError::Open {
                        path: path.clone(),
                        source: Box::new(e),
                    })?,
            );
        }
        for (i, conn) in reader_conns.into_iter().enumerate() {
            let rx = reader_rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("pier-sqlite-reader-{i}"))
                    .spawn(move || {
                        let mut conn = SqliteConn::new(conn);
                        while let Ok(job) = rx.recv() {
                            job(&mut conn);
                            conn.after.clear();
                        }
                    })
                    .map_err(|e| StorageError::Open {
                        path: path.clone(),
                        source: Box::new(e),
                    })?,
            );
        }
        Ok(SqliteStore {
            writer: Mutex::new(Some(writer_tx.clone())),
            writer_tx,
            readers: reader_tx,
            threads: Mutex::new(threads),
            counters,
            wal_path,
            reader_count: config.read_connections,
            _lock: lock,
        })
    }

    fn writer(&self) -> Result<flume::Sender<WriterMsg>, StorageError> {
        self.writer
            .lock()
            .map_err(|_| StorageError::closed())?
            .clone()
            .ok_or_else(StorageError::closed)
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>
            + Send
            + 'static,
    {
        self.on_reader(move |conn| {
            conn.conn.execute_batch("BEGIN")?;
            let result = run_closure(conn, f);
            // A read-only transaction has nothing to keep; ending it releases the snapshot.
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            conn.conn.execute_batch(end)?;
            result
        })
        .await
    }

    pub(crate) async fn query(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Rows, StorageError> {
        self.on_reader(move |conn| query(&conn.conn, &sql, &params))
            .await
    }

    async fn on_reader<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConn) -> Result<T, StorageError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(panicked()));
            let _ = tx.send(out);
        });
        self.readers.send(job).map_err(|_| StorageError::closed())?;
        rx.await.map_err(|_| StorageError::closed())?
    }

    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task = Task {
            f: Some(f),
            result: None,
            tx,
        };
        self.writer()?
            .send(WriterMsg::Write(Box::new(task)))
            .map_err(|_| StorageError::closed())?;
        rx.await.map_err(|_| StorageError::closed())?
    }

    /// Starts a session: the writer runs one transaction for it until it commits or rolls back.
    pub(crate) async fn session(&self) -> Result<flume::Sender<SessionCmd>, StorageError> {
        let (cmd_tx, cmd_rx) = flume::unbounded();
        let (started_tx, started_rx) = oneshot::channel();
        self.writer()?
            .send(WriterMsg::Session(cmd_rx, started_tx))
            .map_err(|_| StorageError::closed())?;
        started_rx.await.map_err(|_| StorageError::closed())??;
        Ok(cmd_tx)
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            engine: "sqlite",
            write_queue: self.writer_tx.len(),
            read_queue: self.readers.len(),
            connections: self.reader_count + 1,
            idle_connections: 0,
            max_connections: self.reader_count + 1,
            waiting: 0,
            wal_bytes: std::fs::metadata(&self.wal_path)
                .map(|m| m.len())
                .unwrap_or(0),
            commits: self.counters.commits.load(Ordering::Relaxed),
            committed_writes: self.counters.committed_writes.load(Ordering::Relaxed),
        }
    }

    pub(crate) async fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        let _ = self.writer_tx.send(WriterMsg::Shutdown);
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        // The reader channel stays open (handles may still exist); readers are detached.
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.thread().name() == Some("pier-sqlite-writer") {
                    let _ = t.join();
                }
            }
        })
        .await;
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        let _ = self.writer_tx.send(WriterMsg::Shutdown);
    }
}

struct Task<F, T> {
    f: Option<F>,
    result: Option<Result<T, StorageError>>,
    tx: oneshot::Sender<Result<T, StorageError>>,
}

impl<F, T> WriteTask for Task<F, T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>> + Send + 'static,
{
    fn run(&mut self, conn: &mut SqliteConn) -> bool {
        let Some(f) = self.f.take() else { return false };
        let result = run_closure(conn, f);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit_error: Option<&StorageError>) {
        let this = *self;
        let out = match (commit_error, this.result) {
            (_, Some(Err(e))) => Err(e),
            (Some(e), _) => Err(StorageError::Query {
                kind: e.kind(),
                message: format!("commit failed: {e}"),
                source: None,
            }),
            (None, Some(ok)) => ok,
            (None, None) => Err(StorageError::Query {
                kind: ErrorKind::Internal,
                message: "write was not run".into(),
                source: None,
            }),
        };
        let _ = this.tx.send(out);
    }
}

fn panicked() -> StorageError {
    StorageError::Query {
        kind: ErrorKind::Internal,
        message: "database task panicked".into(),
        source: None,
    }
}

/// Runs a caller's closure against a connection on this (database) thread.
fn run_closure<T, F>(conn: &mut SqliteConn, f: F) -> Result<T, StorageError>
where
    F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>,
{
    std::panic::catch_unwind(AssertUnwindSafe(|| futures_executor::block_on(f(conn))))
        .unwrap_or_else(|_| Err(panicked()))
}

struct WriterLimits {
    max_batch: usize,
    wal_max: u64,
    busy_timeout: Duration,
}

/// A checkpoint that waits at most [`CHECKPOINT_WAIT`] for readers.
fn brief_checkpoint(conn: &Connection, mode: &str, busy_timeout: Duration) {
    let _ = conn.busy_timeout(CHECKPOINT_WAIT);
    checkpoint(conn, mode);
    let _ = conn.busy_timeout(busy_timeout);
}

fn writer_loop(
    conn: Connection,
    rx: flume::Receiver<WriterMsg>,
    limits: &WriterLimits,
    wal: &Path,
    counters: &Counters,
) {
    let WriterLimits {
        max_batch,
        wal_max,
        busy_timeout,
    } = *limits;
    let mut conn = SqliteConn::new(conn);
    let mut batch: Vec<Box<dyn WriteTask>> = Vec::with_capacity(max_batch);
    let mut since_wal_check = 0u32;
    loop {
        match rx.recv_timeout(IDLE_TICK) {
            Ok(WriterMsg::Write(t)) => batch.push(t),
            Ok(WriterMsg::Session(cmds, started)) => {
                run_session(&mut conn, &cmds, started, counters);
                continue;
            }
            Ok(WriterMsg::Shutdown) => break,
            Err(flume::RecvTimeoutError::Timeout) => {
                // Idle: fold the WAL back into the database so it does not linger.
                if file_len(wal) > 0 {
                    brief_checkpoint(&conn.conn, "TRUNCATE", busy_timeout);
                }
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => break,
        }
        let mut shutdown = false;
        let mut session = None;
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(WriterMsg::Write(t)) => batch.push(t),
                Ok(WriterMsg::Session(cmds, started)) => {
                    session = Some((cmds, started));
                    break;
                }
                Ok(WriterMsg::Shutdown) => {
                    shutdown = true;
                    break;
                }
                Err(_) => break,
            }
        }
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters
            .committed_writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        commit_batch(&mut conn, &mut batch);
        if let Some((cmds, started)) = session {
            run_session(&mut conn, &cmds, started, counters);
        }
        if shutdown {
            break;
        }
        since_wal_check += 1;
        if since_wal_check >= 32 {
            since_wal_check = 0;
            if file_len(wal) > wal_max {
                // Readers may pin old frames; RESTART waits for them briefly, then the WAL
                // restarts from its beginning and journal_size_limit truncates it. A reader
                // that stays (a backup) makes it give up until the next check.
                brief_checkpoint(&conn.conn, "RESTART", busy_timeout);
            }
        }
    }
    // Writes queued after the shutdown request are refused, never half-done.
    while let Ok(msg) = rx.try_recv() {
        match msg {
            WriterMsg::Write(t) => t.finish(Some(&StorageError::closed())),
            WriterMsg::Session(_, started) => {
                let _ = started.send(Err(StorageError::closed()));
            }
            WriterMsg::Shutdown => {}
        }
    }
    checkpoint(&conn.conn, "TRUNCATE");
    if let Err((_, error)) = conn.conn.close() {
        tracing::warn!(%error, "sqlite close failed");
    }
}

/// A command to a session holding the writer.
pub(crate) enum SessionCmd {
    /// Run on the session's connection (the closure replies by itself).
    Run(Box<dyn FnOnce(&mut SqliteConn) + Send>),
    Commit(oneshot::Sender<Result<(), StorageError>>),
    Rollback,
}

/// A session is abandoned (rolled back) after this long without a command.
const SESSION_IDLE_LIMIT: Duration = Duration::from_secs(30);

fn run_session(
    sc: &mut SqliteConn,
    cmds: &flume::Receiver<SessionCmd>,
    started: oneshot::Sender<Result<(), StorageError>>,
    counters: &Counters,
) {
    if let Err(e) = sc.conn.execute_batch("BEGIN IMMEDIATE") {
        let _ = started.send(Err(e.into()));
        return;
    }
    if started.send(Ok(())).is_err() {
        let _ = sc.conn.execute_batch("ROLLBACK");
        return;
    }
    loop {
        match cmds.recv_timeout(SESSION_IDLE_LIMIT) {
            Ok(SessionCmd::Run(f)) => f(sc),
            Ok(SessionCmd::Commit(reply)) => {
                let r = sc.conn.execute_batch("COMMIT").map_err(StorageError::from);
                if r.is_err() {
                    let _ = sc.conn.execute_batch("ROLLBACK");
                    sc.after.clear();
                } else {
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                    counters.committed_writes.fetch_add(1, Ordering::Relaxed);
                    sc.run_after_commit();
                }
                let _ = reply.send(r);
                return;
            }
            Ok(SessionCmd::Rollback) | Err(_) => {
                let _ = sc.conn.execute_batch("ROLLBACK");
                sc.after.clear();
                return;
            }
        }
    }
}

fn commit_batch(sc: &mut SqliteConn, batch: &mut Vec<Box<dyn WriteTask>>) {
    let single = batch.len() == 1;
    if let Err(e) = sc.conn.execute_batch("BEGIN IMMEDIATE") {
        let err = StorageError::from(e);
        for t in batch.drain(..) {
            t.finish(Some(&err));
        }
        return;
    }
    if single {
        let ok = batch.first_mut().is_some_and(|t| t.run(sc));
        if !ok {
            let _ = sc.conn.execute_batch("ROLLBACK");
            sc.after.clear();
            for t in batch.drain(..) {
                t.finish(None);
            }
            return;
        }
    } else {
        for t in batch.iter_mut() {
            if let Err(e) = sc.conn.execute_batch("SAVEPOINT w") {
                tracing::error!(error = %e, "sqlite savepoint failed");
            }
            let mark = sc.after.len();
            let sp_end = if t.run(sc) {
                "RELEASE w"
            } else {
                sc.after.truncate(mark);
                "ROLLBACK TO w; RELEASE w"
            };
            if let Err(e) = sc.conn.execute_batch(sp_end) {
                tracing::error!(error = %e, "sqlite savepoint release failed");
            }
        }
    }
    let commit = sc.conn.execute_batch("COMMIT").map_err(StorageError::from);
    if let Err(e) = &commit {
        tracing::error!(error = %e, writes = batch.len(), "sqlite commit failed");
        let _ = sc.conn.execute_batch("ROLLBACK");
        sc.after.clear();
    } else {
        sc.run_after_commit();
    }
    for t in batch.drain(..) {
        t.finish(commit.as_ref().err());
    }
}

fn checkpoint(conn: &Connection, mode: &str) {
    let sql = format!("PRAGMA wal_checkpoint({mode})");
    if let Err(error) = conn.query_row(&sql, [], |_| Ok(())) {
        tracing::debug!(%error, mode, "sqlite checkpoint did not complete");
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// Takes an exclusive advisory lock on `<db>.lock`, writing our pid into it, so that a second
/// pier process on the same database fails fast with a clear message.
pub(crate) fn lock_database(db: &Path) -> Result<File, StorageError> {
    let mut lock_path = db.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| StorageError::Open {
            path: lock_path.clone(),
            source: Box::new(e),
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut s = String::new();
            let _ = file.read_to_string(&mut s);
            return Err(StorageError::Locked {
                path: db.to_owned(),
                pid: s.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StorageError::Open {
                path: lock_path,
                source: Box::new(e),
            });
        }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(file)
}

/// Double-quoted strings are identifiers only: SQLite's legacy fallback would silently read a
/// misspelt (or not yet visible) `"column"` as the string literal 'column'.
fn strict_quotes(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::config::DbConfig;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    Ok(())
}

fn configure_writer(conn: &Connection, config: &SqliteConfig) -> rusqlite::Result<()> {
    strict_quotes(conn)?;
    conn.busy_timeout(config.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "could not switch the database to WAL mode (got `{mode}`)"
            )),
        ));
    }
    let sync = match config.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync};
         PRAGMA foreign_keys=ON;
         PRAGMA temp_store=MEMORY;
         PRAGMA journal_size_limit={};
         PRAGMA cache_size=-8000;",
        config.wal_max_bytes
    ))?;
    // Fail now, not at the first request, if the file is not a database.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(())
}

fn configure_reader(conn: &Connection, config: &SqliteConfig) -> rusqlite::Result<()> {
    strict_quotes(conn)?;
    conn.busy_timeout(config.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA query_only=ON;
         PRAGMA foreign_keys=ON;
         PRAGMA temp_store=MEMORY;
         PRAGMA cache_size=-4000;",
    )?;
    Ok(())
}

/// A connection handed to closures; all calls complete synchronously on the database thread,
/// which owns it for its whole life.
pub(crate) struct SqliteConn {
    conn: Connection,
    /// Work registered by the writes of the open transaction, run in order once it commits.
    after: Vec<AfterCommit>,
}

impl SqliteConn {
    fn new(conn: Connection) -> SqliteConn {
        SqliteConn {
            conn,
            after: Vec::new(),
        }
    }

    /// Runs the committed transaction's work, in order; one that panics does not stop the
    /// others or the writer thread.
    fn run_after_commit(&mut self) {
        for f in self.after.drain(..) {
            if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
                tracing::error!("after-commit work panicked");
            }
        }
    }
}

fn bind(stmt: &mut rusqlite::CachedStatement<'_>, params: &[Value]) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    for (i, v) in params.iter().enumerate() {
        let idx = i + 1;
        match v {
            Value::Null => stmt.raw_bind_parameter(idx, rusqlite::types::Null)?,
            Value::Integer(n) => stmt.raw_bind_parameter(idx, n)?,
            Value::Real(f) => stmt.raw_bind_parameter(idx, f)?,
            Value::Text(s) => stmt.raw_bind_parameter(idx, s.as_str())?,
            Value::Blob(b) => stmt.raw_bind_parameter(idx, b.as_slice())?,
        }
    }
    Ok(())
}

fn query(conn: &Connection, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
    let sql = to_sqlite(sql);
    let mut stmt = conn.prepare_cached(&sql)?;
    bind(&mut stmt, params)?;
    let mut out = Vec::new();
    let mut columns: Option<Arc<[String]>> = None;
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        // Column names are read after the first step: SQLite re-prepares a statement whose
        // schema changed underneath it, and the names before that step may be stale.
        let names = columns.get_or_insert_with(|| {
            row.as_ref()
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect()
        });
        let width = names.len();
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(values);
    }
    drop(rows);
    let columns =
        columns.unwrap_or_else(|| stmt.column_names().into_iter().map(str::to_owned).collect());
    Ok(Rows::new(columns, out))
}

fn execute(conn: &Connection, sql: &str, params: &[Value]) -> Result<u64, StorageError> {
    let sql = to_sqlite(sql);
    let mut stmt = conn.prepare_cached(&sql)?;
    bind(&mut stmt, params)?;
    // Step to completion even when the statement returns rows (`RETURNING`), so SQLite
    // finishes it and the auto-checkpoint can run.
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(conn.changes())
}

#[async_trait::async_trait]
impl Conn for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
        query(&self.conn, sql, params)
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StorageError> {
        execute(&self.conn, sql, params)
    }

    async fn execute_script(&mut self, sql: &str) -> Result<(), StorageError> {
        self.conn.execute_batch(sql).map_err(StorageError::from)
    }

    fn after_commit(&mut self, f: AfterCommit) {
        self.after.push(f);
    }
}

/// Runs `f` in a savepoint on a session's connection (a write inside the session).
pub(crate) fn session_write<T, F>(conn: &mut SqliteConn, f: F) -> Result<T, StorageError>
where
    F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>,
{
    conn.conn.execute_batch("SAVEPOINT s")?;
    let mark = conn.after.len();
    let r = run_closure(conn, f);
    let end = if r.is_ok() {
        "RELEASE s"
    } else {
        conn.after.truncate(mark);
        "ROLLBACK TO s; RELEASE s"
    };
    conn.conn.execute_batch(end)?;
    r
}

/// Runs `f` on a session's connection without a savepoint (reads).
pub(crate) fn session_read<T, F>(conn: &mut SqliteConn, f: F) -> Result<T, StorageError>
where
    F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>,
{
    run_closure(conn, f)
}
