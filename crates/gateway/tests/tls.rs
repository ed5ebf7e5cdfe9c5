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
