//! Command-line arguments. Flags that set configuration keys map onto `pier-config` flags, so
//! they take precedence over the environment and `pier.toml`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// pier: the gateway, backend and database of a web project, in one binary.
///
/// Configuration is read from built-in defaults, then `pier.toml` (`--config` or PIER_CONFIG),
/// then the environment (APP_ENV, DEBUG, LOG_LEVEL, DB_*, DATABASE_URL, PIER_SECTION__KEY),
/// then these flags. `pier check` prints the result.
#[derive(Debug, Parser)]
#[command(name = "pier", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gateway and the backend in one process (embedded SQLite by default).
    Serve(ServeArgs),
    /// Run the backend (REST API) alone, for a gateway in front of several backends.
    Backend(BackendArgs),
    /// Run the gateway alone: the frontend from memory, `/api/*` to a pool of backends.
    Gateway(GatewayArgs),
    /// Apply pending database migrations, or list them.
    Migrate(MigrateArgs),
    /// Validate the configuration and print it, secrets redacted; exit non-zero when invalid.
    Check(ServeArgs),
    /// Manage superusers.
    #[command(subcommand)]
    Superuser(SuperuserCommand),
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Make, list, check and prune backups (archives in the backups folder).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Replace the database, uploaded files and static folder with a backup's; refused while
    /// a pier runs on the same data.
    Restore(RestoreArgs),
    /// Ask a running pier's /readyz (the address from the same configuration, or --http): exit
    /// 0 when it is ready, 1 when not (for container health checks: no curl needed).
    Healthcheck(HealthcheckArgs),
    /// Print pier's version.
    Version,
}

#[derive(Debug, Args)]
pub(crate) struct HealthcheckArgs {
    /// The address to ask, host:port (default: the listener's address from the configuration).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<String>,
    /// Read the backend's default address (8090) rather than `pier serve`'s (8080).
    #[arg(long)]
    pub(crate) backend: bool,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

/// Flags every command that touches data takes.
#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    /// The data folder (default: ./pier_data in development, /var/lib/pier in production).
    #[arg(long, value_name = "DATA_FOLDER")]
    pub(crate) dir: Option<PathBuf>,
    /// The configuration file (default: $PIER_CONFIG, else none).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on, host:port; port 0 picks a free port (default: 127.0.0.1:8080,
    /// 0.0.0.0:8080 in production).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<String>,
    /// HTTPS on the listener: `dev` (a local CA's certificate for localhost, see `pier cert
    /// dev`), `files` (tls.cert_file and tls.key_file) or `off`.
    #[arg(long, value_name = "MODE")]
    pub(crate) tls: Option<String>,
    /// The frontend build to serve (default: ./public, /srv/pier/static in production).
    #[arg(long = "public-dir", alias = "publicDir", value_name = "FOLDER")]
    pub(crate) public_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BackendArgs {
    /// Address to listen on, host:port; port 0 picks a free port (default: 127.0.0.1:8090,
    /// 0.0.0.0:8090 in production).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<String>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Address to listen on, host:port; port 0 picks a free port (default: 127.0.0.1:8080,
    /// 0.0.0.0:8080 in production).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<String>,
    /// HTTPS on the listener: `dev` (a local CA's certificate for localhost, see `pier cert
    /// dev`), `files` (tls.cert_file and tls.key_file) or `off`.
    #[arg(long, value_name = "MODE")]
    pub(crate) tls: Option<String>,
    /// A backend for `/api/*`, such as http://127.0.0.1:8090; repeat for several. A host name
    /// is resolved again periodically and every address it returns is a member.
    #[arg(long = "upstream", value_name = "URL")]
    pub(crate) upstreams: Vec<String>,
    /// The frontend build to serve (default: ./public, /srv/pier/static in production).
    #[arg(long = "public-dir", alias = "publicDir", value_name = "FOLDER")]
    pub(crate) public_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// `up` applies pending migrations (the default); `list` shows each with its state.
    #[arg(value_enum, default_value = "up")]
    pub(crate) action: MigrateAction,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum MigrateAction {
    Up,
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Make a local CA (kept in the certificates folder) and a certificate for localhost, its
    /// development subdomains (api., admin., docs., dev., app., and `.localhost` route hosts),
    /// 127.0.0.1 and ::1, re-issued from the kept CA when a name is missing, and print how to
    /// trust the CA.
    Dev(DataArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SuperuserCommand {
    /// Create a superuser, or set the password of an existing one (signing out its sessions).
    Upsert(SuperuserArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SuperuserArgs {
    /// The superuser's email.
    pub(crate) email: String,
    /// The password, at least 8 characters.
    pub(crate) password: String,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Make a backup now: a consistent snapshot of the database, the uploaded files and the
    /// static folder in one `.tar.zst` archive (works while pier runs).
    Create(BackupCreateArgs),
    /// List the backups, newest first: name, size in bytes, modification time (UTC).
    List(BackupListArgs),
    /// Check a backup: every checksum, the database restored into a scratch place and checked,
    /// and its row counts compared with the manifest.
    Verify(BackupTargetArgs),
    /// Delete the scheduled backups the retention rules do not keep.
    Prune(BackupPruneArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BackupCreateArgs {
    /// The archive name, `[a-z0-9_-]+.tar.zst` (default: pier_backup_<UTC time>.tar.zst).
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BackupListArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BackupTargetArgs {
    /// A backup name in the backups folder, or the path of an archive.
    pub(crate) backup: String,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BackupPruneArgs {
    /// Days whose newest scheduled backup is kept (default: `backups.keep_daily`).
    #[arg(long)]
    pub(crate) keep_daily: Option<usize>,
    /// Weeks whose newest scheduled backup is kept (default: `backups.keep_weekly`).
    #[arg(long)]
    pub(crate) keep_weekly: Option<usize>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// A backup name in the backups folder, or the path of an archive.
    pub(crate) backup: String,
    /// The static folder the archive's `public/` replaces (default: ./public, /srv/pier/static
    /// in production).
    #[arg(long = "public-dir", alias = "publicDir", value_name = "FOLDER")]
    pub(crate) public_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}
