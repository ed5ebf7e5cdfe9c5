//! Snapshot primitives for backups: a consistent copy of the database into one file, checks of
//! such a file, and putting one back.
//!
//! - SQLite: `VACUUM INTO` from a separate read-only connection. In WAL mode that connection only
//!   holds a read transaction, so writers go on committing while the copy is made; it needs no
//!   lock and works while a pier serves the file. The copy is a compact, self-contained database.
//! - PostgreSQL: `pg_dump --format=custom` from the system's client tools, run on a snapshot
//!   exported by a repeatable-read transaction that also counts the rows, so the counts and the
//!   dump describe the same instant. Connection parameters go to the child through `PG*`
//!   environment variables: the password is never on a command line or in a message.
//!
//! Archives, manifests and schedules are not this module's business (see `pier-ops`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use pier_config::{DatabaseConfig, PgTlsMode, PostgresConfig, expose};
use rusqlite::{Connection, OpenFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Dialect, StorageError};

/// What a snapshot holds: enough to compare a restored copy against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The engine the snapshot was taken from.
    pub engine: Dialect,
    /// Highest applied migration version (0 when none).
    pub schema_version: i64,
    /// Rows in every table of pier's schema, by table name.
    pub tables: BTreeMap<String, u64>,
}

/// An exclusive hold on a SQLite database: the same lock a running pier takes on `<db>.lock`.
/// Released when dropped.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// Takes the lock a running pier holds on the SQLite database at `db`.
///
/// # Errors
/// [`StorageError::Locked`] when a running pier holds it; [`StorageError::Open`] when the lock
/// file cannot be created.
pub fn lock_sqlite(db: &Path) -> Result<DatabaseLock, StorageError> {
    Ok(DatabaseLock {
        _file: crate::sqlite::lock_database(db)?,
    })
}

fn snapshot_error(message: String) -> StorageError {
    StorageError::Snapshot {
        message,
        source: None,
    }
}

/// Writes a consistent snapshot of the configured database to `dest` (which must not exist):
/// a SQLite database file, or a `pg_dump` custom-format archive.
///
/// # Errors
/// The database cannot be read, a client tool is missing or failed, or `dest` cannot be written.
pub async fn snapshot(config: &DatabaseConfig, dest: &Path) -> Result<SnapshotInfo, StorageError> {
    match config {
        DatabaseConfig::Sqlite(c) => {
            let (db, dest) = (c.path.clone(), dest.to_owned());
            blocking(move || snapshot_sqlite(&db, &dest)).await
        }
        DatabaseConfig::Postgres(c) => snapshot_postgres(c, dest).await,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| snapshot_error(format!("snapshot task failed: {e}")))?
}

/// Copies the SQLite database at `db` into `dest` with `VACUUM INTO`, without blocking writers.
///
/// # Errors
/// The database cannot be opened or read, or `dest` cannot be written.
pub fn snapshot_sqlite(db: &Path, dest: &Path) -> Result<SnapshotInfo, StorageError> {
    if !db.is_file() {
        return Err(snapshot_error(format!(
            "database `{}` does not exist",
            db.display()
        )));
    }
    let open_err = |e: rusqlite::Error| StorageError::Open {
        path: db.to_owned(),
        source: Box::new(e),
    };
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(open_err)?;
    let dest_text = dest.to_str().ok_or_else(|| {
        snapshot_error(format!("snapshot path `{}` is not UTF-8", dest.display()))
    })?;
    conn.execute("VACUUM INTO ?1", [dest_text])
        .map_err(|e| StorageError::Snapshot {
            message: format!(
                "failed to copy database `{}` into `{}`: {e}",
                db.display(),
                dest.display()
            ),
            source: Some(Box::new(e)),
        })?;
    drop(conn);
    inspect_sqlite(dest)
}

/// Opens a SQLite snapshot read-only and reads its schema version and row counts.
fn inspect_sqlite(path: &Path) -> Result<SnapshotInfo, StorageError> {
    let conn = open_snapshot(path)?;
    sqlite_info(&conn).map_err(|e| StorageError::Snapshot {
        message: format!("failed to read snapshot `{}`: {e}", path.display()),
        source: Some(Box::new(e)),
    })
}

fn open_snapshot(path: &Path) -> Result<Connection, StorageError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StorageError::Open {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

fn sqlite_info(conn: &Connection) -> rusqlite::Result<SnapshotInfo> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
             ESCAPE '\\' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tables = BTreeMap::new();
    for name in names {
        let count: i64 = conn.query_row(
            &format!("SELECT count(*) FROM {}", quote_ident(&name)),
            [],
            |r| r.get(0),
        )?;
        tables.insert(name, u64::try_from(count).unwrap_or(0));
    }
    let schema_version = if tables.contains_key("_migrations") {
        conn.query_row(
            "SELECT coalesce(max(version), 0) FROM _migrations",
            [],
            |r| r.get(0),
        )?
    } else {
        0
    };
    Ok(SnapshotInfo {
        engine: Dialect::Sqlite,
        schema_version,
        tables,
    })
}

/// Runs `PRAGMA integrity_check` on a SQLite snapshot and reads its schema version and counts.
///
/// # Errors
/// [`StorageError::Snapshot`] naming the first problem when the file is not a sound database.
pub fn check_sqlite(path: &Path) -> Result<SnapshotInfo, StorageError> {
    let conn = open_snapshot(path)?;
    let fail = |e: rusqlite::Error| StorageError::Snapshot {
        message: format!("database snapshot `{}` is damaged: {e}", path.display()),
        source: Some(Box::new(e)),
    };
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .map_err(fail)?
        .query_map([], |r| r.get(0))
        .map_err(fail)?
        .collect::<rusqlite::Result<_>>()
        .map_err(fail)?;
    if problems.first().map(String::as_str) != Some("ok") {
        return Err(snapshot_error(format!(
            "database snapshot `{}` failed the integrity check: {}",
            path.display(),
            problems.join("; ")
        )));
    }
    sqlite_info(&conn).map_err(fail)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The environment that points a PostgreSQL client tool at `config`'s server and `database`.
fn pg_env(config: &PostgresConfig, database: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PGHOST", config.host.clone()),
        ("PGPORT", config.port.to_string()),
        ("PGUSER", config.user.clone()),
        ("PGDATABASE", database.to_owned()),
        ("PGAPPNAME", "pier-backup".to_owned()),
        (
            "PGCONNECT_TIMEOUT",
            config.connect_timeout.as_secs().max(2).to_string(),
        ),
    ];
    match config.tls {
        PgTlsMode::Disable => env.push(("PGSSLMODE", "disable".into())),
        PgTlsMode::Require => {
            env.push(("PGSSLMODE", "verify-full".into()));
            env.push((
                "PGSSLROOTCERT",
                config
                    .tls_ca_file
                    .as_ref()
                    .map_or_else(|| "system".to_owned(), |p| p.display().to_string()),
            ));
        }
    }
    if let Some(p) = &config.password {
        env.push(("PGPASSWORD", expose(p).to_owned()));
    }
    env
}

/// Variables of the parent's environment a PostgreSQL client would also read; removed so only
/// pier's configuration decides where a tool connects.
const INHERITED_PG_VARS: &[&str] = &[
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGPASSFILE",
    "PGOPTIONS",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGHOSTADDR",
];

fn pg_tool(program: &str, config: &PostgresConfig, database: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for var in INHERITED_PG_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(pg_env(config, database))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs a prepared client tool to the end; a failure carries the tool's own message.
async fn run_tool(
    program: &str,
    mut cmd: tokio::process::Command,
) -> Result<Vec<u8>, StorageError> {
    let out = cmd.output().await.map_err(|e| StorageError::Snapshot {
        message: format!("failed to run `{program}` (install the PostgreSQL client tools): {e}"),
        source: Some(Box::new(e)),
    })?;
    if !out.status.success() {
        return Err(snapshot_error(format!(
            "`{program}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

async fn pg_connect(
    config: &PostgresConfig,
    database: &str,
    application: &str,
) -> Result<tokio_postgres::Client, StorageError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .dbname(database)
        .user(&config.user)
        .application_name(application)
        .connect_timeout(config.connect_timeout);
    if let Some(p) = &config.password {
        pg.password(expose(p));
    }
    pg.ssl_mode(match config.tls {
        PgTlsMode::Disable => tokio_postgres::config::SslMode::Disable,
        PgTlsMode::Require => tokio_postgres::config::SslMode::Require,
    });
    let tls = crate::postgres::tls_connector(config)?;
    let (client, connection) = pg.connect(tls).await.map_err(StorageError::from)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn pg_info(
    client: &impl tokio_postgres::GenericClient,
) -> Result<SnapshotInfo, StorageError> {
    let rows = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
             ORDER BY tablename",
            &[],
        )
        .await?;
    let mut tables = BTreeMap::new();
    for row in rows {
        let name: String = row.get(0);
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {}", quote_ident(&name)), &[])
            .await?
            .get(0);
        tables.insert(name, u64::try_from(count).unwrap_or(0));
    }
    let schema_version = if tables.contains_key("_migrations") {
        client
            .query_one(
                "SELECT coalesce(max(version), 0)::bigint FROM _migrations",
                &[],
            )
            .await?
            .get(0)
    } else {
        0
    };
    Ok(SnapshotInfo {
        engine: Dialect::Postgres,
        schema_version,
        tables,
    })
}

/// Dumps pier's PostgreSQL database to `dest` with `pg_dump --format=custom`.
///
/// # Errors
/// The server cannot be reached, `pg_dump` is missing or failed.
pub async fn snapshot_postgres(
    config: &PostgresConfig,
    dest: &Path,
) -> Result<SnapshotInfo, StorageError> {
    let mut client = pg_connect(config, &config.name, "pier-backup").await?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let snapshot_id: String = tx
        .query_one("SELECT pg_export_snapshot()", &[])
        .await?
        .get(0);
    let info = pg_info(&tx).await?;
    // NOTE: the transaction must stay open until pg_dump has taken the exported snapshot; it is
    // simplest to keep it open until pg_dump ends.
    let mut cmd = pg_tool("pg_dump", config, &config.name);
    cmd.arg("--format=custom")
        .arg("--compress=0")
        .arg(format!("--snapshot={snapshot_id}"))
        .arg("--file")
        .arg(dest);
    let result = run_tool("pg_dump", cmd).await;
    let _ = tx.rollback().await;
    result?;
    Ok(info)
}

/// Lists the entries of a `pg_dump` custom-format archive with `pg_restore --list`: a check
/// that the dump is complete and readable. Returns the number of entries.
///
/// # Errors
/// `pg_restore` is missing, or it cannot read the dump.
pub async fn check_pg_dump(dump: &Path) -> Result<usize, StorageError> {
    let mut cmd = tokio::process::Command::new("pg_restore");
    cmd.arg("--list")
        .arg(dump)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let listing = run_tool("pg_restore", cmd).await?;
    let entries = String::from_utf8_lossy(&listing)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count();
    if entries == 0 {
        return Err(snapshot_error(format!(
            "dump `{}` holds no entries",
            dump.display()
        )));
    }
    Ok(entries)
}

/// Restores a dump into a new scratch database on the configured server, reads its counts and
/// drops it again.
///
/// # Errors
/// The role may not create databases, or the restore failed.
pub async fn check_pg_restore(
    config: &PostgresConfig,
    dump: &Path,
) -> Result<SnapshotInfo, StorageError> {
    let admin = pg_connect(config, &config.name, "pier-backup").await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let scratch = format!("pier_verify_{}_{nanos}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&scratch)))
        .await?;
    let result = async {
        let mut cmd = pg_tool("pg_restore", config, &scratch);
        cmd.args([
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--dbname",
        ])
        .arg(&scratch)
        .arg(dump);
        run_tool("pg_restore", cmd).await?;
        let client = pg_connect(config, &scratch, "pier-backup").await?;
        pg_info(&client).await
    }
    .await;
    let _ = admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&scratch)
        ))
        .await;
    result
}

/// How many other pier processes are connected to the configured PostgreSQL database.
///
/// # Errors
/// The server cannot be reached.
pub async fn pg_pier_sessions(config: &PostgresConfig) -> Result<i64, StorageError> {
    let client = pg_connect(config, &config.name, "pier-restore").await?;
    Ok(client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'pier' AND pid <> pg_backend_pid()",
            &[],
        )
        .await?
        .get(0))
}

/// Replaces every table, view and sequence of pier's schema with the contents of `dump`, in one
/// transaction: either the whole dump is in place, or the database is unchanged.
///
/// # Errors
/// A client tool is missing or failed; the database is then as it was.
pub async fn restore_postgres(config: &PostgresConfig, dump: &Path) -> Result<(), StorageError> {
    const CLEAR: &str = "\\set ON_ERROR_STOP 1
DO $pier$ DECLARE r record; BEGIN
  FOR r IN SELECT format('%I.%I', schemaname, viewname) AS n FROM pg_views
           WHERE schemaname = current_schema() LOOP
    EXECUTE 'DROP VIEW IF EXISTS ' || r.n || ' CASCADE';
  END LOOP;
  FOR r IN SELECT format('%I.%I', schemaname, tablename) AS n FROM pg_tables
           WHERE schemaname = current_schema() LOOP
    EXECUTE 'DROP TABLE IF EXISTS ' || r.n || ' CASCADE';
  END LOOP;
  FOR r IN SELECT format('%I.%I', sequence_schema, sequence_name) AS n
           FROM information_schema.sequences WHERE sequence_schema = current_schema() LOOP
    EXECUTE 'DROP SEQUENCE IF EXISTS ' || r.n || ' CASCADE';
  END LOOP;
END $pier$;
";
    check_pg_dump(dump).await?;
    // pg_restore turns the dump into SQL; psql runs it after CLEAR, all in one transaction.
    let mut script = tokio::process::Command::new("pg_restore");
    script
        .args(["--no-owner", "--no-privileges", "--file=-"])
        .arg(dump)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut restore = script.spawn().map_err(|e| StorageError::Snapshot {
        message: format!("failed to run `pg_restore` (install the PostgreSQL client tools): {e}"),
        source: Some(Box::new(e)),
    })?;
    let mut psql = pg_tool("psql", config, &config.name);
    psql.args(["--no-psqlrc", "--quiet", "--single-transaction", "--file=-"])
        .stdin(Stdio::piped());
    let mut apply = psql.spawn().map_err(|e| StorageError::Snapshot {
        message: format!("failed to run `psql` (install the PostgreSQL client tools): {e}"),
        source: Some(Box::new(e)),
    })?;
    let (Some(mut sql), Some(mut input)) = (restore.stdout.take(), apply.stdin.take()) else {
        return Err(snapshot_error("client tool pipes are missing".into()));
    };
    let feed = async {
        input.write_all(CLEAR.as_bytes()).await?;
        tokio::io::copy(&mut sql, &mut input).await?;
        input.shutdown().await?;
        drop(input);
        std::io::Result::Ok(())
    };
    let fed = feed.await;
    let mut restore_err = Vec::new();
    if let Some(mut e) = restore.stderr.take() {
        let _ = e.read_to_end(&mut restore_err).await;
    }
    let restore_status = restore.wait().await;
    let applied = apply.wait_with_output().await;
    let restore_ok = matches!(&restore_status, Ok(s) if s.success());
    match applied {
        Ok(out) if out.status.success() && restore_ok && fed.is_ok() => Ok(()),
        Ok(out) if !out.status.success() => Err(snapshot_error(format!(
            "`psql` failed to apply the dump; the database is unchanged: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        _ => Err(snapshot_error(format!(
            "`pg_restore` failed to read the dump; the database is unchanged: {}",
            String::from_utf8_lossy(&restore_err).trim()
        ))),
    }
}

/// The files a SQLite database at `db` consists of (the database, its WAL and shared memory).
pub fn sqlite_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [db.to_owned(), with("-wal"), with("-shm")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_doubled_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn the_password_goes_only_to_pgpassword() {
        let config = PostgresConfig {
            host: "db".into(),
            port: 5432,
            name: "pier".into(),
            user: "u".into(),
            password: Some("s3cret".to_owned().into()),
            tls: PgTlsMode::Disable,
            tls_ca_file: None,
            pool_size: 1,
            connect_timeout: std::time::Duration::from_secs(5),
        };
        let env = pg_env(&config, "pier");
        let holders: Vec<_> = env.iter().filter(|(_, v)| v.contains("s3cret")).collect();
        assert_eq!(holders, vec![&("PGPASSWORD", "s3cret".to_owned())]);
    }

    #[test]
    fn a_sqlite_snapshot_is_consistent_and_checkable() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);
             CREATE TABLE _migrations (version INTEGER); INSERT INTO _migrations VALUES (3);",
        )
        .unwrap();
        let dest = dir.path().join("copy.db");
        let info = snapshot_sqlite(&db, &dest).unwrap();
        assert_eq!(info.tables["t"], 2);
        assert_eq!(info.schema_version, 3);
        assert_eq!(check_sqlite(&dest).unwrap(), info);
        // A damaged b-tree page (page 2: the header of a table's root) fails the check.
        let mut bytes = std::fs::read(&dest).unwrap();
        let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        for b in &mut bytes[page_size..page_size + 12] {
            *b ^= 0x5a;
        }
        std::fs::write(&dest, bytes).unwrap();
        assert!(check_sqlite(&dest).is_err());
    }
}
