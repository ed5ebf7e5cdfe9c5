//! Versioned schema migrations, recorded in `_migrations`, applied once each.

use pier_core::ErrorKind;

use crate::{Conn, Dialect, StorageError, Store, Value};

/// One schema change, written once per dialect.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing across the whole list.
    pub version: i64,
    /// A short name, shown by `pier migrate`.
    pub name: &'static str,
    /// The script for SQLite.
    pub sqlite: &'static str,
    /// The script for PostgreSQL.
    pub postgres: &'static str,
}

/// A migration and whether (and when) it was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationState {
    pub version: i64,
    pub name: String,
    /// Unix milliseconds when it was applied; `None` while pending.
    pub applied_at_ms: Option<i64>,
}

/// The migrations of the storage core itself.
pub const CORE_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "params",
    sqlite: "CREATE TABLE _params (
                 key TEXT PRIMARY KEY NOT NULL,
                 value TEXT NOT NULL,
                 updated_at INTEGER NOT NULL
             ) WITHOUT ROWID;",
    postgres: "CREATE TABLE _params (
                 key TEXT PRIMARY KEY NOT NULL,
                 value TEXT NOT NULL,
                 updated_at BIGINT NOT NULL
             );",
}];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _migrations (
    version BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// Any fixed number; every pier process takes this advisory lock while migrating PostgreSQL, so
/// several backends starting at once apply each migration exactly once.
const PG_LOCK_KEY: i64 = 0x0070_6965_726d_6967; // "piermig"

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn check_order(list: &[Migration]) -> Result<(), StorageError> {
    for pair in list.windows(2) {
        if pair[1].version <= pair[0].version {
            return Err(StorageError::aborted(
                ErrorKind::Internal,
                format!(
                    "migration versions must increase: {} follows {}",
                    pair[1].version, pair[0].version
                ),
            ));
        }
    }
    Ok(())
}

async fn prepare(c: &mut dyn Conn) -> Result<(), StorageError> {
    if c.dialect() == Dialect::Postgres {
        c.query(
            "SELECT pg_advisory_xact_lock($1)",
            &[Value::Integer(PG_LOCK_KEY)],
        )
        .await?;
    }
    c.execute_script(CREATE_TABLE).await
}

async fn applied(c: &mut dyn Conn) -> Result<Vec<(i64, String, i64)>, StorageError> {
    let rows = c
        .query(
            "SELECT version, name, applied_at FROM _migrations ORDER BY version",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r[0].as_i64().unwrap_or(0),
                r[1].as_str().unwrap_or_default().to_owned(),
                r[2].as_i64().unwrap_or(0),
            )
        })
        .collect())
}

impl Store {
    /// Applies every pending migration of `list`, each in its own transaction together with its
    /// record in `_migrations`. Returns the versions applied now.
    ///
    /// # Errors
    /// [`StorageError::SchemaTooNew`] when the database has a version this list does not know;
    /// [`StorageError::Migration`] when a script fails (that migration is rolled back).
    pub async fn migrate(&self, list: &'static [Migration]) -> Result<Vec<i64>, StorageError> {
        check_order(list)?;
        let known_max = list.last().map_or(0, |m| m.version);
        let mut done = Vec::new();
        // The first pass only checks the version: a newer database is refused before any change.
        let db_max = self
            .write(|c| {
                Box::pin(async move {
                    prepare(c).await?;
                    Ok(applied(c).await?.last().map_or(0, |a| a.0))
                })
            })
            .await?;
        if db_max > known_max {
            return Err(StorageError::SchemaTooNew {
                database: db_max,
                binary: known_max,
            });
        }
        for m in list {
            let applied_now = self
                .write(move |c| {
                    Box::pin(async move {
                        prepare(c).await?;
                        let exists = c
                            .query(
                                "SELECT 1 FROM _migrations WHERE version = $1",
                                &[Value::Integer(m.version)],
                            )
                            .await?;
                        if !exists.is_empty() {
                            return Ok(false);
                        }
                        let script = match c.dialect() {
                            Dialect::Sqlite => m.sqlite,
                            Dialect::Postgres => m.postgres,
                        };
                        c.execute_script(script).await?;
                        c.execute(
                            "INSERT INTO _migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                            &[
                                Value::Integer(m.version),
                                Value::Text(m.name.to_owned()),
                                Value::Integer(now_ms()),
                            ],
                        )
                        .await?;
                        Ok(true)
                    })
                })
                .await
                .map_err(|e| StorageError::Migration {
                    version: m.version,
                    name: m.name.to_owned(),
                    source: Box::new(e),
                })?;
            if applied_now {
                tracing::info!(version = m.version, name = m.name, "migration applied");
                done.push(m.version);
            }
        }
        Ok(done)
    }

    /// Every migration of `list` with its state, plus any unknown ones found in the database.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn migration_state(
        &self,
        list: &'static [Migration],
    ) -> Result<Vec<MigrationState>, StorageError> {
        let rows = self
            .write(|c| {
                Box::pin(async move {
                    c.execute_script(CREATE_TABLE).await?;
                    applied(c).await
                })
            })
            .await?;
        let mut out: Vec<MigrationState> = list
            .iter()
            .map(|m| MigrationState {
                version: m.version,
                name: m.name.to_owned(),
                applied_at_ms: rows.iter().find(|r| r.0 == m.version).map(|r| r.2),
            })
            .collect();
        for (version, name, at) in rows {
            if !list.iter().any(|m| m.version == version) {
                out.push(MigrationState {
                    version,
                    name,
                    applied_at_ms: Some(at),
                });
            }
        }
        out.sort_by_key(|m| m.version);
        Ok(out)
    }

    /// True when every migration of `list` has been applied.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn migrations_applied(
        &self,
        list: &'static [Migration],
    ) -> Result<bool, StorageError> {
        let max = self
            .query("SELECT max(version) FROM _migrations", Vec::new())
            .await
            .map(|r| r.scalar().and_then(Value::as_i64).unwrap_or(0));
        match max {
            Ok(max) => Ok(max >= list.last().map_or(0, |m| m.version)),
            Err(e) if e.kind() == ErrorKind::Unavailable => Err(e),
            // No `_migrations` table yet means nothing is applied.
            Err(_) => Ok(false),
        }
    }
}
