//! The `[tls]` section: HTTPS on the gateway's listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::load::Layers;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTls {
    /// `off`, `dev` (a local CA's certificate for localhost, made by `pier cert dev` or at
    /// start), or `files` (`cert_file` and `key_file`, plus `certificates`).
    pub(crate) mode: String,
    /// PEM: the certificate and its chain (`files` mode).
    pub(crate) cert_file: String,
    /// PEM: the private key, PKCS#8, PKCS#1 or SEC1.
    pub(crate) key_file: String,
    /// More certificates, chosen by the name the client asks for (SNI).
    pub(crate) certificates: Vec<RawCertificate>,
    /// `Strict-Transport-Security: max-age=…` on HTTPS responses (0: no header).
    pub(crate) hsts_max_age_seconds: u64,
    /// Add `includeSubDomains; preload` to HSTS (only once every subdomain serves HTTPS).
    pub(crate) hsts_preload: bool,
    /// A plain HTTP listener that redirects to HTTPS (308), except ACME's challenges. Empty:
    /// `0.0.0.0:80` in production, none in development; `off`: none.
    pub(crate) redirect_addr: String,
    /// A TLS handshake must finish within this time.
    pub(crate) handshake_timeout_seconds: u64,
}

impl Default for RawTls {
    fn default() -> Self {
        RawTls {
            mode: "off".into(),
            cert_file: String::new(),
            key_file: String::new(),
            certificates: Vec::new(),
            hsts_max_age_seconds: 63_072_000,
            hsts_preload: false,
            redirect_addr: String::new(),
            handshake_timeout_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCertificate {
    pub(crate) cert_file: String,
    pub(crate) key_file: String,
}

/// A certificate and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Where the listener's certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    Off,
    /// The development CA's certificate for localhost, in the certificates folder.
    Dev,
    /// These files; the first is the default when no name matches.
    Files(Vec<CertificateFiles>),
}

/// The validated `[tls]` section.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub mode: TlsMode,
    pub hsts_max_age: Duration,
    pub hsts_preload: bool,
    pub redirect_addr: Option<SocketAddr>,
    pub handshake_timeout: Duration,
}

pub(crate) fn validate(
    t: &RawTls,
    production: bool,
    layers: &Layers,
    parse_addr: impl Fn(&str) -> Option<SocketAddr>,
) -> Result<TlsConfig, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: layers.origin(key),
        message,
    };
    let mode = match t.mode.as_str() {
        "off" | "" => TlsMode::Off,
        "dev" => TlsMode::Dev,
        "files" => {
            if t.cert_file.is_empty() || t.key_file.is_empty() {
                return Err(invalid(
                    "tls.mode",
                    "`files` needs tls.cert_file and tls.key_file".into(),
                ));
            }
            let mut files = vec![CertificateFiles {
                cert_file: PathBuf::from(&t.cert_file),
                key_file: PathBuf::from(&t.key_file),
            }];
            for (i, c) in t.certificates.iter().enumerate() {
                if c.cert_file.is_empty() || c.key_file.is_empty() {
                    return Err(invalid(
                        &format!("tls.certificates.{i}"),
                        "each certificate needs cert_file and key_file".into(),
                    ));
                }
                files.push(CertificateFiles {
                    cert_file: PathBuf::from(&c.cert_file),
                    key_file: PathBuf::from(&c.key_file),
                });
            }
            TlsMode::Files(files)
        }
        other => {
            return Err(invalid(
                "tls.mode",
                format!("expected `off`, `dev` or `files`, got `{other}`"),
            ));
        }
    };
    let redirect_addr = match t.redirect_addr.as_str() {
        "off" => None,
        "" if production && mode != TlsMode::Off => parse_addr("0.0.0.0:80"),
        "" => None,
        a => Some(parse_addr(a).ok_or_else(|| {
            invalid(
                "tls.redirect_addr",
                format!("expected `host:port` or `off`, got `{a}`"),
            )
        })?),
    };
    Ok(TlsConfig {
        mode,
        hsts_max_age: Duration::from_secs(t.hsts_max_age_seconds),
        hsts_preload: t.hsts_preload,
        redirect_addr,
        handshake_timeout: Duration::from_secs(t.handshake_timeout_seconds.max(1)),
    })
}

/// The development CA and certificate, in the certificates folder.
pub fn dev_files(certs_dir: &Path) -> (CertificateFiles, PathBuf, PathBuf) {
    (
        CertificateFiles {
            cert_file: certs_dir.join("dev-localhost.pem"),
            key_file: certs_dir.join("dev-localhost.key"),
        },
        certs_dir.join("dev-ca.pem"),
        certs_dir.join("dev-ca.key"),
    )
}
