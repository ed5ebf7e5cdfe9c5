//! The development CA and its certificate (`tls.mode = "dev"`, `pier cert dev`): the CA is made
//! once and kept (the user trusts it), and the certificate names every development host
//! explicitly. A certificate that lacks a name the configuration needs (one made by an older
//! pier, or before a `.localhost` route was added) is issued again from the kept CA.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use pier_config::CertificateFiles;

use crate::tls::{TlsError, load_pair, now_unix, tlv, write_private, write_public};

/// The addresses the development certificate always holds.
const DEV_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// What [`ensure_dev_certificate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevIssue {
    /// The certificate on disk was valid and held every name: nothing was written.
    Kept,
    /// There was no usable certificate: one was made (and the CA with it when it was missing).
    Issued { new_ca: bool },
    /// The certificate lacked these names: a new one was signed by the kept CA.
    Reissued { missing: Vec<String> },
}

/// The development certificate's files, its CA's, and what was done to make them.
#[derive(Debug, Clone)]
pub struct DevCertificate {
    pub files: CertificateFiles,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Every name and address the certificate holds.
    pub names: Vec<String>,
    pub issue: DevIssue,
}

/// Makes the development CA (kept) and a certificate signed by it for `names` (DNS names, see
/// `Config::dev_certificate_names`), 127.0.0.1 and ::1, unless a valid one holding all of them
/// is there already.
///
/// # Errors
/// The folder cannot be written, or generation failed.
pub fn ensure_dev_certificate(
    certs_dir: &Path,
    names: &[String],
) -> Result<DevCertificate, TlsError> {
    let (files, ca_cert, ca_key) = pier_config::dev_files(certs_dir);
    let done = |issue| DevCertificate {
        files: files.clone(),
        ca_cert: ca_cert.clone(),
        ca_key: ca_key.clone(),
        names: names
            .iter()
            .cloned()
            .chain(DEV_ADDRESSES.iter().map(IpAddr::to_string))
            .collect(),
        issue,
    };
    let ca_kept = ca_cert.exists() && ca_key.exists();
    let missing = match load_pair(&files) {
        Ok(loaded) if ca_kept => {
            let missing = missing_names(&loaded.leaf, names);
            if missing.is_empty() {
                return Ok(done(DevIssue::Kept));
            }
            Some(missing)
        }
        _ => None,
    };
    std::fs::create_dir_all(certs_dir).map_err(|source| TlsError::Read {
        path: certs_dir.to_owned(),
        source,
    })?;
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let (y, m, d) = pier_core::time::civil_from_days(now_unix() / 86_400);
    let month = u8::try_from(m).unwrap_or(1);
    let day = u8::try_from(d.min(28)).unwrap_or(1);
    let year = i32::try_from(y).unwrap_or(2026);

    // Keep an existing CA (the user may trust it already); make one otherwise.
    let (ca_issuer, new_ca) = match (std::fs::read_to_string(&ca_key), std::fs::read(&ca_cert)) {
        (Ok(key_pem), Ok(_)) => {
            let key = rcgen::KeyPair::from_pem(&key_pem).map_err(gen_err)?;
            let issuer = rcgen::Issuer::new(ca_params(year, month, day).map_err(gen_err)?, key);
            (issuer, false)
        }
        _ => {
            let key = rcgen::KeyPair::generate().map_err(gen_err)?;
            let params = ca_params(year, month, day).map_err(gen_err)?;
            let cert = params.self_signed(&key).map_err(gen_err)?;
            write_private(&ca_key, key.serialize_pem().as_bytes())?;
            write_public(&ca_cert, cert.pem().as_bytes())?;
            (rcgen::Issuer::new(params, key), true)
        }
    };
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(gen_err)?;
    params
        .subject_alt_names
        .extend(DEV_ADDRESSES.map(rcgen::SanType::IpAddress));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = rcgen::date_time_ymd(year + 2, month, day);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(gen_err)?;
    let cert = params.signed_by(&key, &ca_issuer).map_err(gen_err)?;
    let ca_pem = std::fs::read_to_string(&ca_cert).map_err(|source| TlsError::Read {
        path: ca_cert.clone(),
        source,
    })?;
    write_private(&files.key_file, key.serialize_pem().as_bytes())?;
    write_public(
        &files.cert_file,
        format!("{}{ca_pem}", cert.pem()).as_bytes(),
    )?;
    Ok(done(match missing {
        Some(missing) if !new_ca => DevIssue::Reissued { missing },
        _ => DevIssue::Issued { new_ca },
    }))
}

/// [`ensure_dev_certificate`], logging what was written; returns the certificate's files.
pub(crate) fn ensure_logged(
    certs_dir: &Path,
    names: &[String],
) -> Result<CertificateFiles, TlsError> {
    let dev = ensure_dev_certificate(certs_dir, names)?;
    match &dev.issue {
        DevIssue::Kept => {}
        DevIssue::Issued { new_ca } => tracing::info!(
            certificate = %dev.files.cert_file.display(),
            ca = %dev.ca_cert.display(),
            new_ca,
            names = %dev.names.join(", "),
            "development certificate made"
        ),
        DevIssue::Reissued { missing } => tracing::info!(
            certificate = %dev.files.cert_file.display(),
            ca = %dev.ca_cert.display(),
            missing = %missing.join(", "),
            "development certificate re-issued from the kept CA: the old one lacked names"
        ),
    }
    Ok(dev.files)
}

fn ca_params(year: i32, month: u8, day: u8) -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "pier development CA");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "pier (development only)");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(year, month, day);
    p.not_after = rcgen::date_time_ymd(year + 10, month, day);
    Ok(p)
}

/// The names and addresses the certificate should hold and does not, matched exactly: a
/// `*.localhost` entry does not stand in for `api.localhost`, since browsers refuse it.
fn missing_names(leaf: &[u8], names: &[String]) -> Vec<String> {
    let (dns, addresses) = subject_alt_names(leaf).unwrap_or_default();
    let mut missing: Vec<String> = names
        .iter()
        .filter(|n| !dns.iter().any(|d| d.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    missing.extend(
        DEV_ADDRESSES
            .iter()
            .filter(|a| !addresses.contains(a))
            .map(IpAddr::to_string),
    );
    missing
}

/// The subjectAltName extension's DNS names and IP addresses, by a minimal DER walk:
/// Certificate → tbsCertificate → [3] extensions → the extension 2.5.29.17 → GeneralNames.
fn subject_alt_names(der: &[u8]) -> Option<(Vec<String>, Vec<IpAddr>)> {
    const SUBJECT_ALT_NAME: [u8; 3] = [0x55, 0x1d, 0x11];
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    while !rest.is_empty() {
        let (tag, body, after) = tlv(rest)?;
        rest = after;
        if tag != 0xa3 {
            continue;
        }
        let (_, mut extensions, _) = tlv(body)?;
        while !extensions.is_empty() {
            let (_, extension, next) = tlv(extensions)?;
            extensions = next;
            let (_, oid, after_oid) = tlv(extension)?;
            if oid != SUBJECT_ALT_NAME {
                continue;
            }
            // An optional `critical` BOOLEAN, then the OCTET STRING holding GeneralNames.
            let (mut tag, mut value, after_value) = tlv(after_oid)?;
            if tag == 0x01 {
                (tag, value, _) = tlv(after_value)?;
            }
            if tag != 0x04 {
                return None;
            }
            let (_, mut general_names, _) = tlv(value)?;
            let (mut dns, mut addresses) = (Vec::new(), Vec::new());
            while !general_names.is_empty() {
                let (tag, name, next) = tlv(general_names)?;
                general_names = next;
                match (tag, name.len()) {
                    (0x82, _) => dns.push(String::from_utf8_lossy(name).into_owned()),
                    (0x87, 4) => addresses.push(IpAddr::from(<[u8; 4]>::try_from(name).ok()?)),
                    (0x87, 16) => {
                        addresses.push(IpAddr::from(<[u8; 16]>::try_from(name).ok()?));
                    }
                    _ => {}
                }
            }
            return Some((dns, addresses));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_dev_certificate_loads_and_names_its_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let made = ensure_dev_certificate(dir.path(), &names(&["localhost"])).unwrap();
        assert_eq!(made.issue, DevIssue::Issued { new_ca: true });
        let loaded = load_pair(&made.files).unwrap();
        let (when, text) = crate::tls::not_after(&loaded.leaf).unwrap();
        assert!(when > now_unix() + 365 * 86_400, "{text}");
        // The chain holds the leaf and the CA.
        let pem = std::fs::read(&made.files.cert_file).unwrap();
        assert_eq!(CertificateDer::pem_slice_iter(&pem).count(), 2);
        // A second call keeps the CA and the certificate.
        let before = std::fs::read(&made.ca_cert).unwrap();
        let again = ensure_dev_certificate(dir.path(), &names(&["localhost"])).unwrap();
        assert_eq!(again.issue, DevIssue::Kept);
        assert_eq!(std::fs::read(&made.ca_cert).unwrap(), before);
        assert_eq!(std::fs::read(&made.files.cert_file).unwrap(), pem);
    }

    #[test]
    fn every_name_and_address_is_in_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let wanted = names(&[
            "localhost",
            "api.localhost",
            "shop.localhost",
            "*.localhost",
        ]);
        let made = ensure_dev_certificate(dir.path(), &wanted).unwrap();
        let leaf = load_pair(&made.files).unwrap().leaf;
        let (dns, addresses) = subject_alt_names(&leaf).unwrap();
        assert_eq!(dns, wanted);
        assert_eq!(addresses, DEV_ADDRESSES);
        assert!(missing_names(&leaf, &wanted).is_empty());
        assert_eq!(
            missing_names(&leaf, &names(&["localhost", "docs.localhost"])),
            ["docs.localhost"]
        );
    }

    #[test]
    fn a_certificate_lacking_a_name_is_reissued_from_the_kept_ca() {
        let dir = tempfile::tempdir().unwrap();
        let old = names(&["localhost", "*.localhost"]);
        let made = ensure_dev_certificate(dir.path(), &old).unwrap();
        let ca_before = std::fs::read(&made.ca_cert).unwrap();
        let ca_key_before = std::fs::read(&made.ca_key).unwrap();
        let wanted = names(&["localhost", "api.localhost", "*.localhost"]);
        let again = ensure_dev_certificate(dir.path(), &wanted).unwrap();
        assert_eq!(
            again.issue,
            DevIssue::Reissued {
                missing: names(&["api.localhost"])
            }
        );
        assert_eq!(std::fs::read(&again.ca_cert).unwrap(), ca_before);
        assert_eq!(std::fs::read(&again.ca_key).unwrap(), ca_key_before);
        let leaf = load_pair(&again.files).unwrap().leaf;
        assert!(missing_names(&leaf, &wanted).is_empty());
        // The chain's second certificate is the kept CA.
        let pem = std::fs::read(&again.files.cert_file).unwrap();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .map(Result::unwrap)
            .collect();
        let ca: Vec<_> = CertificateDer::pem_slice_iter(&ca_before)
            .map(Result::unwrap)
            .collect();
        assert_eq!(chain[1], ca[0]);
    }
}
