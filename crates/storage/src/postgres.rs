//! The PostgreSQL engine: a deadpool connection pool, optionally over rustls.

use std::error::Error;
use std::sync::Arc;

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use pier_config::{PgTlsMode, PostgresConfig, expose};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::{AfterCommit, BoxFuture, Conn, Dialect, Rows, StorageError, StoreStats, Value};

type BoxError = Box<dyn Error + Sync + Send>;

pub(crate) struct PgStore {
    pool: Pool,
    /// How to open a connection outside the pool (a listener).
    connect: (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
}

impl PgStore {
    pub(crate) fn new(config: &PostgresConfig) -> Result<PgStore, StorageError> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&config.host)
            .port(config.port)
            .dbname(&config.name)
            .user(&config.user)
            .application_name("pier")
            .connect_timeout(config.connect_timeout);
        if let Some(p) = &config.password {
            pg.password(expose(p));
        }
        pg.ssl_mode(match config.tls {
            PgTlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            PgTlsMode::Require => tokio_postgres::config::SslMode::Require,
        });
        let tls = tls_connector(config)?;
        let connect = (pg.clone(), tls.clone());
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(config.connect_timeout))
            .wait_timeout(Some(config.connect_timeout * 2))
            .build()
            .map_err(|e| StorageError::Unavailable {
                message: format!("failed to build the connection pool: {e}"),
                source: None,
            })?;
        Ok(PgStore { pool, connect })
    }

    /// Opens a connection of its own (named `pier-listener`, outside the pool) and `LISTEN`s on
    /// `channel`.
    pub(crate) async fn listen(&self, channel: &str) -> Result<crate::Listener, StorageError> {
        let (mut config, tls) = self.connect.clone();
        config.application_name("pier-listener");
        let (client, mut connection) = config.connect(tls).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        if tx.send(n.payload().to_owned()).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    // The connection ended: dropping `tx` tells the listener.
                    Some(Err(_)) | None => break,
                }
            }
        });
        let quoted = format!("\"{}\"", channel.replace('"', "\"\""));
        client.batch_execute(&format!("LISTEN {quoted}")).await?;
        Ok(crate::Listener {
            notifications: rx,
            _client: Some(client),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(StorageError::from)
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>
            + Send
            + 'static,
    {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let mut conn = PgConn::new(PgInner::Tx(&tx));
        let out = f(&mut conn).await;
        // Ending a read-only transaction either way keeps nothing; rollback is cheapest.
        tx.rollback().await?;
        out
    }

    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>
            + Send
            + 'static,
    {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut conn = PgConn::new(PgInner::Tx(&tx));
        let out = f(&mut conn).await;
        let after = std::mem::take(&mut conn.after);
        match out {
            Ok(v) => {
                tx.commit().await?;
                run_after_commit(after);
                Ok(v)
            }
            Err(e) => {
                // Dropping the transaction rolls it back; say so explicitly to free the
                // connection at once.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    pub(crate) async fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await?;
        let rows = client.query(&stmt, &as_params(params)).await?;
        to_rows(&stmt, rows)
    }

    /// Starts a session on one pooled connection.
    pub(crate) async fn session(&self) -> Result<PgSession, StorageError> {
        let client = self.client().await?;
        client.batch_execute("BEGIN").await?;
        Ok(PgSession {
            client: tokio::sync::Mutex::new(Some(client)),
            after: std::sync::Mutex::default(),
        })
    }

    pub(crate) fn stats(&self) -> StoreStats {
        let s = self.pool.status();
        StoreStats {
            engine: "postgres",
            connections: s.size,
            idle_connections: s.available,
            max_connections: s.max_size,
            waiting: s.waiting,
            ..StoreStats::default()
        }
    }

    pub(crate) fn close(&self) {
        self.pool.close();
    }
}

pub(crate) fn tls_connector(
    config: &PostgresConfig,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StorageError> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.tls_ca_file {
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StorageError::Unavailable {
                    message: format!(
                        "failed to read the CA file `{}` (database.tls_ca_file): {e}",
                        path.display()
                    ),
                    source: None,
                })?;
            for c in certs {
                roots.add(c).map_err(|e| StorageError::Unavailable {
                    message: format!(
                        "bad certificate in `{}` (database.tls_ca_file): {e}",
                        path.display()
                    ),
                    source: None,
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Unavailable {
            message: format!("TLS setup failed: {e}"),
            source: None,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
}

fn as_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn to_rows(
    stmt: &tokio_postgres::Statement,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Rows, StorageError> {
    let columns: Arc<[String]> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
    let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            values.push(column_value(&row, i, ty)?);
        }
        out.push(values);
    }
    Ok(Rows::new(columns, out))
}

fn column_value(row: &tokio_postgres::Row, i: usize, ty: &Type) -> Result<Value, StorageError> {
    let v = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|n| Value::Integer(n.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|n| Value::Integer(n.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map(|b| Value::Integer(b.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map(|f| Value::Real(f.into())),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
        Type::VOID => None,
        _ if RawText::accepts(ty) => row
            .try_get::<_, Option<RawText>>(i)?
            .map(|t| Value::Text(t.0)),
        _ => {
            return Err(StorageError::Query {
                kind: pier_core::ErrorKind::Internal,
                message: format!("column {i} has the unsupported type `{ty}`; cast it in SQL"),
                source: None,
            });
        }
    };
    Ok(v.unwrap_or(Value::Null))
}

/// Any textual column, including JSON and JSONB, read as its text.
struct RawText(String);

impl<'a> FromSql<'a> for RawText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<RawText, BoxError> {
        let raw = if *ty == Type::JSONB {
            // JSONB's binary form is a version byte (1) followed by the JSON text.
            raw.get(1..).ok_or("empty jsonb value")?
        } else {
            raw
        };
        Ok(RawText(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::JSONB
        ) || ty.name() == "citext"
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                #[allow(clippy::cast_precision_loss)]
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                #[allow(clippy::cast_precision_loss)]
                Type::FLOAT4 => (*n as f32).to_sql(ty, out),
                _ => text_to_sql(&n.to_string(), ty, out),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                #[allow(clippy::cast_possible_truncation)]
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => text_to_sql(&f.to_string(), ty, out),
            },
            Value::Text(s) => text_to_sql(s, ty, out),
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => Err(format!("cannot bind a blob to a `{ty}` parameter").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn text_to_sql(s: &str, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    match *ty {
        Type::JSONB => {
            out.extend_from_slice(&[1]);
            out.extend_from_slice(s.as_bytes());
            Ok(IsNull::No)
        }
        Type::JSON => {
            out.extend_from_slice(s.as_bytes());
            Ok(IsNull::No)
        }
        Type::INT8 => s.trim().parse::<i64>()?.to_sql(ty, out),
        Type::INT4 => s.trim().parse::<i32>()?.to_sql(ty, out),
        Type::FLOAT8 => s.trim().parse::<f64>()?.to_sql(ty, out),
        Type::BOOL => matches!(s, "true" | "1").to_sql(ty, out),
        _ => {
            out.extend_from_slice(s.as_bytes());
            Ok(IsNull::No)
        }
    }
}

/// A connection inside a PostgreSQL transaction: a transaction object, or a session's client
/// on which `BEGIN` was issued.
enum PgInner<'a> {
    Tx(&'a deadpool_postgres::Transaction<'a>),
    Client(&'a deadpool_postgres::Object),
}

/// A connection handed to closures, with the work its writes registered for after the commit.
struct PgConn<'a> {
    inner: PgInner<'a>,
    after: Vec<AfterCommit>,
}

impl<'a> PgConn<'a> {
    fn new(inner: PgInner<'a>) -> PgConn<'a> {
        PgConn {
            inner,
            after: Vec::new(),
        }
    }

    async fn prepare(&self, sql: &str) -> Result<tokio_postgres::Statement, StorageError> {
        Ok(match &self.inner {
            PgInner::Tx(t) => t.prepare_cached(sql).await?,
            PgInner::Client(c) => c.prepare_cached(sql).await?,
        })
    }
}

/// Runs a committed transaction's work, in order; one that panics does not stop the others.
fn run_after_commit(after: Vec<AfterCommit>) {
    for f in after {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            tracing::error!("after-commit work panicked");
        }
    }
}

#[async_trait::async_trait]
impl Conn for PgConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
        let stmt = self.prepare(sql).await?;
        let rows = match &self.inner {
            PgInner::Tx(t) => t.query(&stmt, &as_params(params)).await?,
            PgInner::Client(c) => c.query(&stmt, &as_params(params)).await?,
        };
        to_rows(&stmt, rows)
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StorageError> {
        let stmt = self.prepare(sql).await?;
        Ok(match &self.inner {
            PgInner::Tx(t) => t.execute(&stmt, &as_params(params)).await?,
            PgInner::Client(c) => c.execute(&stmt, &as_params(params)).await?,
        })
    }

    async fn execute_script(&mut self, sql: &str) -> Result<(), StorageError> {
        match &self.inner {
            PgInner::Tx(t) => t.batch_execute(sql).await.map_err(StorageError::from),
            PgInner::Client(c) => c.batch_execute(sql).await.map_err(StorageError::from),
        }
    }

    fn after_commit(&mut self, f: AfterCommit) {
        self.after.push(f);
    }
}

/// A session: one pooled connection in one transaction until commit or rollback.
pub(crate) struct PgSession {
    client: tokio::sync::Mutex<Option<deadpool_postgres::Object>>,
    /// Work registered by the session's writes, run once it commits.
    after: std::sync::Mutex<Vec<AfterCommit>>,
}

impl PgSession {
    pub(crate) async fn run<T, F>(&self, f: F, savepoint: bool) -> Result<T, StorageError>
    where
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StorageError>>,
    {
        let guard = self.client.lock().await;
        let client = guard.as_ref().ok_or_else(StorageError::closed)?;
        if savepoint {
            client.batch_execute("SAVEPOINT s").await?;
        }
        let mut conn = PgConn::new(PgInner::Client(client));
        let r = f(&mut conn).await;
        if r.is_ok()
            && let Ok(mut after) = self.after.lock()
        {
            after.append(&mut conn.after);
        }
        if savepoint {
            let end = if r.is_ok() {
                "RELEASE s"
            } else {
                "ROLLBACK TO s; RELEASE s"
            };
            client.batch_execute(end).await?;
        }
        r
    }

    pub(crate) async fn end(&self, commit: bool) -> Result<(), StorageError> {
        let mut guard = self.client.lock().await;
        let Some(client) = guard.take() else {
            return Ok(());
        };
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        let after = self
            .after
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default();
        client.batch_execute(sql).await?;
        if commit {
            run_after_commit(after);
        }
        Ok(())
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // A session dropped without an end: discard the connection rather than return it to
        // the pool mid-transaction.
        if let Ok(mut guard) = self.client.try_lock()
            && let Some(client) = guard.take()
        {
            let _ = deadpool_postgres::Object::take(client);
        }
    }
}
