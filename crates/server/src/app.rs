use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use pier_api::AppState;
use pier_config::{Config, DatabaseConfig, Role};
use pier_core::ErrorKind;
use pier_files::FileStore;
use pier_gateway::{Backend, Gateway, GatewayError};
use pier_ops::backup::{Backups, CronSchedule, RetentionPolicy, ScheduleConfig};
use pier_ops::{Metrics, Readiness};
use pier_storage::{StorageError, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::MIGRATIONS;
use crate::middleware::{Observer, observe};

/// Free space below which `/readyz` reports the disk as low.
const MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;
/// Longest pause between two attempts to reach an unavailable database at start.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("server error")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Files(#[from] pier_files::FilesError),
    #[error("invalid value for `backups.cron`")]
    BackupSchedule(#[source] pier_ops::backup::CronError),
}

/// A bound, ready-to-run pier.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    /// `pier serve`: the gateway fronts the router in this process.
    gateway: Option<Gateway>,
    store: Store,
    readiness: Arc<Readiness>,
    shutdown_timeout: Duration,
    /// `http.drain_seconds`: readiness fails this long before the listener closes.
    drain: Duration,
    /// Migrations could not run yet because the database was unreachable.
    migrate_in_background: bool,
    /// Scheduled backups, unless `backups.cron` is empty.
    schedule: Option<(Backups, ScheduleConfig)>,
    /// Stops the server like a signal would (a restore was scheduled through the API).
    restart: Arc<tokio::sync::Notify>,
    /// In development: the state that offers the first-superuser setup link.
    setup: Option<AppState>,
    /// What the handlers share (tests reach the records engine through it).
    state: AppState,
}

impl Application {
    /// Opens the database, applies migrations (or schedules them, when PostgreSQL is not
    /// reachable yet), and binds the listener from `config.http.addr`.
    ///
    /// # Errors
    /// The database cannot be opened, the schema is newer than this build, a migration fails,
    /// or the address cannot be bound.
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let addr = config.http.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Application::build_with_listener(config, listener).await
    }

    /// As [`Application::build`], on a listener bound by the caller (tests bind port 0).
    ///
    /// # Errors
    /// As [`Application::build`], except binding.
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> Result<Application, StartError> {
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.http.addr,
            source,
        })?;
        let cron = config
            .backups
            .cron
            .as_deref()
            .map(CronSchedule::parse)
            .transpose()
            .map_err(StartError::BackupSchedule)?;
        let store = Store::open(&config.database).await?;
        let migrate_in_background = match store.migrate(MIGRATIONS).await {
            Ok(applied) => {
                if !applied.is_empty() {
                    tracing::info!(applied = ?applied, "database migrated");
                }
                false
            }
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "database unavailable at start; retrying in the background");
                true
            }
            Err(e) => return Err(e.into()),
        };
        let disk_dir = match &config.database {
            DatabaseConfig::Sqlite(s) => s.path.parent().map(std::path::Path::to_path_buf),
            DatabaseConfig::Postgres(_) => None,
        };
        let readiness = Arc::new(Readiness::new(disk_dir, MIN_FREE_BYTES));
        if !migrate_in_background {
            readiness.set_migrated();
        }
        let metrics = Arc::new(Metrics::new());
        let files = match &config.files.s3 {
            Some(s3) => FileStore::s3(s3),
            None => FileStore::local(&config.paths.storage_dir),
        }?;
        tracing::info!(store = %files.backend(), "uploaded files");
        let state = AppState::new(
            &config,
            store.clone(),
            metrics.clone(),
            readiness.clone(),
            MIGRATIONS,
            files,
        );
        let restart = state.restart_signal();
        let schedule = cron.map(|cron| {
            (
                state.backups().clone(),
                ScheduleConfig {
                    cron,
                    retention: RetentionPolicy {
                        keep_daily: config.backups.keep_daily,
                        keep_weekly: config.backups.keep_weekly,
                    },
                    alert_webhook: config.backups.alert_webhook.clone(),
                },
            )
        });
        let observer = Arc::new(Observer::new(
            metrics.clone(),
            config.http.request_timeout,
            config.log.requests,
            readiness.clone(),
        ));
        let setup = (!config.is_production()).then(|| state.clone());
        let shared = state.clone();
        let router = pier_api::router(state)
            .layer(DefaultBodyLimit::max(config.http.body_limit))
            .layer(axum::middleware::from_fn_with_state(observer, observe));
        let gateway = match config.role {
            Role::Serve => Some(Gateway::new(
                &config,
                Some(Backend::new(router.clone())),
                metrics,
            )?),
            _ => None,
        };
        Ok(Application {
            listener,
            addr,
            router,
            gateway,
            store,
            readiness,
            shutdown_timeout: config.http.shutdown_timeout,
            drain: config.http.drain,
            migrate_in_background,
            schedule,
            restart,
            setup,
            state: shared,
        })
    }

    /// The records engine the handlers use (tests subscribe to its events with it).
    ///
    /// # Errors
    /// The database is not migrated yet, or cannot be read.
    pub async fn engine(&self) -> Result<Arc<pier_records::Engine>, pier_api::ApiError> {
        self.state.engine().await
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The gateway in front of the backend (`pier serve`), for reloads.
    pub fn gateway(&self) -> Option<Gateway> {
        self.gateway.clone()
    }

    /// A handle to the database (tests look behind the API with it).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests finish
    /// within the shutdown deadline, and closes the database.
    ///
    /// # Errors
    /// The server failed, or a migration that could only run once the database came up failed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Application {
            listener,
            addr,
            router,
            gateway,
            store,
            readiness,
            shutdown_timeout,
            drain,
            migrate_in_background,
            schedule,
            restart,
            setup,
            state,
        } = self;
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (fatal_tx, mut fatal_rx) = tokio::sync::mpsc::channel::<StorageError>(1);

        if migrate_in_background {
            let store = store.clone();
            let readiness = readiness.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                tokio::select! {
                    r = migrate_with_retry(&store, &readiness) => {
                        if let Err(e) = r {
                            let _ = fatal_tx.send(e).await;
                        }
                    }
                    _ = stop.changed() => {}
                }
            });
        }

        if let Some((backups, config)) = schedule {
            tracing::info!(cron = %config.cron, "backup schedule on (UTC)");
            let mut stop = stop_rx.clone();
            tokio::spawn(pier_ops::backup::run_schedule(
                backups,
                config,
                async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                },
            ));
        }

        let draining = readiness.clone();
        let signal = async move {
            let fatal = tokio::select! {
                () = shutdown => None,
                () = restart.notified() => {
                    tracing::info!("stopping to restore a backup");
                    None
                }
                e = fatal_rx.recv() => e,
            };
            draining.set_draining();
            crate::systemd::stopping();
            if fatal.is_none() && !drain.is_zero() {
                // `/readyz` fails while requests are still served, so that gateways and
                // Kubernetes stop sending before the listener closes.
                tracing::info!(seconds = drain.as_secs(), "draining");
                tokio::time::sleep(drain).await;
            }
            // Realtime streams would hold the server open: they end now, and their clients
            // reconnect (to another backend, behind a gateway).
            state.realtime().close_all();
            let _ = stop_tx.send(true);
            fatal
        };
        let (fatal_out_tx, mut fatal_out_rx) = tokio::sync::oneshot::channel();
        let graceful = async move {
            let fatal = signal.await;
            let _ = fatal_out_tx.send(fatal);
        };

        let scheme = gateway.as_ref().map_or("http", Gateway::scheme);
        tracing::info!(addr = %addr, "listening on {scheme}://{addr}");
        crate::systemd::ready();
        if let Some(state) = setup {
            let readiness = readiness.clone();
            tokio::spawn(offer_setup_link(
                state,
                readiness,
                format!("{scheme}://{}", shown(addr)),
            ));
        }
        let result = match gateway {
            Some(gateway) => {
                // The gateway drains its connections within the same deadline.
                gateway
                    .serve(listener, graceful)
                    .await
                    .map_err(StartError::Serve)
            }
            None => {
                let server = axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(graceful);
                let deadline = async move {
                    let _ = stop_rx.wait_for(|stopped| *stopped).await;
                    tokio::time::sleep(shutdown_timeout).await;
                };
                tokio::select! {
                    r = server.into_future() => r.map_err(StartError::Serve),
                    () = deadline => {
                        tracing::warn!(
                            timeout_seconds = shutdown_timeout.as_secs(),
                            "in-flight requests did not finish within the shutdown deadline"
                        );
                        Ok(())
                    }
                }
            }
        };
        store.close().await;
        tracing::info!("stopped");
        result?;
        match fatal_out_rx.try_recv() {
            Ok(Some(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

async fn migrate_with_retry(store: &Store, readiness: &Readiness) -> Result<(), StorageError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match store.migrate(MIGRATIONS).await {
            Ok(applied) => {
                readiness.set_migrated();
                tracing::info!(applied = ?applied, "database reachable; migrations applied");
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                tracing::warn!(
                    error = %e,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "database unavailable; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(e) => {
                tracing::error!(error = %e, "migrations failed");
                return Err(e);
            }
        }
    }
}

/// The address as a browser should use it: a wildcard bind is reached on the loopback.
fn shown(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// In development, once the database is migrated: while no superuser exists, prints a one-time
/// link that creates the first one (as PocketBase does). It goes to the console only, never
/// into a log file.
async fn offer_setup_link(state: AppState, readiness: Arc<Readiness>, base: String) {
    while !readiness.is_migrated() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match state.first_superuser_setup_path().await {
        Ok(Some(path)) => eprintln!(
            "\n(!) No superuser exists yet. Open this one-time link (valid for 30 minutes) to create the first one:\n    {base}{path}\n    (or run: pier superuser upsert EMAIL PASSWORD)\n"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = ?e, "could not check for a superuser"),
    }
}
