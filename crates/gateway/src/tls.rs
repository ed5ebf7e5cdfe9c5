//! TLS termination with rustls: TLS 1.2 and 1.3 with rustls' modern suites, ALPN `h2` and
//! `http/1.1`, certificates chosen by SNI, full chains from PEM, PKCS#8/PKCS#1/SEC1 keys, and
//! certificates replaced on disk picked up without a restart. The development CA and its
//! certificate are made in `devcert`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use pier_config::{CertificateFiles, TlsConfig, TlsMode};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// What is wrong with a certificate or key, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("`{path}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("the key in `{path}` cannot be used: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("the key in `{key}` does not belong to the certificate in `{cert}`")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate in `{path}` expired on {not_after}")]
    Expired { path: PathBuf, not_after: String },
    #[error("the certificate in `{path}` cannot be parsed")]
    Unparsable { path: PathBuf },
    #[error("failed to make the development certificate: {0}")]
    Generate(String),
}

pub(crate) struct Loaded {
    key: Arc<CertifiedKey>,
    /// The leaf as DER, to match names against.
    pub(crate) leaf: CertificateDer<'static>,
}

/// Picks the certificate whose names cover the SNI; the first one otherwise.
#[derive(Default)]
pub(crate) struct Resolver {
    certs: ArcSwap<Vec<Loaded>>,
    challenges: Option<Arc<crate::acme::Challenges>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // RFC 8737: a validation handshake gets the challenge's certificate and nothing else.
        if let Some(ch) = &self.challenges
            && hello
                .alpn()
                .is_some_and(|mut p| p.any(|p| p == ACME_TLS_ALPN))
        {
            return hello.server_name().and_then(|n| ch.alpn_certificate(n));
        }
        let certs = self.certs.load();
        if let Some(name) = hello.server_name()
            && certs.len() > 1
            && let Ok(sn) = ServerName::try_from(name)
        {
            for c in certs.iter() {
                if let Ok(ee) = webpki::EndEntityCert::try_from(&c.leaf)
                    && ee.verify_is_valid_for_subject_name(&sn).is_ok()
                {
                    return Some(c.key.clone());
                }
            }
        }
        certs.first().map(|c| c.key.clone())
    }
}

/// The listener's TLS: the rustls configuration and the files it came from.
pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// Set when certificates are ordered over ACME.
    pub(crate) acme: Option<Arc<crate::acme::Acme>>,
    resolver: Arc<Resolver>,
    files: Vec<CertificateFiles>,
    stamps: Mutex<Vec<(Option<SystemTime>, Option<SystemTime>)>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads the certificates the configuration names (making the development ones first when
    /// they are missing). `None` when TLS is off.
    /// `dev_names` are the DNS names the development certificate must hold.
    pub(crate) fn load(
        config: &TlsConfig,
        certs_dir: &Path,
        dev_names: &[String],
    ) -> Result<Option<Tls>, TlsError> {
        let mut acme = None;
        let files = match &config.mode {
            TlsMode::Off => return Ok(None),
            TlsMode::Dev => {
                vec![crate::devcert::ensure_logged(certs_dir, dev_names)?]
            }
            TlsMode::Files(f) => f.clone(),
            TlsMode::Acme(a) => {
                let ordering = Arc::new(crate::acme::Acme::new(a.clone(), certs_dir));
                let files = vec![ordering.files.clone()];
                acme = Some(ordering);
                files
            }
        };
        let loaded = match (
            &acme,
            files.iter().map(load_pair).collect::<Result<Vec<_>, _>>(),
        ) {
            (_, Ok(l)) => l,
            // Until the first certificate arrives, a throwaway one answers handshakes.
            (Some(a), Err(e)) => {
                tracing::info!(reason = %e, "no usable ordered certificate yet; serving a temporary one until the order completes");
                vec![placeholder(a.names())?]
            }
            (None, Err(e)) => return Err(e),
        };
        let resolver = Arc::new(Resolver {
            certs: ArcSwap::from_pointee(loaded),
            challenges: acme
                .as_ref()
                .filter(|a| a.uses_tls_alpn())
                .map(|a| a.challenges.clone()),
        });
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // The server's preference (rustls' order: AES-GCM and ChaCha20 with forward secrecy).
        server.ignore_client_order = true;
        if resolver.challenges.is_some() {
            server.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
        let stamps = files.iter().map(stamp).collect();
        Ok(Some(Tls {
            acme,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            resolver,
            files,
            stamps: Mutex::new(stamps),
        }))
    }

    /// Loads the files again when one changed on disk; a bad new file is logged and the
    /// certificates in use keep serving.
    pub(crate) fn reload_if_changed(&self) {
        let now: Vec<_> = self.files.iter().map(stamp).collect();
        let mut stamps = self
            .stamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *stamps == now {
            return;
        }
        match self
            .files
            .iter()
            .map(load_pair)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(loaded) => {
                self.resolver.certs.store(Arc::new(loaded));
                *stamps = now;
                tracing::info!("certificates reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "certificates not reloaded; the previous ones keep serving");
                *stamps = now;
            }
        }
    }
}

const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The self-signed certificate TLS-ALPN-01 asks for: the name, and the SHA-256 of the key
/// authorization in the critical acmeIdentifier extension.
pub(crate) fn alpn_challenge_certificate(
    name: &str,
    digest: &[u8],
) -> Result<Arc<CertifiedKey>, TlsError> {
    if digest.len() != 32 {
        return Err(TlsError::Generate(
            "the key authorization digest is not SHA-256".into(),
        ));
    }
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(gen_err)?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    Ok(self_signed(params)?.key)
}

/// A self-signed certificate for `names`, held in memory only.
fn placeholder(names: &[String]) -> Result<Loaded, TlsError> {
    let params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    self_signed(params)
}

/// Signs `params` with a fresh key, for rustls.
fn self_signed(params: rcgen::CertificateParams) -> Result<Loaded, TlsError> {
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(gen_err)?;
    let cert = params.self_signed(&key).map_err(gen_err)?;
    let der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::Generate(e.to_owned()))?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let leaf = cert.der().clone();
    Ok(Loaded {
        key: Arc::new(CertifiedKey::new(vec![leaf.clone()], signing)),
        leaf,
    })
}

fn stamp(f: &CertificateFiles) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(&f.cert_file), m(&f.key_file))
}

pub(crate) fn load_pair(f: &CertificateFiles) -> Result<Loaded, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let cert_pem = read(&f.cert_file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first().cloned() else {
        return Err(TlsError::NoCertificate {
            path: f.cert_file.clone(),
        });
    };
    if let Some(not_after) = not_after(&leaf) {
        if not_after.0 < now_unix() {
            return Err(TlsError::Expired {
                path: f.cert_file.clone(),
                not_after: not_after.1,
            });
        }
    } else {
        return Err(TlsError::Unparsable {
            path: f.cert_file.clone(),
        });
    }
    let key_pem = read(&f.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: f.key_file.clone(),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey {
            path: f.key_file.clone(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::Mismatch {
                cert: f.cert_file.clone(),
                key: f.key_file.clone(),
            });
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        leaf,
    })
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The certificate's notAfter, as unix seconds and as written.
pub(crate) fn not_after(der: &[u8]) -> Option<(i64, String)> {
    let (_, after) = times(der)?;
    Some(after)
}

/// notBefore and notAfter, as unix seconds.
pub(crate) fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (before, after) = times(der)?;
    Some((before.0, after.0))
}

/// A minimal DER walk: Certificate → tbsCertificate → [version] serial signature issuer
/// validity.
fn times(der: &[u8]) -> Option<((i64, String), (i64, String))> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..3 {
        let (_, _, after) = tlv(rest)?;
        rest = after;
    }
    let (_, validity, _) = tlv(rest)?;
    let (tag_nb, nb, after_nb) = tlv(validity)?;
    let (tag_na, na, _) = tlv(after_nb)?;
    Some((time(tag_nb, nb)?, time(tag_na, na)?))
}

fn time(tag: u8, raw: &[u8]) -> Option<(i64, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let full = match tag {
        0x17 => {
            let yy: i64 = text.get(0..2)?.parse().ok()?;
            format!("{}{}", if yy >= 50 { 19 } else { 20 }, text)
        }
        0x18 => text.to_owned(),
        _ => return None,
    };
    let n = |a: usize, b: usize| full.get(a..b).and_then(|s| s.parse::<i64>().ok());
    let (y, mo, d, h, mi, s) = (
        n(0, 4)?,
        n(4, 6)?,
        n(6, 8)?,
        n(8, 10)?,
        n(10, 12)?,
        n(12, 14)?,
    );
    let days = pier_core::time::days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    Some((
        days * 86_400 + h * 3600 + mi * 60 + s,
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC"),
    ))
}

/// One DER element: (tag, contents, what follows).
pub(crate) fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let body = b.get(header..header + len)?;
    Some((tag, body, &b[header + len..]))
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    write_mode(path, bytes, 0o600)
}

pub(crate) fn write_public(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    write_mode(path, bytes, 0o644)
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_get_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let dev =
            crate::devcert::ensure_dev_certificate(dir.path(), &["localhost".to_owned()]).unwrap();
        let (files, ca_key) = (dev.files, dev.ca_key);
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let e = load_pair(&CertificateFiles {
            cert_file: junk.clone(),
            key_file: files.key_file.clone(),
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("junk.pem"), "{e}");
        let e = load_pair(&CertificateFiles {
            cert_file: files.cert_file.clone(),
            key_file: junk,
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("junk.pem"), "{e}");
        // The CA's key is a key, but not this certificate's.
        let e = load_pair(&CertificateFiles {
            cert_file: files.cert_file.clone(),
            key_file: ca_key,
        })
        .err()
        .unwrap();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["old.example".to_owned()]).unwrap();
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        let cert = p.self_signed(&key).unwrap();
        let files = CertificateFiles {
            cert_file: dir.path().join("old.pem"),
            key_file: dir.path().join("old.key"),
        };
        std::fs::write(&files.cert_file, cert.pem()).unwrap();
        std::fs::write(&files.key_file, key.serialize_pem()).unwrap();
        let e = load_pair(&files).err().unwrap();
        assert!(
            e.to_string().contains("old.pem") && e.to_string().contains("2002-01-01"),
            "{e}"
        );
    }
}
