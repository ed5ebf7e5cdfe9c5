//! pier's configuration: one typed tree, merged from built-in defaults < `pier.toml` <
//! environment < command-line flags, then validated.
//!
//! Only this crate reads environment variables. Every error names the key, where its value came
//! from and what was expected. Secrets (`database.url`, `database.password`, `metrics.token`,
//! `apis.<name>.key`, `smtp.password`) are also accepted from a file: `NAME_FILE=/path` in the environment or
//! `<key>_file = "/path"` in `pier.toml`; they are never printed.
//!
//! # Layout
//! - `source`, `load`, `raw`: where values come from, the merged layers, and their raw shape.
//! - `validate`: the layers become a [`Config`] (`model`), every bad value named with its key.
//! - `database`, `gateway`, `tls`, `files`, `realtime`, `smtp`, `outbound`, `net`: the sections with rules of their
//!   own.
#![deny(clippy::unwrap_used)]

mod database;
mod error;
mod files;
mod gateway;
mod load;
mod model;
mod net;
mod outbound;
mod raw;
mod realtime;
mod smtp;
mod source;
mod tls;
mod validate;

pub use error::ConfigError;
pub use files::{FilesConfig, S3Config};
pub use gateway::{
    Balance, GatewayConfig, HealthCheck, RESERVED_LABELS, RateLimit, RouteConfig, RouteTarget,
};
pub use model::{
    BackupsConfig, Config, DatabaseConfig, EventsConfig, HttpConfig, LoadOptions, LogConfig,
    LogFormat, LogLevel, MetricsConfig, OutsideApi, Paths, PostgresConfig, Role, SqliteConfig,
    expose,
};
pub use net::IpNet;
pub use outbound::OutboundConfig;
pub use raw::{AppEnv, Durability, PgTlsMode};
pub use realtime::RealtimeConfig;
pub use secrecy::SecretString;
pub use smtp::SmtpConfig;
pub use source::{Env, Flag, Source};
pub use tls::{AcmeConfig, CertificateFiles, TlsConfig, TlsMode, acme_files, dev_files};
