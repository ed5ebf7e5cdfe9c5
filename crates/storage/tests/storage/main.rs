//! The storage conformance suite: every case runs against SQLite and against PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests unwrap: a failure is a panic with its message.

mod after_commit;
mod cases;
mod durability;
mod sqlite_only;

use std::time::Duration;

use pier_config::{DatabaseConfig, Durability, PgTlsMode, PostgresConfig, SqliteConfig};
use pier_storage::Store;

/// A store on a fresh SQLite file; the folder lives as long as the guard.
pub(crate) async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&sqlite_config(dir.path())).await.unwrap();
    (store, dir)
}

pub(crate) fn sqlite_config(dir: &std::path::Path) -> DatabaseConfig {
    DatabaseConfig::Sqlite(SqliteConfig {
        path: dir.join("data.db"),
        durability: Durability::Full,
        read_connections: 2,
        busy_timeout: Duration::from_secs(5),
        wal_max_bytes: 4 * 1024 * 1024,
        max_batch: 64,
    })
}

/// A store on a fresh PostgreSQL database.
pub(crate) async fn pg_store() -> (Store, pier_pgtest::TestDb) {
    let db = pier_pgtest::database().await;
    let store = Store::open(&pg_config(&db)).await.unwrap();
    (store, db)
}

pub(crate) fn pg_config(db: &pier_pgtest::TestDb) -> DatabaseConfig {
    DatabaseConfig::Postgres(PostgresConfig {
        host: db.host.clone(),
        port: db.port,
        name: db.name.clone(),
        user: db.user.clone(),
        password: db.password.clone().map(Into::into),
        tls: PgTlsMode::Disable,
        tls_ca_file: None,
        pool_size: 8,
        connect_timeout: Duration::from_secs(5),
    })
}

macro_rules! storage_suite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = super::sqlite_store().await;
                    super::suite::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _db) = super::pg_store().await;
                    super::suite::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
    };
}

storage_suite!(
    every_value_type_round_trips,
    a_failing_write_leaves_nothing_behind,
    concurrent_writes_are_all_committed,
    one_failing_write_does_not_undo_its_neighbours,
    unique_violations_are_conflicts,
    placeholders_inside_literals_are_left_alone,
    migrations_apply_once_and_are_listed,
    a_newer_schema_is_refused,
    a_failing_migration_is_rolled_back,
    reads_see_one_snapshot,
    wrong_parameter_counts_are_errors_not_panics,
    a_panicking_closure_is_an_error,
    sessions_commit_or_roll_back_as_one,
    after_commit_work_runs_only_for_committed_writes_in_order,
);

/// Every case the suite runs, whichever file holds it.
mod suite {
    pub(crate) use crate::after_commit::*;
    pub(crate) use crate::cases::*;
}
