//! Validation: the merged layers become a [`Config`], with the values derived from `app_env`,
//! the role and the data folder filled in, and every bad value named with its key and origin.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::database::database_config;
use crate::load::Layers;
use crate::model::{
    BackupsConfig, Config, EventsConfig, HttpConfig, LogConfig, LogFormat, LogLevel, MetricsConfig,
    OutsideApi, Paths, Role,
};
use crate::net::IpNet;
use crate::raw::{AppEnv, RawConfig};
use crate::{ConfigError, Source};

/// The dotted key of an unknown field; serde's path may or may not already end with it.
pub(crate) fn unknown_key_path(path: &str, field: &str) -> String {
    if path == field || path.ends_with(&format!(".{field}")) {
        path.to_owned()
    } else if path.is_empty() || path == "." {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Extracts the field name from serde's "unknown field `x`, expected …" message.
pub(crate) fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

pub(crate) fn explicit(layers: &Layers, key: &str) -> bool {
    layers.origin(key) != Source::Default
}

/// Fills the empty "derive me" values from `app_env`, the role and the data folder.
pub(crate) fn resolve_defaults(raw: &mut RawConfig, layers: &Layers, role: Role) {
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

pub(crate) fn validate(raw: RawConfig, layers: Layers, role: Role) -> Result<Config, ConfigError> {
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
        drain: Duration::from_secs(raw.http.drain_seconds),
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

    let e = &raw.events;
    let at_least_one = |key: &str, n: u64| -> Result<usize, ConfigError> {
        match usize::try_from(n) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(invalid(
                key,
                format!("expected a number from 1 up, got {n}"),
            )),
        }
    };
    let events = EventsConfig {
        outbox: e.outbox,
        ring_size: at_least_one("events.ring_size", e.ring_size)?,
        subscriber_buffer: at_least_one("events.subscriber_buffer", e.subscriber_buffer)?,
        keep: Duration::from_secs(e.keep_seconds.max(1)),
        keep_count: e.keep_count.max(1),
    };

    let files = crate::files::validate(&raw.files, &layers)?;
    let realtime = crate::realtime::validate(&raw.realtime, &layers)?;
    let smtp = crate::smtp::validate(&raw.smtp, &layers)?;
    let outbound = crate::outbound::validate(&raw.outbound, &layers)?;

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
        events,
        files,
        realtime,
        smtp,
        outbound,
        apis,
        resolved: Arc::new(raw),
        layers: Arc::new(layers),
    })
}

/// Parses `host:port`, accepting `localhost` and bracketed IPv6.
pub(crate) fn parse_listen_addr(s: &str) -> Option<SocketAddr> {
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

pub(crate) fn parse_http_url(s: &str) -> Option<http::Uri> {
    let uri: http::Uri = s.parse().ok()?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Some(uri),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
