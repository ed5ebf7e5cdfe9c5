//! HTTPS on the gateway's listener: the development CA, SNI, ALPN, certificates replaced on
//! disk, the redirect from HTTP, HSTS, and a slow handshake that holds up no one.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pier_config::{Config, Env, Flag, LoadOptions, Role};
use pier_gateway::Gateway;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

struct Front {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start(dir: &Path, toml: &str, flags: &[(&'static str, String)]) -> Front {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.html"), "<p>secure</p>").unwrap();
    let file = dir.join("pier.toml");
    std::fs::write(&file, toml).unwrap();
    let mut all = vec![
        Flag {
            key: "paths.data_dir",
            value: dir.display().to_string(),
            name: "--dir",
        },
        Flag {
            key: "paths.public_dir",
            value: dir.join("public").display().to_string(),
            name: "--public-dir",
        },
        Flag {
            key: "gateway.upstreams",
            value: "http://127.0.0.1:9".into(),
            name: "--upstream",
        },
        Flag {
            key: "log.requests",
            value: "false".into(),
            name: "--test",
        },
    ];
    for (k, v) in flags {
        all.push(Flag {
            key: k,
            value: v.clone(),
            name: "--test",
        });
    }
    let config = Config::load(
        LoadOptions {
            role: Role::Gateway,
            config_file: Some(file),
            flags: all,
        },
        &Env::default(),
    )
    .unwrap();
    let gateway = Gateway::new(&config, None, Arc::new(pier_ops::Metrics::new())).unwrap();
    assert_eq!(gateway.scheme(), "https");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    Front { addr, _stop: stop }
}

fn roots(ca_pem: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// A TLS connection as a client trusting `roots`; returns the negotiated ALPN protocol, the
/// server's leaf certificate and, for HTTP/1.1, the response to `GET path`.
async fn fetch(
    addr: SocketAddr,
    name: &str,
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
    path: &str,
) -> Result<(Option<Vec<u8>>, Vec<u8>, String), std::io::Error> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    let proto = conn.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = conn.peer_certificates().unwrap()[0].to_vec();
    let mut text = String::new();
    if proto.as_deref() != Some(b"h2") {
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        text = String::from_utf8_lossy(&out).into_owned();
    }
    Ok((proto, leaf, text))
}

#[tokio::test]
async fn https_with_the_development_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path(), "", &[("tls.mode", "dev".into())]).await;
    let ca = dir.path().join("certs/dev-ca.pem");
    let (proto, _, text) = fetch(f.addr, "localhost", roots(&ca), &[b"http/1.1"], "/")
        .await
        .unwrap();
    assert_eq!(proto.as_deref(), Some(&b"http/1.1"[..]));
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // No HSTS for the development certificate: it would pin localhost to HTTPS in browsers.
    assert!(
        !text.to_lowercase().contains("strict-transport-security"),
        "{text}"
    );
    assert!(text.ends_with("<p>secure</p>"), "{text}");
    // ALPN offers h2.
    let (proto, _, _) = fetch(f.addr, "localhost", roots(&ca), &[b"h2", b"http/1.1"], "/")
        .await
        .unwrap();
    assert_eq!(proto.as_deref(), Some(&b"h2"[..]));
    // A client that does not trust the CA is refused.
    let err = fetch(
        f.addr,
        "localhost",
        rustls::RootCertStore::empty(),
        &[],
        "/",
    )
    .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn a_slow_handshake_holds_up_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path(), "", &[("tls.mode", "dev".into())]).await;
    // A client that connects and says nothing.
    let _silent = TcpStream::connect(f.addr).await.unwrap();
    let mut half = TcpStream::connect(f.addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let ca = dir.path().join("certs/dev-ca.pem");
    let started = std::time::Instant::now();
    let (_, _, text) = tokio::time::timeout(
        Duration::from_secs(5),
        fetch(f.addr, "localhost", roots(&ca), &[], "/"),
    )
    .await
    .expect("served while others stall")
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(2));
}

fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let c = dir.join(format!("{name}.pem"));
    let k = dir.join(format!("{name}.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test]
async fn certificates_are_chosen_by_name_and_replaced_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a_cert, a_key) = self_signed(dir.path(), "a.test");
    let (b_cert, b_key) = self_signed(dir.path(), "b.test");
    let toml = format!(
        "[tls]\nmode = \"files\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n[[tls.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        a_cert.display(),
        a_key.display(),
        b_cert.display(),
        b_key.display()
    );
    let f = start(dir.path(), &toml, &[]).await;
    let (_, leaf_b, text) = fetch(f.addr, "b.test", roots(&b_cert), &[], "/")
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"));
    // Real certificates get HSTS, two years by default.
    assert!(
        text.to_lowercase()
            .contains("strict-transport-security: max-age=63072000\r\n"),
        "{text}"
    );
    // So do proxied answers, errors included (no upstream listens here).
    let (_, _, text) = fetch(f.addr, "b.test", roots(&b_cert), &[], "/api/x")
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    assert!(text.contains("\"status\":502"), "{text}");
    assert!(
        text.to_lowercase()
            .contains("strict-transport-security: max-age=63072000\r\n"),
        "{text}"
    );
    let (_, leaf_a, _) = fetch(f.addr, "a.test", roots(&a_cert), &[], "/")
        .await
        .unwrap();
    assert_ne!(leaf_a, leaf_b);

    // b.test gets a new certificate on disk; new connections see it.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["b.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let new_pem = dir.path().join("b-new.pem");
    std::fs::write(&new_pem, cert.pem()).unwrap();
    std::fs::write(&b_key, key.serialize_pem()).unwrap();
    std::fs::write(&b_cert, cert.pem()).unwrap();
    let mut replaced = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if let Ok((_, leaf, _)) = fetch(f.addr, "b.test", roots(&new_pem), &[], "/").await {
            assert_eq!(leaf, cert.der().to_vec());
            replaced = true;
            break;
        }
    }
    assert!(replaced, "the new certificate is served");
}

#[tokio::test]
async fn plain_http_is_redirected_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let f = start(
        dir.path(),
        "",
        &[
            ("tls.mode", "dev".into()),
            ("tls.redirect_addr", format!("127.0.0.1:{port}")),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let get = |path: &'static str| async move {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: example.test:{port}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let out = get("/a/b?c=1").await;
    assert!(out.starts_with("HTTP/1.1 308"), "{out}");
    assert!(
        out.to_lowercase().contains(&format!(
            "location: https://example.test:{}/a/b?c=1",
            f.addr.port()
        )),
        "{out}"
    );
    let out = get("/.well-known/acme-challenge/token").await;
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
}

/// The development hosts the certificate must name; `shop.localhost` comes from a route.
const DEV_HOSTS: [&str; 7] = [
    "localhost",
    "api.localhost",
    "admin.localhost",
    "docs.localhost",
    "dev.localhost",
    "app.localhost",
    "shop.localhost",
];

const SHOP_ROUTE: &str = "[[gateway.routes]]\nhost = \"shop.localhost\"\nto = \"frontend\"\n";

/// `curl --cacert CA https://host:port/` with the host resolved to the listener: OpenSSL's
/// name matching, not rustls'. Returns curl's stderr when it fails.
async fn curl(addr: SocketAddr, host: &str, ca: &Path) -> Result<String, String> {
    let port = addr.port();
    let url = format!("https://{host}:{port}/");
    let mut command = std::process::Command::new("curl");
    command
        .args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1"), &url]);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("curl should be installed (scripts/test installs it)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `openssl verify -verify_hostname` (or `-verify_ip`) of the served leaf against the CA.
fn openssl_verify(ca: &Path, leaf: &Path, name: &str) -> Result<(), String> {
    let flag = if name.parse::<std::net::IpAddr>().is_ok() {
        "-verify_ip"
    } else {
        "-verify_hostname"
    };
    let out = std::process::Command::new("openssl")
        .args(["verify", "-purpose", "sslserver", flag, name, "-CAfile"])
        .arg(ca)
        .arg(leaf)
        .output()
        .expect("openssl should be installed (scripts/test installs it)");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Writes the leaf of the certificate file alone, for `openssl verify`.
fn leaf_only(cert_file: &Path, out: &Path) {
    let pem = std::fs::read(cert_file).unwrap();
    let leaf = CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap();
    let text = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(&leaf)
    );
    std::fs::write(out, text).unwrap();
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

// Regression test for issue 11, item 3: `*.localhost` alone is refused by curl and browsers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_openssl_accept_every_development_name() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path(), SHOP_ROUTE, &[("tls.mode", "dev".into())]).await;
    let ca = dir.path().join("certs/dev-ca.pem");
    for host in DEV_HOSTS.into_iter().chain(["127.0.0.1"]) {
        let body = curl(f.addr, host, &ca)
            .await
            .unwrap_or_else(|e| panic!("curl refused {host}: {e}"));
        if host == "shop.localhost" || host == "localhost" {
            assert_eq!(body, "<p>secure</p>", "{host}");
        }
    }
    // A name the certificate does not list is still refused: OpenSSL ignores `*.localhost`.
    let e = curl(f.addr, "other.localhost", &ca).await.unwrap_err();
    assert!(e.contains("subject name") || e.contains("SSL"), "{e}");
    let leaf = dir.path().join("leaf.pem");
    leaf_only(&dir.path().join("certs/dev-localhost.pem"), &leaf);
    for name in DEV_HOSTS.into_iter().chain(["127.0.0.1", "::1"]) {
        openssl_verify(&ca, &leaf, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A CA and a certificate as pier made them before issue 11: `localhost` and `*.localhost`
/// only, plus the loopback addresses.
fn old_development_certificate(certs: &Path) {
    std::fs::create_dir_all(certs).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pier development CA");
    ca_params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "pier (development only)");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "*.localhost".to_owned()])
            .unwrap();
    for ip in [
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ] {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(certs.join("dev-ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(certs.join("dev-ca.key"), ca_key_pem).unwrap();
    std::fs::write(
        certs.join("dev-localhost.pem"),
        format!("{}{}", cert.pem(), ca_cert.pem()),
    )
    .unwrap();
    std::fs::write(certs.join("dev-localhost.key"), key.serialize_pem()).unwrap();
}

// Regression test for issue 11, item 3: a certificate made by an older pier is re-issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_development_certificate_is_reissued_at_start_from_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    old_development_certificate(&certs);
    let ca = certs.join("dev-ca.pem");
    let (ca_before, ca_key_before) = (
        std::fs::read(&ca).unwrap(),
        std::fs::read(certs.join("dev-ca.key")).unwrap(),
    );
    let old_leaf = std::fs::read(certs.join("dev-localhost.pem")).unwrap();
    let f = start(dir.path(), SHOP_ROUTE, &[("tls.mode", "dev".into())]).await;
    // The CA the user trusts is the one that signs the new certificate.
    assert_eq!(std::fs::read(&ca).unwrap(), ca_before);
    assert_eq!(
        std::fs::read(certs.join("dev-ca.key")).unwrap(),
        ca_key_before
    );
    assert_ne!(
        std::fs::read(certs.join("dev-localhost.pem")).unwrap(),
        old_leaf
    );
    for host in DEV_HOSTS {
        curl(f.addr, host, &ca)
            .await
            .unwrap_or_else(|e| panic!("curl refused {host}: {e}"));
    }
}
