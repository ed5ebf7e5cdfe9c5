//! The file/env/flag shape of the configuration, before validation.
//!
//! Every field here is also a key of `pier.toml` (dotted by section) and of the environment
//! (`PIER_SECTION__KEY`). Empty strings mean "derive the default from `app_env` and the role";
//! [`crate::Config`] is what the rest of pier sees.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `APP_ENV`: which set of defaults applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    /// Console logs, `./pier_data`, plain HTTP on loopback.
    #[default]
    Development,
    /// JSON logs, system paths, listening on every interface.
    Production,
}

/// How hard SQLite works to keep an acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged write survives a power loss. Group commit keeps the
    /// cost of the extra fsync shared between concurrent writers.
    #[default]
    Full,
    /// `synchronous=NORMAL`: an acknowledged write survives the process being killed, but the
    /// last transactions may be lost on a power loss (PocketBase's setting).
    Normal,
}

/// TLS towards PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgTlsMode {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS, refusing a server that does not offer it, verifying the certificate chain and name.
    Require,
}

/// The whole raw tree. `#[serde(deny_unknown_fields)]` turns every typo into an error.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    /// `APP_ENV`: `development` or `production`.
    pub(crate) app_env: AppEnv,
    /// `DEBUG`: debug-level logs unless `log.level` says otherwise.
    pub(crate) debug: bool,
    /// `PIER_DOMAIN`: the apex domain; empty means no host routing.
    pub(crate) domain: String,
    pub(crate) http: RawHttp,
    pub(crate) paths: RawPaths,
    pub(crate) log: RawLog,
    pub(crate) database: RawDatabase,
    pub(crate) metrics: RawMetrics,
    pub(crate) backups: RawBackups,
    pub(crate) events: RawEvents,
    pub(crate) files: crate::files::RawFiles,
    pub(crate) realtime: crate::realtime::RawRealtime,
    pub(crate) smtp: crate::smtp::RawSmtp,
    pub(crate) outbound: crate::outbound::RawOutbound,
    /// Outside APIs, by name (`API_URL_<NAME>`, `API_KEY_<NAME>`).
    pub(crate) apis: BTreeMap<String, RawApi>,
    pub(crate) gateway: crate::gateway::RawGateway,
    pub(crate) tls: crate::tls::RawTls,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHttp {
    /// Address to listen on, `host:port`; port 0 picks a free port. Empty: by role and env.
    pub(crate) addr: String,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits.
    pub(crate) shutdown_timeout_seconds: u64,
    /// After SIGTERM, how long `/readyz` answers 503 while requests are still served, so that
    /// gateways and Kubernetes stop sending before the listener closes.
    pub(crate) drain_seconds: u64,
    /// Longest time one request may take before it is answered with 503.
    pub(crate) request_timeout_seconds: u64,
    /// Largest request body accepted, in bytes.
    pub(crate) body_limit_bytes: u64,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            addr: String::new(),
            shutdown_timeout_seconds: 10,
            drain_seconds: 0,
            request_timeout_seconds: 60,
            body_limit_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPaths {
    /// The data folder (`--dir`). Development: `./pier_data`; production: `/var/lib/pier`.
    pub(crate) data_dir: String,
    /// The SQLite database file. Default: `<data_dir>/data.db` (production: `/var/lib/pier/db/data.db`).
    pub(crate) database_file: String,
    /// The frontend build (`--public-dir`). Development: `./public`; production: `/srv/pier/static`.
    pub(crate) public_dir: String,
    /// Uploaded files. Default: `<data_dir>/storage`.
    pub(crate) storage_dir: String,
    /// Backups. Development: `<data_dir>/backups`; production: `/srv/pier/backups`.
    pub(crate) backups_dir: String,
    /// Certificates. Development: `<data_dir>/certs`; production: `/etc/ssl/pier`.
    pub(crate) certs_dir: String,
    /// Log files, when `log.file` is on. Development: `<data_dir>/logs`; production: `/var/log/pier`.
    pub(crate) logs_dir: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    /// `LOG_LEVEL`: trace, debug, info, warn or error. Empty: `debug` when `DEBUG=true`, else `info`.
    pub(crate) level: String,
    /// `text`, `json`, or `auto` (text in development, JSON in production).
    pub(crate) format: String,
    /// Also write logs to `paths.logs_dir`, rotated daily. Default: on in production.
    pub(crate) file: Option<bool>,
    /// How many daily log files to keep.
    pub(crate) max_files: u64,
    /// One line per HTTP request.
    pub(crate) requests: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: String::new(),
            format: "auto".into(),
            file: None,
            max_files: 14,
            requests: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDatabase {
    /// `DATABASE_URL`: `postgres://user:password@host:port/name`. Unset: the DB_* set, or SQLite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    /// `DB_HOST`: PostgreSQL host; set means PostgreSQL, empty means embedded SQLite.
    pub(crate) host: String,
    /// `DB_PORT`.
    pub(crate) port: u16,
    /// `DB_NAME`.
    pub(crate) name: String,
    /// `DB_USER`.
    pub(crate) user: String,
    /// `DB_PASSWORD` (or `DB_PASSWORD_FILE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) password: Option<String>,
    /// PostgreSQL TLS: `disable` or `require`.
    pub(crate) tls: PgTlsMode,
    /// PEM file of the CA that signed the PostgreSQL server's certificate (default: web roots).
    pub(crate) tls_ca_file: String,
    /// PostgreSQL connections in the pool.
    pub(crate) pool_size: u64,
    /// Seconds to wait for one PostgreSQL connection attempt.
    pub(crate) connect_timeout_seconds: u64,
    /// SQLite: `full` (survives power loss) or `normal` (survives a process crash).
    pub(crate) durability: Durability,
    /// SQLite read-only connections; 0 means one per core (at least 2).
    pub(crate) read_connections: u64,
    /// SQLite busy timeout.
    pub(crate) busy_timeout_milliseconds: u64,
    /// SQLite: the WAL is checkpointed and truncated when it grows past this size.
    pub(crate) wal_max_bytes: u64,
    /// Most writes the SQLite writer commits in one transaction (group commit).
    pub(crate) max_batch: u64,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            url: None,
            host: String::new(),
            port: 5432,
            name: "pier".into(),
            user: "pier".into(),
            password: None,
            tls: PgTlsMode::Disable,
            tls_ca_file: String::new(),
            pool_size: 16,
            connect_timeout_seconds: 5,
            durability: Durability::Full,
            read_connections: 0,
            busy_timeout_milliseconds: 5000,
            wal_max_bytes: 64 * 1024 * 1024,
            max_batch: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMetrics {
    /// Client addresses (CIDR) allowed to read `/metrics` in production.
    pub(crate) allow: Vec<String>,
    /// A bearer token that also opens `/metrics` in production (`PIER_METRICS__TOKEN[_FILE]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBackups {
    /// When `pier serve` and `pier backend` make a backup: a five-field cron expression in UTC
    /// (`minute hour day month weekday`, or `@daily`, `@hourly`, …). Empty turns the schedule off.
    pub(crate) cron: String,
    /// Scheduled backups kept: the newest of each of this many days.
    pub(crate) keep_daily: u64,
    /// Scheduled backups kept: the newest of each of this many weeks.
    pub(crate) keep_weekly: u64,
    /// An http(s) URL that receives a JSON `POST` when a scheduled backup fails (a secret: it
    /// may carry a token; `backups.alert_webhook_file` works too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) alert_webhook: Option<String>,
}

/// Record events after commit (`[events]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawEvents {
    /// PostgreSQL: write each transaction's events to the outbox table, so that every backend
    /// on the database delivers them. Off, events reach only the backend that wrote them.
    pub(crate) outbox: bool,
    /// Events each process keeps in memory for subscribers that resume ("everything after N").
    pub(crate) ring_size: u64,
    /// Events a subscriber may fall behind by before it is told it lagged.
    pub(crate) subscriber_buffer: u64,
    /// PostgreSQL: delivered events are pruned from the outbox after this many seconds…
    pub(crate) keep_seconds: u64,
    /// …or when more than this many are kept.
    pub(crate) keep_count: u64,
}

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents {
            outbox: true,
            ring_size: 10_000,
            subscriber_buffer: 1024,
            keep_seconds: 3600,
            keep_count: 100_000,
        }
    }
}

impl Default for RawBackups {
    fn default() -> Self {
        RawBackups {
            cron: "0 3 * * *".into(),
            keep_daily: 7,
            keep_weekly: 4,
            alert_webhook: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawApi {
    /// `API_URL_<NAME>`: where `/api/ext/<name>/…` is proxied.
    pub(crate) url: String,
    /// `API_KEY_<NAME>`: added server-side; never sent to the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// The header that carries the key. Empty: `Authorization: Bearer <key>`.
    pub(crate) header: String,
}

/// Paths whose values are secrets: never printed, and also accepted from `<key>_file`.
pub(crate) fn is_secret(path: &str) -> bool {
    matches!(
        path,
        "database.url"
            | "database.password"
            | "metrics.token"
            | "tls.acme_eab_hmac_key"
            | "backups.alert_webhook"
            | "files.s3.secret"
            | "smtp.password"
    ) || (path.starts_with("apis.") && path.ends_with(".key"))
}
