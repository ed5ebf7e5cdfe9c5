//! Certificates from a real ACME server: Debian's `pebble`, with `pebble-challtestsrv` answering
//! its DNS queries with 127.0.0.1 and its HTTP-01 validation pointed at pier's plain listener.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pier_config::{Config, Env, Flag, LoadOptions, Role};
use pier_gateway::Gateway;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(bin: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{bin}` is not installed: the test command installs Debian's pebble (apt-get install pebble)"
    );
}

/// A test CA and a certificate for pebble's own HTTPS listener.
fn pebble_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test CA for pebble");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = p.signed_by(&key, &issuer).unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.join("test-ca.pem"),
        dir.join("pebble.pem"),
        dir.join("pebble.key"),
    );
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca_path, cert_path, key_path)
}

struct Pebble {
    _dns: Killed,
    server: Option<Killed>,
    directory: String,
    management: u16,
    ca: PathBuf,
}

fn start_pebble(dir: &Path, http_port: u16, tls_port: u16, eab: Option<(&str, &str)>) -> Pebble {
    let (ca, cert, key) = pebble_tls(dir);
    let (dns_port, dns_mgmt, listen, mgmt) = (free_port(), free_port(), free_port(), free_port());
    let dns = Command::new(which("pebble-challtestsrv"))
        .args([
            "-dns01",
            &format!("127.0.0.1:{dns_port}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{dns_mgmt}"),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let config = dir.join("pebble.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"pebble":{{"listenAddress":"127.0.0.1:{listen}","managementListenAddress":"127.0.0.1:{mgmt}","certificate":"{}","privateKey":"{}","httpPort":{http_port},"tlsPort":{tls_port},"ocspResponderURL":"","externalAccountBindingRequired":{},"externalAccountMACKeys":{{{}}},"retryAfter":{{"authz":1,"order":1}}}}}}"#,
            cert.display(),
            key.display(),
            eab.is_some(),
            eab.map(|(kid, key)| format!("\"{kid}\":\"{key}\"")).unwrap_or_default()
        ),
    )
    .unwrap();
    let server = Command::new(which("pebble"))
        .args([
            "-config",
            &config.display().to_string(),
            "-dnsserver",
            &format!("127.0.0.1:{dns_port}"),
        ])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(Instant::now() < deadline, "pebble did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Pebble {
        _dns: Killed(dns),
        server: Some(Killed(server)),
        directory: format!("https://127.0.0.1:{listen}/dir"),
        management: mgmt,
        ca,
    }
}

fn client(roots: rustls::RootCertStore) -> tokio_rustls::TlsConnector {
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

fn roots_from(pem: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// GET over TLS with SNI `name`; the leaf certificate and the response.
async fn get(
    addr: SocketAddr,
    name: &str,
    roots: rustls::RootCertStore,
    path: &str,
) -> std::io::Result<(Vec<u8>, String)> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = client(roots)
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    Ok((leaf, String::from_utf8_lossy(&out).into_owned()))
}

/// Pebble's current root, from its management interface.
async fn pebble_root(p: &Pebble) -> Vec<u8> {
    let roots = roots_from(&std::fs::read(&p.ca).unwrap());
    let addr: SocketAddr = format!("127.0.0.1:{}", p.management).parse().unwrap();
    let (_, text) = get(addr, "localhost", roots, "/roots/0").await.unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap().to_owned();
    assert!(body.contains("BEGIN CERTIFICATE"), "{text}");
    body.into_bytes()
}

async fn wait_for_leaf(
    addr: SocketAddr,
    root: &[u8],
    not: Option<&[u8]>,
    timeout: Duration,
) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((leaf, text)) = get(addr, "pier.test", roots_from(root), "/").await
            && not != Some(leaf.as_slice())
        {
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            return leaf;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate from pebble in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Running {
    addr: SocketAddr,
    certs: PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_gateway(
    dir: &Path,
    listener: TcpListener,
    pebble: &Pebble,
    extra: Vec<(&'static str, String)>,
) -> Running {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.html"), "<p>ordered</p>").unwrap();
    let mut flags: Vec<(&'static str, String)> = vec![
        ("paths.data_dir", dir.join("data").display().to_string()),
        ("paths.public_dir", dir.join("public").display().to_string()),
        ("gateway.upstreams", "http://127.0.0.1:9".into()),
        ("log.requests", "false".into()),
        ("tls.mode", "acme".into()),
        ("tls.acme_names", "pier.test,api.pier.test".into()),
        ("tls.acme_directory_url", pebble.directory.clone()),
        ("tls.acme_ca_file", pebble.ca.display().to_string()),
        ("tls.acme_email", "ops@pier.test".into()),
        ("tls.acme_retry_seconds", "1".into()),
        ("tls.acme_check_interval_seconds", "1".into()),
    ];
    flags.extend(extra);
    let config = Config::load(
        LoadOptions {
            role: Role::Gateway,
            config_file: None,
            flags: flags
                .into_iter()
                .map(|(key, value)| Flag {
                    key,
                    value,
                    name: "--test",
                })
                .collect(),
        },
        &Env::default(),
    )
    .unwrap();
    let certs = config.paths.certs_dir.clone();
    let gateway = Gateway::new(&config, None, Arc::new(pier_ops::Metrics::new())).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        certs,
        _stop: stop,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_ordered_renewed_and_kept_while_the_ca_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let mut pebble = start_pebble(dir.path(), http_port, free_port(), None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = start_gateway(
        dir.path(),
        listener,
        &pebble,
        vec![("tls.redirect_addr", format!("127.0.0.1:{http_port}"))],
    )
    .await;
    let (addr, certs) = (run.addr, run.certs.clone());

    // Obtained at start, served, trusted through pebble's root.
    let root = pebble_root(&pebble).await;
    let first = wait_for_leaf(addr, &root, None, Duration::from_secs(60)).await;
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "acme/account.json",
        "acme/certificate.key",
        "acme/certificate.pem",
    ] {
        let mode = std::fs::metadata(certs.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let (_, text) = get(addr, "pier.test", roots_from(&root), "/metrics")
        .await
        .unwrap();
    assert!(
        text.contains("pier_tls_certificate_expiry_days{name=\"api.pier.test\"}"),
        "{text}"
    );

    // A forced renewal: the certificate is gone from disk; a new one is ordered and served.
    std::fs::remove_file(certs.join("acme/certificate.pem")).unwrap();
    let second = wait_for_leaf(addr, &root, Some(&first), Duration::from_secs(60)).await;
    assert_ne!(first, second);

    // The CA goes away and the certificate must be ordered again: orders fail and are
    // retried, and the certificate in use keeps serving.
    pebble.server.take();
    std::fs::remove_file(certs.join("acme/certificate.pem")).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (leaf, text) = get(addr, "pier.test", roots_from(&root), "/metrics")
        .await
        .unwrap();
    assert_eq!(leaf, second);
    let failures = text
        .lines()
        .find(|l| l.starts_with("pier_tls_renewal_failures_total"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(failures >= 2, "{failures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_is_answered_on_the_https_listener() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https_port = listener.local_addr().unwrap().port();
    // Pebble validates TLS-ALPN-01 on pier's HTTPS port; no plain listener at all.
    let pebble = start_pebble(dir.path(), free_port(), https_port, None);
    let run = start_gateway(
        dir.path(),
        listener,
        &pebble,
        vec![
            ("tls.acme_challenge", "tls-alpn-01".into()),
            ("tls.redirect_addr", "off".into()),
        ],
    )
    .await;
    let root = pebble_root(&pebble).await;
    wait_for_leaf(run.addr, &root, None, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_account_binding_is_sent_when_the_ca_requires_it() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = start_pebble(dir.path(), http_port, free_port(), Some(("kid-pier", hmac)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = start_gateway(
        dir.path(),
        listener,
        &pebble,
        vec![
            ("tls.redirect_addr", format!("127.0.0.1:{http_port}")),
            ("tls.acme_eab_kid", "kid-pier".into()),
            ("tls.acme_eab_hmac_key", hmac.into()),
        ],
    )
    .await;
    let root = pebble_root(&pebble).await;
    wait_for_leaf(run.addr, &root, None, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_sharing_a_certificates_folder_order_once() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let pebble = start_pebble(dir.path(), http_port, free_port(), None);
    // Both use the same data (and so certificates) folder; only the first listens where the CA
    // validates, so an order by the second succeeds only through the shared challenge files.
    let a = start_gateway(
        dir.path(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        &pebble,
        vec![("tls.redirect_addr", format!("127.0.0.1:{http_port}"))],
    )
    .await;
    let b = start_gateway(
        dir.path(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        &pebble,
        vec![("tls.redirect_addr", format!("127.0.0.1:{}", free_port()))],
    )
    .await;
    let root = pebble_root(&pebble).await;
    let leaf_a = wait_for_leaf(a.addr, &root, None, Duration::from_secs(60)).await;
    let leaf_b = wait_for_leaf(b.addr, &root, None, Duration::from_secs(60)).await;
    assert_eq!(leaf_a, leaf_b, "one order, one certificate, served by both");
    // Had both ordered, a second certificate would replace the first on disk within moments.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (later, _) = get(a.addr, "pier.test", roots_from(&root), "/")
        .await
        .unwrap();
    assert_eq!(later, leaf_a, "no second order replaced the certificate");
}
