//! The `[database]` section: SQLite's settings, or PostgreSQL's from its URL and the separate
//! keys, with the password from `database.password` or the URL and never echoed.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::ConfigError;
use crate::load::Layers;
use crate::model::{DatabaseConfig, Paths, PostgresConfig, SqliteConfig};
use crate::raw::{PgTlsMode, RawConfig};

/// The database the configuration names, checked: a PostgreSQL URL is parsed here, and the
/// separate keys override what it carries.
pub(crate) fn database_config(
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
}
