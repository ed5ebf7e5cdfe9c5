//! The validated configuration that the rest of pier reads.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use toml::Value;

use crate::gateway::GatewayConfig;
use crate::load::{self, Layers};
use crate::net::IpNet;
use crate::raw::{AppEnv, Durability, PgTlsMode, RawConfig, is_secret};
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
    pub apis: Vec<OutsideApi>,
    pub gateway: GatewayConfig,
    pub tls: crate::tls::TlsConfig,
    resolved: Arc<RawConfig>,
    layers: Arc<Layers>,
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

/// The dotted key of an unknown field; serde's path may or may not already end with it.
fn unknown_key_path(path: &str, field: &str) -> String {
    if path == field || path.ends_with(&format!(".{field}")) {
        path.to_owned()
    } else if path.is_empty() || path == "." {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Extracts the field name from serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn explicit(layers: &Layers, key: &str) -> bool {
    layers.origin(key) != Source::Default
}

/// Fills the empty "derive me" values from `app_env`, the role and the data folder.
fn resolve_defaults(raw: &mut RawConfig, layers: &Layers, role: Role) {
    let prod = raw.app_env == AppEnv::Production;
    if raw.http.addr.is_empty() {
        let host = if prod { "0.0.0.0" } else { "127.0.0.1" };
        let port = match role {
            Role::Backend => 8090,
            _ => 8080,
        };
        raw.http.addr = format!("{host}:{port}");
    }
    // An explicit data folder (PocketBase's `--dir`) keeps everything under it.
    let data_explicit = explicit(layers, "paths.data_dir");
    let p = &mut raw.paths;
    let under_data = !prod || data_explicit;
    if p.data_dir.is_empty() {
        p.data_dir = if prod { "/var/lib/pier" } else { "./pier_data" }.into();
    }
    let data = p.data_dir.trim_end_matches('/').to_owned();
    let fill = |v: &mut String, dev: String, production: &str| {
        if v.is_empty() {
            *v = if under_data {
                dev
            } else {
                production.to_owned()
            };
        }
    };
    fill(
        &mut p.database_file,
        format!("{data}/data.db"),
        "/var/lib/pier/db/data.db",
    );
    fill(
        &mut p.storage_dir,
        format!("{data}/storage"),
        "/var/lib/pier/storage",
    );
    fill(
        &mut p.backups_dir,
        format!("{data}/backups"),
        "/srv/pier/backups",
    );
    fill(&mut p.certs_dir, format!("{data}/certs"), "/etc/ssl/pier");
    fill(&mut p.logs_dir, format!("{data}/logs"), "/var/log/pier");
    if p.public_dir.is_empty() {
        p.public_dir = if prod { "/srv/pier/static" } else { "./public" }.into();
    }
    if raw.log.level.is_empty() {
        raw.log.level = if raw.debug { "debug" } else { "info" }.into();
    }
    if raw.log.format == "auto" {
        raw.log.format = if prod { "json" } else { "text" }.into();
    }
    if raw.log.file.is_none() {
        raw.log.file = Some(prod);
    }
}

fn validate(raw: RawConfig, layers: Layers, role: Role) -> Result<Config, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: layers.origin(key),
        message,
    };

    let addr = parse_listen_addr(&raw.http.addr).ok_or_else(|| {
        invalid(
            "http.addr",
            format!(
                "expected `host:port` such as `127.0.0.1:8080`, got `{}`",
                raw.http.addr
            ),
        )
    })?;
    let positive = |key: &str, v: u64| -> Result<u64, ConfigError> {
        if v == 0 {
            Err(invalid(key, "expected a value greater than 0".into()))
        } else {
            Ok(v)
        }
    };
    let http = HttpConfig {
        addr,
        shutdown_timeout: Duration::from_secs(raw.http.shutdown_timeout_seconds),
        request_timeout: Duration::from_secs(positive(
            "http.request_timeout_seconds",
            raw.http.request_timeout_seconds,
        )?),
        body_limit: usize::try_from(positive(
            "http.body_limit_bytes",
            raw.http.body_limit_bytes,
        )?)
        .unwrap_or(usize::MAX),
    };

    let level = match raw.log.level.to_ascii_lowercase().as_str() {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "error" => LogLevel::Error,
        other => {
            return Err(invalid(
                "log.level",
                format!("expected one of trace, debug, info, warn, error, got `{other}`"),
            ));
        }
    };
    let format = match raw.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log.format",
                format!("expected `text`, `json` or `auto`, got `{other}`"),
            ));
        }
    };
    let log = LogConfig {
        level,
        format,
        file: raw.log.file.unwrap_or(false),
        max_files: usize::try_from(positive("log.max_files", raw.log.max_files)?)
            .unwrap_or(usize::MAX),
        requests: raw.log.requests,
    };

    let p = &raw.paths;
    let paths = Paths {
        data_dir: PathBuf::from(&p.data_dir),
        database_file: PathBuf::from(&p.database_file),
        public_dir: PathBuf::from(&p.public_dir),
        storage_dir: PathBuf::from(&p.storage_dir),
        backups_dir: PathBuf::from(&p.backups_dir),
        certs_dir: PathBuf::from(&p.certs_dir),
        logs_dir: PathBuf::from(&p.logs_dir),
    };

    let database = database_config(&raw, &paths, &layers)?;

    let mut allow = Vec::new();
    for (i, cidr) in raw.metrics.allow.iter().enumerate() {
        allow.push(
            cidr.parse::<IpNet>()
                .map_err(|e| invalid("metrics.allow", format!("entry {} `{cidr}`: {e}", i + 1)))?,
        );
    }
    let metrics = MetricsConfig {
        open: raw.app_env == AppEnv::Development,
        allow,
        token: raw
            .metrics
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .map(SecretString::from),
    };

    let b = &raw.backups;
    let backups = BackupsConfig {
        cron: Some(b.cron.trim().to_owned()).filter(|c| !c.is_empty()),
        keep_daily: usize::try_from(b.keep_daily).unwrap_or(usize::MAX),
        keep_weekly: usize::try_from(b.keep_weekly).unwrap_or(usize::MAX),
        alert_webhook: match b.alert_webhook.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            // The URL may carry a token: the message does not repeat it.
            Some(url) => Some(parse_http_url(url).ok_or_else(|| {
                invalid(
                    "backups.alert_webhook",
                    "expected an http:// or https:// URL".into(),
                )
            })?),
        },
    };

    let mut apis = Vec::new();
    for (name, api) in &raw.apis {
        let key = format!("apis.{name}.url");
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                &key,
                format!("API name `{name}` may only use letters, digits, `_` and `-`"),
            ));
        }
        if api.url.is_empty() {
            return Err(invalid(
                &key,
                format!(
                    "API `{name}` has a key but no URL (set API_URL_{})",
                    name.to_ascii_uppercase()
                ),
            ));
        }
        let url = parse_http_url(&api.url).ok_or_else(|| {
            invalid(
                &key,
                format!("expected an http:// or https:// URL, got `{}`", api.url),
            )
        })?;
        apis.push(OutsideApi {
            name: name.clone(),
            url,
            key: api.key.clone().map(SecretString::from),
            header: if api.header.is_empty() {
                "authorization".into()
            } else {
                api.header.to_ascii_lowercase()
            },
        });
    }

    let domain = Some(raw.domain.trim().to_ascii_lowercase()).filter(|d| !d.is_empty());
    let gateway = crate::gateway::validate(&raw.gateway, domain.as_deref(), &layers)?;
    let derived_names: Vec<String> = match &domain {
        Some(d) => {
            let mut n = vec![d.clone()];
            for label in ["www", "api", "admin", "docs"] {
                n.push(format!("{label}.{d}"));
            }
            if raw.gateway.app_subdomain {
                n.push(format!("app.{d}"));
            }
            if !raw.gateway.staging_url.is_empty() {
                n.push(format!("dev.{d}"));
            }
            n
        }
        None => Vec::new(),
    };
    let tls = crate::tls::validate(
        &raw.tls,
        &derived_names,
        raw.app_env == AppEnv::Production,
        &layers,
        parse_listen_addr,
    )?;

    Ok(Config {
        role,
        file: None,
        app_env: raw.app_env,
        debug: raw.debug,
        domain,
        gateway,
        tls,
        http,
        paths,
        log,
        database,
        metrics,
        backups,
        apis,
        resolved: Arc::new(raw),
        layers: Arc::new(layers),
    })
}

fn database_config(
    raw: &RawConfig,
    paths: &Paths,
    layers: &Layers,
) -> Result<DatabaseConfig, ConfigError> {
    let d = &raw.database;
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: layers.origin(key),
        message,
    };
    let url = d.url.as_deref().filter(|u| !u.is_empty());
    if url.is_some() && !d.host.is_empty() {
        return Err(ConfigError::Conflict {
            message: format!(
                "both `database.url` (from {}) and `database.host` (from {}) are set; give one",
                layers.origin("database.url"),
                layers.origin("database.host")
            ),
        });
    }
    let pool_size = usize::try_from(d.pool_size)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            invalid(
                "database.pool_size",
                "expected a value greater than 0".into(),
            )
        })?;
    let tls_ca_file = Some(PathBuf::from(&d.tls_ca_file)).filter(|p| !p.as_os_str().is_empty());
    if let Some(url) = url {
        let parsed = PgUrl::parse(url).map_err(|m| invalid("database.url", m))?;
        return Ok(DatabaseConfig::Postgres(PostgresConfig {
            host: parsed.host,
            port: parsed.port.unwrap_or(5432),
            name: parsed.name.unwrap_or_else(|| d.name.clone()),
            user: parsed.user.unwrap_or_else(|| d.user.clone()),
            password: parsed
                .password
                .or_else(|| d.password.clone())
                .map(SecretString::from),
            tls: parsed.tls.unwrap_or(d.tls),
            tls_ca_file,
            pool_size,
            connect_timeout: Duration::from_secs(d.connect_timeout_seconds.max(1)),
        }));
    }
    if !d.host.is_empty() {
        if d.port == 0 {
            return Err(invalid(
                "database.port",
                "expected a port from 1 to 65535".into(),
            ));
        }
        return Ok(DatabaseConfig::Postgres(PostgresConfig {
            host: d.host.clone(),
            port: d.port,
            name: d.name.clone(),
            user: d.user.clone(),
            password: d.password.clone().map(SecretString::from),
            tls: d.tls,
            tls_ca_file,
            pool_size,
            connect_timeout: Duration::from_secs(d.connect_timeout_seconds.max(1)),
        }));
    }
    let read_connections = match d.read_connections {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2),
        n => usize::try_from(n).unwrap_or(64).min(256),
    };
    Ok(DatabaseConfig::Sqlite(SqliteConfig {
        path: paths.database_file.clone(),
        durability: d.durability,
        read_connections,
        busy_timeout: Duration::from_millis(d.busy_timeout_milliseconds),
        wal_max_bytes: d.wal_max_bytes.max(1024 * 1024),
        max_batch: usize::try_from(d.max_batch).unwrap_or(1).max(1),
    }))
}

/// Parses `host:port`, accepting `localhost` and bracketed IPv6.
fn parse_listen_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    match host {
        "" => Some(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port)),
        "localhost" => Some(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port)),
        h if h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
        {
            (h, port).to_socket_addrs().ok()?.next()
        }
        _ => None,
    }
}

fn parse_http_url(s: &str) -> Option<http::Uri> {
    let uri: http::Uri = s.parse().ok()?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Some(uri),
        _ => None,
    }
}

/// The parts of a `postgres://` URL.
#[derive(Debug, Default, PartialEq)]
struct PgUrl {
    host: String,
    port: Option<u16>,
    name: Option<String>,
    user: Option<String>,
    password: Option<String>,
    tls: Option<PgTlsMode>,
}

impl PgUrl {
    /// Parses a URL. Error messages never repeat the URL, which may hold a password.
    fn parse(url: &str) -> Result<PgUrl, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("expected a URL starting with `postgres://`")?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut out = PgUrl::default();
        if let Some(u) = userinfo {
            let (user, pass) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
            out.user = Some(percent_decode(user)?).filter(|s| !s.is_empty());
            out.password = pass.map(percent_decode).transpose()?;
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed `[` in the host")?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        out.host = percent_decode(&host)?;
        if let Some(p) = port {
            out.port = Some(
                p.parse()
                    .map_err(|_| "the port is not a number from 1 to 65535")?,
            );
        }
        out.name = Some(percent_decode(path)?).filter(|s| !s.is_empty());
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "sslmode" {
                out.tls = Some(match v {
                    "disable" | "allow" | "prefer" => PgTlsMode::Disable,
                    "require" | "verify-ca" | "verify-full" => PgTlsMode::Require,
                    _ => return Err(format!("unknown sslmode `{v}`")),
                });
            }
        }
        Ok(out)
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad percent-escape in the URL")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL decodes to invalid UTF-8".to_owned())
}

/// Reveals a secret; the single place where configuration secrets are exposed to callers.
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_parsed_with_escapes() {
        let u = PgUrl::parse("postgres://bob:p%40ss@db.example:6543/app?sslmode=require").unwrap();
        assert_eq!(u.host, "db.example");
        assert_eq!(u.port, Some(6543));
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.name.as_deref(), Some("app"));
        assert_eq!(u.tls, Some(PgTlsMode::Require));
        let v6 = PgUrl::parse("postgresql://[::1]:5432/x").unwrap();
        assert_eq!(v6.host, "::1");
    }

    #[test]
    fn bad_postgres_urls_never_echo_the_password() {
        for bad in [
            "mysql://u:secretpw@h/db",
            "postgres://u:secretpw@h:notaport/db",
            "postgres://u:secretpw@/db",
            "postgres://u:secret%zz@h/db",
        ] {
            let err = PgUrl::parse(bad).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(
            parse_listen_addr("localhost:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(parse_listen_addr(":9000").unwrap().port(), 9000);
        assert_eq!(
            parse_listen_addr("[::1]:80").unwrap().to_string(),
            "[::1]:80"
        );
        assert!(parse_listen_addr("8080").is_none());
        assert!(parse_listen_addr("127.0.0.1:99999").is_none());
        assert!(parse_listen_addr("a b:80").is_none());
    }
}
