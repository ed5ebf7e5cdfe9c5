//! The validated configuration that the rest of pier reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use toml::Value;

use crate::gateway::GatewayConfig;
use crate::load::{self, Layers};
use crate::net::IpNet;
use crate::raw::{AppEnv, Durability, PgTlsMode, RawConfig, is_secret};
use crate::validate::{resolve_defaults, unknown_field, unknown_key_path, validate};
use crate::{ConfigError, Env, Flag, Source};

/// Which subcommand is loading the configuration; it picks the default listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `pier serve`: gateway and backend in one process.
    Serve,
    /// `pier backend`: the API alone, behind a gateway.
    Backend,
    /// `pier gateway`.
    Gateway,
    /// One-shot commands (`migrate`, `check`, …) that do not listen.
    Tool,
}

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The subcommand.
    pub role: Role,
    /// `--config`, if given (else `PIER_CONFIG`).
    pub config_file: Option<PathBuf>,
    /// Flags that set keys, highest precedence.
    pub flags: Vec<Flag>,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The lowercase name, as `LOG_LEVEL` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to bind; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_timeout: Duration,
    /// Readiness fails this long before the listener closes on shutdown.
    pub drain: Duration,
    /// Per-request deadline.
    pub request_timeout: Duration,
    /// Largest accepted request body.
    pub body_limit: usize,
}

/// Folders and files.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub database_file: PathBuf,
    pub public_dir: PathBuf,
    pub storage_dir: PathBuf,
    pub backups_dir: PathBuf,
    pub certs_dir: PathBuf,
    pub logs_dir: PathBuf,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
    /// Write to `paths.logs_dir` too, rotated daily.
    pub file: bool,
    /// Daily files kept.
    pub max_files: usize,
    /// One line per request.
    pub requests: bool,
}

/// The embedded SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub path: PathBuf,
    pub durability: Durability,
    pub read_connections: usize,
    pub busy_timeout: Duration,
    pub wal_max_bytes: u64,
    pub max_batch: usize,
}

/// An external PostgreSQL server.
#[derive(Clone)]
pub struct PostgresConfig {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    pub password: Option<SecretString>,
    pub tls: PgTlsMode,
    pub tls_ca_file: Option<PathBuf>,
    pub pool_size: usize,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Which database engine, with its settings.
#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    Sqlite(SqliteConfig),
    Postgres(PostgresConfig),
}

/// Who may read `/metrics`.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Open to everyone (development).
    pub open: bool,
    pub allow: Vec<IpNet>,
    pub token: Option<SecretString>,
}

/// Scheduled backups (`[backups]`).
#[derive(Debug, Clone)]
pub struct BackupsConfig {
    /// The cron expression (UTC); `None` turns the schedule off. Checked by `pier-ops`.
    pub cron: Option<String>,
    /// The newest scheduled backup of each of this many days is kept.
    pub keep_daily: usize,
    /// The newest scheduled backup of each of this many weeks is kept.
    pub keep_weekly: usize,
    /// Receives a JSON `POST` when a scheduled backup fails.
    pub alert_webhook: Option<http::Uri>,
}

/// Record events after commit (`[events]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// PostgreSQL: events go through the outbox table to every backend.
    pub outbox: bool,
    /// Events kept in memory for subscribers that resume.
    pub ring_size: usize,
    /// How far a subscriber may fall behind before it is told it lagged.
    pub subscriber_buffer: usize,
    /// PostgreSQL: how long delivered events stay in the outbox.
    pub keep: Duration,
    /// PostgreSQL: how many delivered events the outbox keeps at most.
    pub keep_count: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        let raw = crate::raw::RawEvents::default();
        EventsConfig {
            outbox: raw.outbox,
            ring_size: usize::try_from(raw.ring_size).unwrap_or(usize::MAX),
            subscriber_buffer: usize::try_from(raw.subscriber_buffer).unwrap_or(usize::MAX),
            keep: Duration::from_secs(raw.keep_seconds),
            keep_count: raw.keep_count,
        }
    }
}

/// An outside API proxied under `/api/ext/<name>/`.
#[derive(Debug, Clone)]
pub struct OutsideApi {
    pub name: String,
    pub url: http::Uri,
    pub key: Option<SecretString>,
    /// Header that carries the key; `authorization` means `Bearer <key>`.
    pub header: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The subcommand the configuration was loaded for.
    pub role: Role,
    /// The configuration file read, if any (`--config` or `PIER_CONFIG`).
    pub file: Option<PathBuf>,
    pub app_env: AppEnv,
    pub debug: bool,
    pub domain: Option<String>,
    pub http: HttpConfig,
    pub paths: Paths,
    pub log: LogConfig,
    pub database: DatabaseConfig,
    pub metrics: MetricsConfig,
    pub backups: BackupsConfig,
    pub events: EventsConfig,
    pub files: crate::files::FilesConfig,
    pub realtime: crate::realtime::RealtimeConfig,
    pub smtp: crate::smtp::SmtpConfig,
    pub outbound: crate::outbound::OutboundConfig,
    pub apis: Vec<OutsideApi>,
    pub gateway: GatewayConfig,
    pub tls: crate::tls::TlsConfig,
    pub(crate) resolved: Arc<RawConfig>,
    pub(crate) layers: Arc<Layers>,
}

impl Config {
    /// Loads every layer from the given environment and validates the result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key, where its value came from, and what was expected.
    pub fn load(options: LoadOptions, env: &Env) -> Result<Config, ConfigError> {
        let file = load::config_file(options.config_file, env);
        let layers = load::merge(file.as_deref(), env, &options.flags)?;
        let mut raw: RawConfig =
            serde_path_to_error::deserialize(Value::Table(layers.root.clone())).map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner().to_string();
                let origin = layers.origin(&key);
                match unknown_field(&inner) {
                    Some(field) => ConfigError::UnknownKey {
                        key: unknown_key_path(&key, field),
                        origin: layers.origin(&unknown_key_path(&key, field)),
                    },
                    None => ConfigError::Invalid {
                        key,
                        origin,
                        message: inner,
                    },
                }
            })?;
        resolve_defaults(&mut raw, &layers, options.role);
        let mut config = validate(raw, layers, options.role)?;
        config.file = file;
        Ok(config)
    }

    /// Loads a configuration from defaults and flags alone (tests, embedded use).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_flags(role: Role, flags: Vec<Flag>) -> Result<Config, ConfigError> {
        Config::load(
            LoadOptions {
                role,
                config_file: None,
                flags,
            },
            &Env::default(),
        )
    }

    /// Notes about the configuration that did not stop it from loading (log them).
    pub fn warnings(&self) -> &[String] {
        &self.layers.warnings
    }

    /// Where the value of a key came from.
    pub fn origin(&self, key: &str) -> Source {
        self.layers.origin(key)
    }

    /// True when pier runs with `APP_ENV=production`.
    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// The effective configuration as `key = value  # source` lines, secrets redacted.
    pub fn describe(&self) -> String {
        let table = toml::Table::try_from(&*self.resolved).unwrap_or_default();
        let mut flat = Vec::new();
        load::leaves("", &table, &mut flat);
        let mut out = String::new();
        for (key, value) in flat {
            let shown = if is_secret(&key) {
                "\"<redacted>\"".to_owned()
            } else {
                value.to_string()
            };
            let origin = self.layers.origin(&key);
            out.push_str(&format!("{key} = {shown}  # {origin}\n"));
        }
        out
    }

    /// Creates the data folder (and the database's folder) if needed and checks that they are
    /// folders and writable; checks the public folder when it was set explicitly and the logs
    /// folder when file logging is on.
    ///
    /// # Errors
    /// [`ConfigError::Folder`] naming the key, its source and the problem.
    pub fn prepare_folders(&self) -> Result<(), ConfigError> {
        self.writable_folder("paths.data_dir", &self.paths.data_dir)?;
        if let DatabaseConfig::Sqlite(s) = &self.database
            && let Some(parent) = s.path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            self.writable_folder("paths.database_file", parent)?;
        }
        if self.log.file {
            self.writable_folder("paths.logs_dir", &self.paths.logs_dir)?;
        }
        if self.origin("paths.public_dir") != Source::Default && !self.paths.public_dir.is_dir() {
            return Err(self.folder_error(
                "paths.public_dir",
                &self.paths.public_dir,
                "does not exist or is not a folder",
            ));
        }
        Ok(())
    }

    /// As [`Config::prepare_folders`], but creates nothing: a missing folder passes when its
    /// parent could hold it. Used by `pier check`.
    ///
    /// # Errors
    /// [`ConfigError::Folder`] naming the key, its source and the problem.
    pub fn check_folders(&self) -> Result<(), ConfigError> {
        let mut folders = vec![("paths.data_dir", self.paths.data_dir.clone())];
        if let DatabaseConfig::Sqlite(s) = &self.database
            && let Some(parent) = s.path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            folders.push(("paths.database_file", parent.to_owned()));
        }
        if self.log.file {
            folders.push(("paths.logs_dir", self.paths.logs_dir.clone()));
        }
        for (key, path) in folders {
            if path.exists() {
                if !path.is_dir() {
                    return Err(self.folder_error(key, &path, "is a file, not a folder"));
                }
                let meta = std::fs::metadata(&path)
                    .map_err(|e| self.folder_error(key, &path, &format!("cannot be read: {e}")))?;
                if meta.permissions().readonly() {
                    return Err(self.folder_error(key, &path, "is not writable"));
                }
            } else {
                let mut ancestor = path.parent();
                while let Some(a) = ancestor.filter(|a| !a.as_os_str().is_empty() && !a.exists()) {
                    ancestor = a.parent();
                }
                if let Some(a) = ancestor.filter(|a| !a.as_os_str().is_empty())
                    && !a.is_dir()
                {
                    return Err(self.folder_error(
                        key,
                        &path,
                        &format!("cannot be created: `{}` is not a folder", a.display()),
                    ));
                }
            }
        }
        if self.origin("paths.public_dir") != Source::Default && !self.paths.public_dir.is_dir() {
            return Err(self.folder_error(
                "paths.public_dir",
                &self.paths.public_dir,
                "does not exist or is not a folder",
            ));
        }
        Ok(())
    }

    fn folder_error(&self, key: &str, path: &Path, problem: &str) -> ConfigError {
        ConfigError::Folder {
            key: key.to_owned(),
            origin: self.origin(key),
            path: path.to_owned(),
            problem: problem.to_owned(),
        }
    }

    fn writable_folder(&self, key: &str, path: &Path) -> Result<(), ConfigError> {
        if path.exists() && !path.is_dir() {
            return Err(self.folder_error(key, path, "is a file, not a folder"));
        }
        if let Err(e) = std::fs::create_dir_all(path) {
            return Err(self.folder_error(key, path, &format!("cannot be created: {e}")));
        }
        let probe = path.join(format!(".pier-write-test-{}", std::process::id()));
        match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                Ok(())
            }
            Err(e) => Err(self.folder_error(key, path, &format!("is not writable: {e}"))),
        }
    }
}

/// Reveals a secret; the single place where configuration secrets are exposed to callers.
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}
