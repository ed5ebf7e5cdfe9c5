use std::sync::Arc;

use pier_config::{Config, EventsConfig, MetricsConfig};
use pier_files::{FileStore, ThumbLimits, Thumbs};
use pier_ops::backup::{BackupSettings, Backups};
use pier_ops::{Metrics, Readiness};
use pier_records::Engine;
use pier_storage::{Migration, Store};

use crate::ApiError;

/// What every handler may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: tokio::sync::OnceCell<Arc<Engine>>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    migrations: &'static [Migration],
    metrics_access: MetricsConfig,
    events: EventsConfig,
    production: bool,
    backups: Backups,
    /// Notified when a restore was scheduled and the process should stop and start again.
    restart: Arc<tokio::sync::Notify>,
    /// The first-start setup token, while one is offered.
    setup: crate::setup::SetupSlot,
    /// Uploaded files, and the thumbnails made of them.
    files: FileStore,
    janitor: crate::files::Janitor,
    s3: Option<pier_config::S3Config>,
    thumbs: Thumbs,
    /// `http.body_limit_bytes` and `files.upload_limit_bytes`.
    body_limit: usize,
    upload_limit: u64,
    /// Partial resumable uploads (`<data>/uploads`).
    uploads_dir: std::path::PathBuf,
    /// Realtime clients.
    realtime: Arc<crate::Broker>,
    /// Outgoing mail, and the `[smtp]` server the settings start from.
    mailer: pier_mail::Mailer,
    smtp: pier_config::SmtpConfig,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(
        config: &Config,
        store: Store,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        migrations: &'static [Migration],
        files: FileStore,
    ) -> AppState {
        let realtime = Arc::new(crate::Broker::new(config.realtime.clone()));
        metrics.register(crate::realtime::metrics(&realtime));
        let mailer = pier_mail::Mailer::default();
        metrics.register(crate::mail::metrics(&mailer));
        AppState {
            inner: Arc::new(Inner {
                store,
                engine: tokio::sync::OnceCell::new(),
                backups: Backups::new(BackupSettings::from_config(config), metrics.backups()),
                restart: Arc::new(tokio::sync::Notify::new()),
                setup: crate::setup::SetupSlot::default(),
                metrics,
                readiness,
                migrations,
                metrics_access: config.metrics.clone(),
                events: config.events.clone(),
                production: config.is_production(),
                files,
                janitor: crate::files::Janitor::default(),
                s3: config.files.s3.clone(),
                thumbs: Thumbs::new(
                    config.files.thumb_workers,
                    ThumbLimits {
                        max_pixels: config.files.thumb_max_pixels,
                        ..ThumbLimits::default()
                    },
                ),
                body_limit: config.http.body_limit,
                upload_limit: config.files.upload_limit,
                uploads_dir: config.paths.data_dir.join("uploads"),
                realtime,
                mailer,
                smtp: config.smtp.clone(),
            }),
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The records engine, created on first use once the migrations have been applied (the
    /// database may be unreachable at start).
    ///
    /// # Errors
    /// 503 while the database is unavailable or not migrated.
    pub async fn engine(&self) -> Result<Arc<Engine>, ApiError> {
        if !self.inner.readiness.is_migrated() {
            return Err(ApiError::unavailable("The database is not ready yet."));
        }
        self.inner
            .engine
            .get_or_try_init(|| async {
                let engine = Engine::open(self.inner.store.clone(), self.inner.events.clone())
                    .await
                    .map(Arc::new)?;
                engine.events().on_files_removed(crate::files::janitor(
                    self.inner.files.clone(),
                    &self.inner.janitor,
                ));
                Ok::<_, pier_records::RecordError>(engine)
            })
            .await
            .cloned()
            .map_err(ApiError::from)
    }

    /// The realtime clients of this process.
    pub fn realtime(&self) -> &Arc<crate::Broker> {
        &self.inner.realtime
    }

    /// Outgoing mail.
    pub(crate) fn mailer(&self) -> &pier_mail::Mailer {
        &self.inner.mailer
    }

    /// The `[smtp]` section of the configuration.
    pub(crate) fn smtp_config(&self) -> &pier_config::SmtpConfig {
        &self.inner.smtp
    }

    /// Where uploaded files are kept.
    pub fn files(&self) -> &FileStore {
        &self.inner.files
    }

    /// The S3 bucket of uploaded files, when they are on S3 (`[files.s3]`).
    pub(crate) fn s3_settings(&self) -> Option<&pier_config::S3Config> {
        self.inner.s3.as_ref()
    }

    /// Waits until the files that committed writes took away are deleted.
    pub(crate) async fn files_settled(&self) {
        self.inner.janitor.settled().await;
    }

    pub(crate) fn thumbs(&self) -> &Thumbs {
        &self.inner.thumbs
    }

    /// Where partial resumable uploads are kept.
    pub(crate) fn uploads_dir(&self) -> &std::path::Path {
        &self.inner.uploads_dir
    }

    /// The limit of bodies without files, and of bodies with them.
    pub(crate) fn body_limits(&self) -> (usize, u64) {
        (self.inner.body_limit, self.inner.upload_limit)
    }

    /// The backup operations (shared with the schedule, so one runs at a time).
    pub fn backups(&self) -> &Backups {
        &self.inner.backups
    }

    /// Notified when the process should stop so that it can start again (after
    /// `POST /api/backups/{key}/restore`); the composition root turns it into a shutdown.
    pub fn restart_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.restart.clone()
    }

    /// Checks an archive, records it as the restore to run at the next start and asks the
    /// process to stop and start again.
    pub(crate) async fn request_restore(
        &self,
        key: &pier_ops::backup::BackupKey,
    ) -> Result<(), ApiError> {
        self.inner.backups.schedule_restore(key).await?;
        tracing::info!(%key, "restore scheduled; restarting");
        self.inner.restart.notify_one();
        Ok(())
    }

    /// The metric registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    pub(crate) fn migrations(&self) -> &'static [Migration] {
        self.inner.migrations
    }

    pub(crate) fn metrics_access(&self) -> &MetricsConfig {
        &self.inner.metrics_access
    }

    pub(crate) fn setup_slot(&self) -> &crate::setup::SetupSlot {
        &self.inner.setup
    }

    pub(crate) fn production(&self) -> bool {
        self.inner.production
    }
}
