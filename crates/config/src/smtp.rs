//! The `[smtp]` section: the mail server pier sends its emails through (verification, password
//! reset, email change, one-time codes, sign-in alerts). PocketBase keeps the same values in
//! `settings.smtp`; a superuser's `PATCH /api/settings` overrides what is configured here.
//! Without a host (or with `enabled = false`) nothing is sent: every mail is printed to the log
//! instead, so a developer can follow each flow locally.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::load::Layers;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSmtp {
    /// `false`: mails are printed to the log instead of sent. Sending needs `host` too.
    pub(crate) enabled: bool,
    pub(crate) host: String,
    /// 587 (STARTTLS) by default; 465 with `tls = true`.
    pub(crate) port: u16,
    pub(crate) username: String,
    /// A secret: never printed; `smtp.password_file` (or `PIER_SMTP__PASSWORD_FILE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) password: Option<String>,
    /// `PLAIN` (default) or `LOGIN`.
    pub(crate) auth_method: String,
    /// `true`: implicit TLS from the first byte (SMTPS, port 465). `false`: STARTTLS, required
    /// unless the host is a loopback address (a local relay or a test server).
    pub(crate) tls: bool,
    /// The name pier gives itself in `EHLO` (default: `localhost`).
    pub(crate) local_name: String,
    /// A PEM file of extra certificate authorities to trust for the mail server (a private
    /// relay, a test server); the public roots are always trusted.
    pub(crate) ca_file: Option<PathBuf>,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            enabled: true,
            host: String::new(),
            port: 587,
            username: String::new(),
            password: None,
            auth_method: "PLAIN".into(),
            tls: false,
            local_name: String::new(),
            ca_file: None,
        }
    }
}

/// The configured mail server.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: SecretString,
    /// `PLAIN` or `LOGIN`.
    pub auth_method: String,
    pub tls: bool,
    pub local_name: String,
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        from_raw(&RawSmtp::default())
    }
}

fn from_raw(r: &RawSmtp) -> SmtpConfig {
    SmtpConfig {
        enabled: r.enabled && !r.host.is_empty(),
        host: r.host.clone(),
        port: r.port,
        username: r.username.clone(),
        password: SecretString::from(r.password.clone().unwrap_or_default()),
        auth_method: r.auth_method.to_ascii_uppercase(),
        tls: r.tls,
        local_name: r.local_name.clone(),
        ca_file: r.ca_file.clone(),
    }
}

pub(crate) fn validate(r: &RawSmtp, layers: &Layers) -> Result<SmtpConfig, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: layers.origin(key),
        message,
    };
    let c = from_raw(r);
    if !matches!(c.auth_method.as_str(), "PLAIN" | "LOGIN") {
        return Err(invalid(
            "smtp.auth_method",
            format!("expected PLAIN or LOGIN, got {:?}", r.auth_method),
        ));
    }
    if c.enabled && c.port == 0 {
        return Err(invalid(
            "smtp.port",
            "expected a port from 1 up, got 0".into(),
        ));
    }
    if let Some(p) = &c.ca_file
        && !p.is_file()
    {
        return Err(invalid(
            "smtp.ca_file",
            format!("{} is not a readable file", p.display()),
        ));
    }
    Ok(c)
}
