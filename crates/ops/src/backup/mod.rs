//! Backups: one archive per backup in the backups folder, made, listed, verified, pruned and
//! restored here. The database snapshot itself comes from `pier-storage`; HTTP and the command
//! line live in `pier-api` and `pier`.
//!
//! # Layout
//! - [`BackupKey`]: the validated archive names (no path can escape the backups folder).
//! - `archive`: the tar + zstd format and its checks; `manifest`: `manifest.json`.
//! - [`Backups`]: the operations. An archive is written inside a scratch folder in the backups
//!   folder, synced, then linked under its final name, so a partial archive is never listed.
//!   Scratch folders carry a lock held by their writer; one whose lock is free belongs to a dead
//!   process and is removed by the next operation.
//! - [`BackupTarget`]: where finished archives are kept ([`LocalFolder`], the backups folder;
//!   S3-compatible storage is meant to be a second implementation). Scratch work stays local.
//! - `restore`: the atomic swap of the restored data into place.
//! - `retention` and `cron`: the schedule's rules.

mod archive;
mod cron;
mod key;
mod manifest;
mod restore;
mod retention;
mod schedule;
mod target;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pier_config::{Config, DatabaseConfig};
use pier_core::ErrorKind;
use pier_storage::{Dialect, StorageError};

pub use cron::{CronError, CronSchedule};
pub use key::{AUTO_PREFIX, BackupKey, EXTENSION, KeyError};
pub use manifest::{Manifest, ManifestFile};
pub use retention::RetentionPolicy;
pub use schedule::{ScheduleConfig, run_schedule};
pub use target::{BackupTarget, LocalFolder};

use archive::{ArchiveWriter, extract, io_error, under};
use manifest::{DATABASE_DIR, PUBLIC_DIR, STORAGE_DIR, database_member};

/// Prefix of scratch folders inside the backups folder (never listed as backups).
const SCRATCH_PREFIX: &str = ".pier-tmp-";
/// A restore asked for through the API, carried out when pier next starts (it re-executes
/// itself at once): the file holds the archive's name.
const PENDING_RESTORE: &str = ".pier-restore-pending";

/// Everything a backup operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The name is not a valid backup name.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// No backup has this name.
    #[error("backup `{key}` does not exist")]
    NotFound { key: String },
    /// A backup with this name exists already.
    #[error("backup `{key}` already exists")]
    AlreadyExists { key: String },
    /// Another backup or restore is running in this process.
    #[error("another backup or restore is in progress")]
    Busy,
    /// A file operation failed.
    #[error("{action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// The archive is corrupted, truncated or not a pier backup.
    #[error("backup `{key}` is damaged: {problem}")]
    Damaged { key: String, problem: String },
    /// The database snapshot, check or restore failed.
    #[error("{action}")]
    Database {
        action: String,
        #[source]
        source: StorageError,
    },
    /// The operation is not allowed in the current state (a running pier, another engine).
    #[error("{message}")]
    Refused { message: String },
}

impl BackupError {
    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::InvalidKey(_) | BackupError::Damaged { .. } => ErrorKind::Invalid,
            BackupError::NotFound { .. } => ErrorKind::NotFound,
            BackupError::AlreadyExists { .. } | BackupError::Busy | BackupError::Refused { .. } => {
                ErrorKind::Conflict
            }
            BackupError::Io { .. } => ErrorKind::Unavailable,
            BackupError::Database { source, .. } => match source.kind() {
                ErrorKind::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
        }
    }
}

impl BackupError {
    /// The message with every cause after it, `: `-separated (for logs and alerts).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let text = s.to_string();
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = s.source();
        }
        out
    }
}

fn database_error(action: impl Into<String>) -> impl FnOnce(StorageError) -> BackupError {
    let action = action.into();
    move |source| BackupError::Database { action, source }
}

/// Gauges and counters of the backups, exported on `/metrics`.
#[derive(Debug, Default)]
pub struct BackupMetrics {
    last_success_unix: AtomicU64,
    last_duration_ms: AtomicU64,
    last_size_bytes: AtomicU64,
    failures: AtomicU64,
}

impl BackupMetrics {
    fn success(&self, duration: Duration, size: u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_success_unix.store(now, Ordering::Relaxed);
        self.last_duration_ms.store(
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.last_size_bytes.store(size, Ordering::Relaxed);
    }

    fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Unix time of the last successful backup (0 when none since start).
    pub fn last_success_unix(&self) -> u64 {
        self.last_success_unix.load(Ordering::Relaxed)
    }

    /// Duration of the last successful backup.
    pub fn last_duration(&self) -> Duration {
        Duration::from_millis(self.last_duration_ms.load(Ordering::Relaxed))
    }

    /// Size of the last successful archive.
    pub fn last_size_bytes(&self) -> u64 {
        self.last_size_bytes.load(Ordering::Relaxed)
    }

    /// Failed backups since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Where the data to back up lives and where archives go.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// The backups folder.
    pub backups_dir: PathBuf,
    /// The database.
    pub database: DatabaseConfig,
    /// Uploaded files.
    pub storage_dir: PathBuf,
    /// The static folder (included when it exists).
    pub public_dir: PathBuf,
}

impl BackupSettings {
    /// The settings of a loaded configuration.
    pub fn from_config(config: &Config) -> BackupSettings {
        BackupSettings {
            backups_dir: config.paths.backups_dir.clone(),
            database: config.database.clone(),
            storage_dir: config.paths.storage_dir.clone(),
            public_dir: config.paths.public_dir.clone(),
        }
    }

    fn engine(&self) -> Dialect {
        match self.database {
            DatabaseConfig::Sqlite(_) => Dialect::Sqlite,
            DatabaseConfig::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// One archive in the backups folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupEntry {
    /// Its name.
    pub key: BackupKey,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: SystemTime,
}

/// A backup just written.
#[derive(Debug, Clone)]
pub struct CreatedBackup {
    /// Its name.
    pub key: BackupKey,
    /// Archive size in bytes.
    pub size: u64,
    /// How long it took.
    pub duration: Duration,
    /// Its manifest.
    pub manifest: Manifest,
}

/// What [`Backups::verify`] found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The archive's manifest (every checksum matched).
    pub manifest: Manifest,
    /// Rows per table counted in the restored scratch copy, when it could be made.
    pub restored_tables: Option<std::collections::BTreeMap<String, u64>>,
    /// Why the row counts were not compared, when they were not.
    pub note: Option<String>,
}

/// A progress line for the command line (plain text, one step per call).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// The backup operations on one configuration. Cheap to clone.
#[derive(Clone)]
pub struct Backups {
    settings: Arc<BackupSettings>,
    /// Where finished archives are kept.
    target: Arc<dyn BackupTarget>,
    metrics: Arc<BackupMetrics>,
    /// One backup or restore at a time in this process.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups")
            .field("backups_dir", &self.settings.backups_dir)
            .finish_non_exhaustive()
    }
}

/// A folder for one operation's temporary files, removed when dropped. Its `lock` file stays
/// locked while the owner lives, so [`clean_stale`] never removes a live operation's folder.
struct Scratch {
    dir: PathBuf,
    _lock: File,
}

impl Scratch {
    fn new(parent: &Path) -> Result<Scratch, BackupError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = parent.join(format!(
            "{SCRATCH_PREFIX}{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(io_error(format!("failed to create `{}`", dir.display())))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(io_error(format!(
            "failed to create `{}`",
            lock_path.display()
        )))?;
        lock.try_lock().map_err(|e| BackupError::Io {
            action: format!("failed to lock `{}`", lock_path.display()),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Scratch { dir, _lock: lock })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(%error, path = %self.dir.display(), "failed to remove a scratch folder");
        }
    }
}

/// Removes scratch folders left by processes that died (their lock is free).
fn clean_stale(backups_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(backups_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(SCRATCH_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let free = match File::open(dir.join("lock")) {
            Ok(f) => f.try_lock().is_ok(),
            // No lock file: the writer died before creating it, or is creating it right now
            // (so only an old folder counts as abandoned).
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(60)),
        };
        if free {
            tracing::info!(path = %dir.display(), "removing an unfinished backup left by a stopped process");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Io {
            action: "a backup task failed".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

impl Backups {
    /// The operations for `settings`, reporting to `metrics`.
    pub fn new(settings: BackupSettings, metrics: Arc<BackupMetrics>) -> Backups {
        Backups {
            target: Arc::new(LocalFolder::new(settings.backups_dir.clone())),
            settings: Arc::new(settings),
            metrics,
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BackupSettings {
        &self.settings
    }

    /// The metrics.
    pub fn metrics(&self) -> &BackupMetrics {
        &self.metrics
    }

    /// A local file holding the archive of `key`.
    ///
    /// # Errors
    /// [`BackupError::NotFound`] when there is none.
    pub fn path(&self, key: &BackupKey) -> Result<PathBuf, BackupError> {
        self.target.local_path(key)
    }

    /// The finished archives, newest first. Scratch folders and other files are not listed.
    ///
    /// # Errors
    /// The backups folder exists but cannot be read.
    pub fn list(&self) -> Result<Vec<BackupEntry>, BackupError> {
        self.target.list()
    }

    /// Makes a backup named `name` (default: `pier_backup_<UTC time>.tar.zst`, with the
    /// `@auto_` prefix when `scheduled`).
    ///
    /// # Errors
    /// The name is taken, the database snapshot failed, or the archive cannot be written (the
    /// partial file is removed).
    pub async fn create(
        &self,
        name: Option<BackupKey>,
        scheduled: bool,
        progress: Progress<'_>,
    ) -> Result<CreatedBackup, BackupError> {
        let _running = self.running.try_lock().map_err(|_| BackupError::Busy)?;
        let started = Instant::now();
        let result = self.create_locked(name, scheduled, progress, started).await;
        match &result {
            Ok(created) => self.metrics.success(created.duration, created.size),
            // A name already taken is the caller's mistake, not a failed backup.
            Err(BackupError::AlreadyExists { .. }) => {}
            Err(_) => self.metrics.failure(),
        }
        result
    }

    async fn create_locked(
        &self,
        name: Option<BackupKey>,
        scheduled: bool,
        progress: Progress<'_>,
        started: Instant,
    ) -> Result<CreatedBackup, BackupError> {
        let settings = self.settings.clone();
        let dir = settings.backups_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(io_error(format!("failed to create `{}`", dir.display())))?;
        clean_stale(&dir);
        let now = SystemTime::now();
        let now_ms = i64::try_from(now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()))
            .unwrap_or(i64::MAX);
        let key = name.unwrap_or_else(|| BackupKey::generate(now_ms.div_euclid(1000), scheduled));
        if self.target.exists(&key) {
            return Err(BackupError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let scratch = Scratch::new(&dir)?;
        let engine = settings.engine();
        progress(&format!("copying the {} database", engine.as_str()));
        let snapshot_path = scratch.path("database");
        let info = pier_storage::snapshot(&settings.database, &snapshot_path)
            .await
            .map_err(database_error("failed to snapshot the database"))?;
        progress(&format!(
            "archiving the database, `{}` and `{}`",
            settings.storage_dir.display(),
            settings.public_dir.display()
        ));
        let archive_path = scratch.path("archive");
        let manifest = Manifest {
            format: manifest::FORMAT,
            pier_version: pier_core::VERSION.to_owned(),
            engine: engine.as_str().to_owned(),
            schema_version: info.schema_version,
            created: pier_core::time::format_unix_millis(now_ms),
            created_unix_ms: now_ms,
            database: database_member(engine),
            includes_public: settings.public_dir.is_dir(),
            tables: info.tables,
            total_bytes: 0,
            files: Vec::new(),
        };
        let (target, stored_key) = (self.target.clone(), key.clone());
        let (manifest, size, scratch) = blocking(move || {
            let mut writer = ArchiveWriter::create(&archive_path)?;
            writer.add_file(&snapshot_path, &manifest.database)?;
            writer.add_tree(&settings.storage_dir, STORAGE_DIR)?;
            if manifest.includes_public {
                writer.add_tree(&settings.public_dir, PUBLIC_DIR)?;
            }
            let manifest = writer.finish(manifest)?;
            let size = std::fs::metadata(&archive_path).map_or(0, |m| m.len());
            target.store(&archive_path, &stored_key)?;
            Ok((manifest, size, scratch))
        })
        .await?;
        drop(scratch);
        let duration = started.elapsed();
        progress(&format!(
            "wrote `{key}` ({size} bytes, {} files) in {:.1} s",
            manifest.files.len(),
            duration.as_secs_f64()
        ));
        Ok(CreatedBackup {
            key,
            size,
            duration,
            manifest,
        })
    }

    /// Deletes a backup.
    ///
    /// # Errors
    /// [`BackupError::NotFound`], or the file cannot be removed.
    pub fn delete(&self, key: &BackupKey) -> Result<(), BackupError> {
        self.target.delete(key)
    }

    /// Deletes the scheduled (`@auto_`) archives `policy` does not keep. Returns their names.
    ///
    /// # Errors
    /// The folder cannot be listed or a file cannot be removed.
    pub fn prune(&self, policy: &RetentionPolicy) -> Result<Vec<BackupKey>, BackupError> {
        let scheduled: Vec<(BackupKey, i64)> = self
            .list()?
            .into_iter()
            .filter(|e| e.key.is_scheduled())
            .map(|e| {
                let secs = e
                    .modified
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                (e.key, secs)
            })
            .collect();
        let doomed = policy.prunable(&scheduled);
        for key in &doomed {
            self.delete(key)?;
        }
        Ok(doomed)
    }

    /// Checks an archive: every checksum, then a restore of the database into a scratch place
    /// (`PRAGMA integrity_check` for SQLite; `pg_restore --list` and, when the configured
    /// PostgreSQL role may create databases, a scratch database) whose row counts must equal
    /// the manifest's.
    ///
    /// # Errors
    /// [`BackupError::Damaged`] naming the first problem found.
    pub async fn verify(
        &self,
        archive: &Path,
        progress: Progress<'_>,
    ) -> Result<VerifyReport, BackupError> {
        let dir = self.settings.backups_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(io_error(format!("failed to create `{}`", dir.display())))?;
        clean_stale(&dir);
        let scratch = Scratch::new(&dir)?;
        let key = key_name(archive);
        progress("checking checksums");
        let (extracted, scratch) = {
            let (archive, key) = (archive.to_owned(), key.clone());
            let root = scratch.path("extract");
            blocking(move || {
                let route = |name: &str| -> Option<PathBuf> {
                    [DATABASE_DIR, STORAGE_DIR, PUBLIC_DIR]
                        .iter()
                        .find_map(|prefix| under(name, prefix, &root.join(prefix)))
                };
                Ok((extract(&archive, &key, &route)?, scratch))
            })
            .await?
        };
        let manifest = extracted.manifest;
        let db = scratch.path("extract").join(&manifest.database);
        let damaged = |problem: String| BackupError::Damaged {
            key: key.clone(),
            problem,
        };
        let (restored, note) = match manifest.engine.as_str() {
            "sqlite" => {
                progress("checking the database (integrity_check)");
                let db = db.clone();
                let info = tokio::task::spawn_blocking(move || pier_storage::check_sqlite(&db))
                    .await
                    .map_err(|e| damaged(format!("check task failed: {e}")))?
                    .map_err(|e| damaged(e.to_string()))?;
                (Some(info.tables), None)
            }
            "postgres" => {
                progress("checking the dump (pg_restore --list)");
                pier_storage::check_pg_dump(&db)
                    .await
                    .map_err(|e| damaged(e.to_string()))?;
                match &self.settings.database {
                    DatabaseConfig::Postgres(pg) => {
                        progress("restoring the dump into a scratch database");
                        match pier_storage::check_pg_restore(pg, &db).await {
                            Ok(info) => (Some(info.tables), None),
                            Err(e) if matches!(e, StorageError::Snapshot { .. }) => {
                                return Err(damaged(e.to_string()));
                            }
                            Err(e) => (
                                None,
                                Some(format!("row counts not compared: no scratch database: {e}")),
                            ),
                        }
                    }
                    DatabaseConfig::Sqlite(_) => (
                        None,
                        Some("row counts not compared: no PostgreSQL server is configured".into()),
                    ),
                }
            }
            other => return Err(damaged(format!("unknown engine `{other}` in the manifest"))),
        };
        if let Some(tables) = &restored
            && *tables != manifest.tables
        {
            return Err(damaged(count_mismatch(&manifest.tables, tables)));
        }
        drop(scratch);
        Ok(VerifyReport {
            manifest,
            restored_tables: restored,
            note,
        })
    }

    /// Stores an uploaded archive under `key` after checking every checksum in it.
    ///
    /// # Errors
    /// The name is taken, or the archive is damaged (nothing is kept).
    pub async fn import(&self, key: &BackupKey, bytes: Vec<u8>) -> Result<(), BackupError> {
        let dir = self.settings.backups_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(io_error(format!("failed to create `{}`", dir.display())))?;
        clean_stale(&dir);
        if self.target.exists(key) {
            return Err(BackupError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let scratch = Scratch::new(&dir)?;
        let (target, stored_key) = (self.target.clone(), key.clone());
        let key = key.to_string();
        blocking(move || {
            let upload = scratch.path("upload");
            std::fs::write(&upload, &bytes)
                .map_err(io_error(format!("failed to write `{}`", upload.display())))?;
            let root = scratch.path("extract");
            let route = |name: &str| -> Option<PathBuf> {
                [DATABASE_DIR, STORAGE_DIR, PUBLIC_DIR]
                    .iter()
                    .find_map(|prefix| under(name, prefix, &root.join(prefix)))
            };
            extract(&upload, &key, &route)?;
            File::open(&upload)
                .and_then(|f| f.sync_all())
                .map_err(io_error(format!("failed to write `{}`", upload.display())))?;
            target.store(&upload, &stored_key)?;
            drop(scratch);
            Ok(())
        })
        .await
    }

    /// Replaces the database, uploaded files and (when the archive has it) the static folder
    /// with the archive's. Everything is checked first; the old data is moved aside and removed
    /// only once the new data is in place. Refused while a pier runs on the data.
    ///
    /// # Errors
    /// [`BackupError::Refused`] for a running pier or another engine; [`BackupError::Damaged`];
    /// file or database failures (the old data is then back in place).
    pub async fn restore(
        &self,
        archive: &Path,
        progress: Progress<'_>,
    ) -> Result<Manifest, BackupError> {
        let _running = self.running.try_lock().map_err(|_| BackupError::Busy)?;
        restore::restore(self.settings.clone(), archive, progress).await
    }
}

impl Backups {
    /// Checks an archive of the backups folder (as [`Backups::verify`], and that it holds this
    /// engine's database), then records it as the restore to carry out at the next start.
    ///
    /// # Errors
    /// The archive is damaged or holds another engine's database.
    pub async fn schedule_restore(&self, key: &BackupKey) -> Result<Manifest, BackupError> {
        let path = self.path(key)?;
        let report = self.verify(&path, &|_| {}).await?;
        let engine = self.settings.engine().as_str();
        if report.manifest.engine != engine {
            return Err(BackupError::Refused {
                message: format!(
                    "backup `{key}` holds a {} database; this pier is configured for {engine}",
                    report.manifest.engine
                ),
            });
        }
        let dir = &self.settings.backups_dir;
        let temp = dir.join(format!("{PENDING_RESTORE}.tmp"));
        std::fs::write(&temp, key.as_str())
            .and_then(|()| File::open(&temp)?.sync_all())
            .and_then(|()| std::fs::rename(&temp, dir.join(PENDING_RESTORE)))
            .map_err(io_error(format!(
                "failed to record the pending restore in `{}`",
                dir.display()
            )))?;
        sync_dir(dir);
        Ok(report.manifest)
    }

    /// True when a restore was scheduled through the API and awaits the next start.
    pub fn restore_pending(&self) -> bool {
        self.settings.backups_dir.join(PENDING_RESTORE).is_file()
    }

    /// Carries out a restore recorded by [`Backups::schedule_restore`], if there is one. The
    /// record is removed either way, so a failing restore is not retried at every start.
    ///
    /// # Errors
    /// The restore failed (the old data is then in place).
    pub async fn run_pending_restore(
        &self,
        progress: Progress<'_>,
    ) -> Result<Option<Manifest>, BackupError> {
        let marker = self.settings.backups_dir.join(PENDING_RESTORE);
        let Ok(name) = std::fs::read_to_string(&marker) else {
            return Ok(None);
        };
        let _ = std::fs::remove_file(&marker);
        let key = BackupKey::parse_stored(name.trim())?;
        let path = self.path(&key)?;
        self.restore(&path, progress).await.map(Some)
    }
}

/// The file name of a path, for messages.
fn key_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Describes the first difference between the manifest's row counts and a restored copy's.
fn count_mismatch(
    expected: &std::collections::BTreeMap<String, u64>,
    found: &std::collections::BTreeMap<String, u64>,
) -> String {
    for (table, n) in expected {
        match found.get(table) {
            None => return format!("table `{table}` is missing from the restored database"),
            Some(m) if m != n => {
                return format!(
                    "table `{table}` has {m} rows in the restored database, the manifest says {n}"
                );
            }
            Some(_) => {}
        }
    }
    match found.keys().find(|t| !expected.contains_key(*t)) {
        Some(t) => format!("table `{t}` is in the restored database but not in the manifest"),
        None => "row counts differ".into(),
    }
}
