//! Readiness: is the database reachable, are migrations applied, is there disk space.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use pier_storage::{Migration, Store};

/// The outcome of one readiness check; `ok` is true only when every part is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    pub ok: bool,
    pub database: String,
    pub migrations: String,
    pub disk: String,
}

/// Shared readiness state, set by the start-up task and read by `/readyz`.
#[derive(Debug)]
pub struct Readiness {
    migrated: AtomicBool,
    draining: AtomicBool,
    data_dir: Option<PathBuf>,
    min_free_bytes: u64,
}

impl Readiness {
    /// `data_dir` is checked for free space (SQLite); `None` skips the disk check.
    pub fn new(data_dir: Option<PathBuf>, min_free_bytes: u64) -> Readiness {
        Readiness {
            migrated: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            data_dir,
            min_free_bytes,
        }
    }

    /// Marks migrations as applied.
    pub fn set_migrated(&self) {
        self.migrated.store(true, Ordering::Release);
    }

    /// True once migrations are applied.
    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Marks the process as shutting down: readiness fails so load balancers stop sending.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Checks every part now.
    pub async fn check(
        &self,
        store: Option<&Store>,
        migrations: &'static [Migration],
    ) -> ReadinessReport {
        let database = match store {
            None => "connecting".to_owned(),
            Some(s) => match s.ping().await {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("unreachable: {}", e.kind()),
            },
        };
        let migrations = if self.is_migrated() {
            "ok".to_owned()
        } else if let Some(s) = store.filter(|_| database == "ok") {
            match s.migrations_applied(migrations).await {
                Ok(true) => {
                    self.set_migrated();
                    "ok".to_owned()
                }
                Ok(false) => "pending".to_owned(),
                Err(e) => format!("unknown: {}", e.kind()),
            }
        } else {
            "pending".to_owned()
        };
        let disk = match &self.data_dir {
            None => "ok".to_owned(),
            Some(dir) => match free_bytes(dir) {
                Some(free) if free < self.min_free_bytes => format!("low: {free} bytes free"),
                _ => "ok".to_owned(),
            },
        };
        let draining = self.draining.load(Ordering::Acquire);
        ReadinessReport {
            ok: !draining && database == "ok" && migrations == "ok" && disk == "ok",
            database: if draining {
                "shutting down".into()
            } else {
                database
            },
            migrations,
            disk,
        }
    }
}

/// Free bytes available to unprivileged users on the filesystem holding `path`.
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}
