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
    /// ACME (`mode = "acme"`): the CA's directory (default: Let's Encrypt).
    pub(crate) acme_directory_url: String,
    /// A contact email for the ACME account (optional).
    pub(crate) acme_email: String,
    /// A PEM root to trust for the ACME directory's own HTTPS (a private or test CA).
    pub(crate) acme_ca_file: String,
    /// External Account Binding: the key id and the base64url HMAC key (`_file` accepted).
    pub(crate) acme_eab_kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) acme_eab_hmac_key: Option<String>,
    /// The names to certify. Empty: the domain and its api., admin., docs. (and www., app.,
    /// dev. when routed).
    pub(crate) acme_names: Vec<String>,
    /// First wait after a failed order; doubled each time, up to six hours.
    pub(crate) acme_retry_seconds: u64,
    /// How often the certificate's age is looked at.
    pub(crate) acme_check_interval_seconds: u64,
    /// `http-01` (answered on the plain listener) or `tls-alpn-01` (on the HTTPS listener).
    pub(crate) acme_challenge: String,
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
            acme_directory_url: "https://acme-v02.api.letsencrypt.org/directory".into(),
            acme_email: String::new(),
            acme_ca_file: String::new(),
            acme_eab_kid: String::new(),
            acme_eab_hmac_key: None,
            acme_names: Vec::new(),
            acme_retry_seconds: 60,
            acme_check_interval_seconds: 3600,
            acme_challenge: "http-01".into(),
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
    /// Certificates ordered from an ACME CA and renewed here.
    Acme(AcmeConfig),
}

/// Ordering certificates over ACME (RFC 8555).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    pub directory_url: String,
    pub email: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// Key id and base64url HMAC key.
    pub eab: Option<(String, String)>,
    pub names: Vec<String>,
    pub retry: Duration,
    pub check_interval: Duration,
    /// Answer TLS-ALPN-01 on the HTTPS listener instead of HTTP-01 on the plain one.
    pub tls_alpn: bool,
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
    derived_names: &[String],
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
        "acme" => {
            let names: Vec<String> = if t.acme_names.is_empty() {
                derived_names.to_vec()
            } else {
                t.acme_names
                    .iter()
                    .map(|n| n.trim().to_ascii_lowercase())
                    .collect()
            };
            if names.is_empty() {
                return Err(invalid(
                    "tls.mode",
                    "`acme` needs names to certify: set PIER_DOMAIN or tls.acme_names".into(),
                ));
            }
            if let Some(bad) = names.iter().find(|n| {
                n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '*')
            }) {
                return Err(invalid(
                    "tls.acme_names",
                    format!("`{bad}` is not a host name"),
                ));
            }
            if !(t.acme_directory_url.starts_with("https://")
                || t.acme_directory_url.starts_with("http://"))
            {
                return Err(invalid(
                    "tls.acme_directory_url",
                    format!("expected an https:// URL, got `{}`", t.acme_directory_url),
                ));
            }
            let eab = match (
                t.acme_eab_kid.is_empty(),
                t.acme_eab_hmac_key.as_deref().filter(|k| !k.is_empty()),
            ) {
                (true, None) => None,
                (false, Some(k)) => Some((t.acme_eab_kid.clone(), k.to_owned())),
                _ => {
                    return Err(invalid(
                        "tls.acme_eab_kid",
                        "External Account Binding needs both tls.acme_eab_kid and tls.acme_eab_hmac_key".into(),
                    ));
                }
            };
            TlsMode::Acme(AcmeConfig {
                directory_url: t.acme_directory_url.clone(),
                email: Some(t.acme_email.clone()).filter(|e| !e.is_empty()),
                ca_file: Some(PathBuf::from(&t.acme_ca_file)).filter(|p| !p.as_os_str().is_empty()),
                eab,
                names,
                retry: Duration::from_secs(t.acme_retry_seconds.max(1)),
                check_interval: Duration::from_secs(t.acme_check_interval_seconds.max(1)),
                tls_alpn: match t.acme_challenge.as_str() {
                    "http-01" => false,
                    "tls-alpn-01" => true,
                    other => {
                        return Err(invalid(
                            "tls.acme_challenge",
                            format!("expected `http-01` or `tls-alpn-01`, got `{other}`"),
                        ));
                    }
                },
            })
        }
        other => {
            return Err(invalid(
                "tls.mode",
                format!("expected `off`, `dev`, `files` or `acme`, got `{other}`"),
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
    if matches!(&mode, TlsMode::Acme(a) if !a.tls_alpn) && redirect_addr.is_none() {
        return Err(invalid(
            "tls.redirect_addr",
            "`acme` answers HTTP-01 challenges on the plain HTTP listener: set tls.redirect_addr (`0.0.0.0:80`)".into(),
        ));
    }
    Ok(TlsConfig {
        mode,
        hsts_max_age: Duration::from_secs(t.hsts_max_age_seconds),
        hsts_preload: t.hsts_preload,
        redirect_addr,
        handshake_timeout: Duration::from_secs(t.handshake_timeout_seconds.max(1)),
    })
}

/// Where ordered certificates are kept: `<certs>/acme/`.
pub fn acme_files(certs_dir: &Path) -> CertificateFiles {
    CertificateFiles {
        cert_file: certs_dir.join("acme").join("certificate.pem"),
        key_file: certs_dir.join("acme").join("certificate.key"),
    }
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

/// The subdomains of `localhost` pier's development routing answers on.
const DEV_SUBDOMAINS: [&str; 5] = ["api", "admin", "docs", "dev", "app"];

impl crate::Config {
    /// Returns the DNS names the development certificate must hold: `localhost`, the subdomains
    /// pier routes (`api.`, `admin.`, `docs.`, `dev.`, `app.`), a `.localhost` domain and its
    /// subdomains, every user route's host under `.localhost`, and `*.localhost` last. Each is
    /// listed explicitly because browsers and curl refuse a wildcard right under a top-level
    /// name such as `localhost`; the wildcard only helps clients that accept it.
    pub fn dev_certificate_names(&self) -> Vec<String> {
        let mut names = vec!["localhost".to_owned()];
        let mut push = |name: String| {
            if !names.contains(&name) {
                names.push(name);
            }
        };
        for label in DEV_SUBDOMAINS {
            push(format!("{label}.localhost"));
        }
        if let Some(domain) = self.domain.as_deref().filter(|d| d.ends_with(".localhost")) {
            push(domain.to_owned());
            for label in DEV_SUBDOMAINS {
                push(format!("{label}.{domain}"));
            }
        }
        for host in self.gateway.routes.iter().filter_map(|r| r.host.as_deref()) {
            if host.ends_with(".localhost") && host != "*.localhost" {
                push(host.to_owned());
            }
        }
        push("*.localhost".to_owned());
        names
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    fn load(toml: &str) -> crate::Config {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pier.toml");
        std::fs::write(&file, toml).unwrap();
        crate::Config::load(
            crate::LoadOptions {
                role: crate::Role::Gateway,
                config_file: Some(file),
                flags: vec![],
            },
            &crate::Env::default(),
        )
        .unwrap()
    }

    #[test]
    fn dev_certificate_names_are_explicit_and_include_localhost_routes() {
        let config = load(
            "[[gateway.routes]]\nhost = \"shop.localhost\"\nto = \"api\"\n\
             [[gateway.routes]]\nhost = \"*.blog.localhost\"\nto = \"api\"\n\
             [[gateway.routes]]\nhost = \"shop.example.com\"\nto = \"api\"\n",
        );
        assert_eq!(
            config.dev_certificate_names(),
            [
                "localhost",
                "api.localhost",
                "admin.localhost",
                "docs.localhost",
                "dev.localhost",
                "app.localhost",
                "shop.localhost",
                "*.blog.localhost",
                "*.localhost",
            ]
        );
    }

    #[test]
    fn a_localhost_domain_gets_its_subdomains() {
        let config = load("domain = \"myapp.localhost\"\n");
        let names = config.dev_certificate_names();
        for name in [
            "myapp.localhost",
            "api.myapp.localhost",
            "docs.myapp.localhost",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
    }
}
