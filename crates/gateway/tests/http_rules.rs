//! HTTP/1.1 message rules at the gateway (RFC 9112, RFC 9110), sent as raw bytes on every path a
//! request can take: the fast path (plain bodiless requests), hyper's path (bodies), TLS, and
//! HTTP/2. The upstream records every byte it receives, so a test can say what never reached it.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pier_config::{Config, Env, Flag, LoadOptions, Role};
use pier_gateway::Gateway;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A stream that keeps a copy of everything read from it.
struct Recording {
    inner: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let fresh = buf.filled()[before..].to_vec();
        self.seen.lock().unwrap().extend_from_slice(&fresh);
        polled
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A real HTTP/1.1 upstream (hyper, upgrades allowed) that echoes the headers it got and the
/// body, and records the raw bytes.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let all = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let io = Recording {
                    inner: stream,
                    seen: all.clone(),
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let mut text = String::new();
                        for (k, v) in req.headers() {
                            text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
                        }
                        let body = match req.into_body().collect().await {
                            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                            Err(_) => "<broken>".into(),
                        };
                        text.push_str(&format!("body: {body}\n"));
                        Ok::<_, Infallible>(Response::new(Body::from(text)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
}

struct Front {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    dir: tempfile::TempDir,
}

async fn front(up: &Upstream, flags: &[(&'static str, &str)]) -> Front {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/index.html"), "<p>home</p>").unwrap();
    let file = dir.path().join("pier.toml");
    std::fs::write(&file, "").unwrap();
    let flag = |key: &'static str, value: String| Flag {
        key,
        value,
        name: "--test",
    };
    let mut all = vec![
        flag("paths.data_dir", dir.path().display().to_string()),
        flag(
            "paths.public_dir",
            dir.path().join("public").display().to_string(),
        ),
        flag("gateway.upstreams", format!("http://{}", up.addr)),
        flag("log.requests", "false".into()),
    ];
    for (k, v) in flags {
        all.push(flag(k, (*v).to_owned()));
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    Front {
        addr,
        _stop: stop,
        dir,
    }
}

/// Sends raw bytes and reads until the server closes (a test fails if it does not).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, bytes: &[u8]) -> String {
    // The server may close before it has read everything; what it answered still counts.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection stays open: {}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    exchange(TcpStream::connect(addr).await.unwrap(), bytes).await
}

/// Each case is tried as a bodiless GET (the fast path) and as a POST with a body (hyper's).
fn both_paths(head_lines: &str) -> [String; 2] {
    [
        format!("GET /api/x HTTP/1.1\r\n{head_lines}\r\n"),
        format!("POST /api/x HTTP/1.1\r\n{head_lines}Content-Length: 2\r\n\r\nhi"),
    ]
}

fn status(out: &str) -> &str {
    out.get(9..12).unwrap_or("")
}

#[tokio::test]
async fn host_is_required_once_and_valid() {
    let up = Upstream::start().await;
    let f = front(&up, &[]).await;
    for (lines, message) in [
        ("X-A: 1\r\n", "needs a Host header"),
        ("Host: a\r\nHost: a\r\n", "only one Host header"),
        ("Host: a\r\nhost: b\r\n", "only one Host header"),
        ("Host: a b\r\n", "not a host name"),
        ("Host: user@a\r\n", "not a host name"),
    ] {
        for req in both_paths(lines) {
            let out = raw(f.addr, req.as_bytes()).await;
            assert_eq!(status(&out), "400", "{req}: {out}");
            assert!(out.contains(message), "{req}: {out}");
            assert!(out.contains("\"status\":400"), "PocketBase's shape: {out}");
            assert!(
                out.to_ascii_lowercase().contains("connection: close"),
                "{out}"
            );
        }
    }
    assert!(up.seen().is_empty(), "nothing reached the upstream");
    // HTTP/1.0 has no Host rule.
    let out = raw(f.addr, b"GET /api/x HTTP/1.0\r\n\r\n").await;
    assert_eq!(status(&out), "200", "{out}");
    // Pipelined: the honest request is answered first, the refused one after, nothing more.
    let out = raw(
        f.addr,
        b"GET /api/one HTTP/1.1\r\nHost: a\r\n\r\nGET /api/two HTTP/1.1\r\n\r\nGET /api/three HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    let statuses: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .map(|l| &l[..3])
        .collect();
    assert_eq!(statuses, ["200", "400"], "{out}");
    assert!(!up.seen().contains("/api/three"), "{}", up.seen());
    // A client cannot forge the guard's refusal header.
    let out = raw(
        f.addr,
        b"GET /api/x HTTP/1.1\r\nHost: a\r\npier-refused: 0 missing-host\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&out), "200", "{out}");
    assert!(!out.contains("pier-refused"), "{out}");
}

#[tokio::test]
async fn only_allowed_upgrades_reach_the_upstream() {
    let up = Upstream::start().await;
    let f = front(&up, &[]).await;
    let h2c = "Host: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n";
    for req in both_paths(h2c) {
        let req = req.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
        let out = raw(f.addr, req.as_bytes()).await;
        assert_eq!(status(&out), "200", "served as an ordinary request: {out}");
        let lower = out.to_ascii_lowercase();
        assert!(!lower.contains("upgrade"), "{out}");
        assert!(!lower.contains("http2-settings"), "{out}");
    }
    let seen = up.seen().to_ascii_lowercase();
    assert!(
        !seen.contains("h2c") && !seen.contains("http2-settings"),
        "{seen}"
    );
    // A stray HTTP2-Settings without an upgrade goes too.
    let out = raw(
        f.addr,
        b"GET /api/x HTTP/1.1\r\nHost: a\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        !out.to_ascii_lowercase().contains("http2-settings"),
        "{out}"
    );

    // WebSocket is allowed by default; with an empty list it is not.
    let ws = b"GET /api/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let before = up.seen().len();
    let _ = tokio::time::timeout(Duration::from_secs(2), raw(f.addr, ws)).await;
    assert!(
        up.seen()[before..]
            .to_ascii_lowercase()
            .contains("upgrade: websocket")
    );
    let none = Upstream::start().await;
    let g = front(&none, &[("gateway.allowed_upgrades", "")]).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), raw(g.addr, ws)).await;
    let seen = none.seen().to_ascii_lowercase();
    assert!(seen.contains("get /api/ws"), "{seen}");
    assert!(!seen.contains("upgrade"), "{seen}");
}

#[tokio::test]
async fn client_identity_headers_are_replaced_unless_the_peer_is_trusted() {
    let lies = "Host: a\r\nX-Real-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nCF-Connecting-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Scheme: https\r\nForwarded: for=6.6.6.6\r\nX-Original-URL: /admin\r\nConnection: close\r\n";
    let up = Upstream::start().await;
    let f = front(&up, &[]).await;
    for req in both_paths(lies) {
        let out = raw(f.addr, req.as_bytes()).await;
        assert_eq!(status(&out), "200", "{out}");
        assert!(!out.contains("6.6.6.6"), "{req}: {out}");
        let lower = out.to_ascii_lowercase();
        for gone in [
            "x-forwarded-port",
            "x-forwarded-scheme",
            "x-original-url",
            "true-client-ip",
        ] {
            assert!(!lower.contains(gone), "{gone}: {out}");
        }
        assert!(out.contains("x-real-ip: 127.0.0.1\n"), "{out}");
        assert!(out.contains("x-forwarded-for: 127.0.0.1\n"), "{out}");
    }
    // A trusted proxy's word is kept (and extended).
    let trusted = front(&up, &[("gateway.trusted_proxies", "127.0.0.0/8")]).await;
    for req in both_paths(lies) {
        let out = raw(trusted.addr, req.as_bytes()).await;
        assert!(out.contains("x-real-ip: 6.6.6.6\n"), "{out}");
        assert!(
            out.contains("x-forwarded-for: 6.6.6.6, 127.0.0.1\n"),
            "{out}"
        );
        assert!(out.contains("true-client-ip: 6.6.6.6\n"), "{out}");
    }
}

#[tokio::test]
async fn a_broken_chunked_body_is_the_clients_fault() {
    let up = Upstream::start().await;
    let f = front(&up, &[]).await;
    for (body, allowed) in [
        ("5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n", &["400"][..]),
        (
            "5\r\nhello\r\nffffffffffffffffff1\r\nmore\r\n0\r\n\r\n",
            &["400", "413"][..],
        ),
        ("5\r\nhello\r\n3\r\nabcdef\r\n0\r\n\r\n", &["400"][..]),
    ] {
        let req = format!(
            "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}GET /api/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        let out = raw(f.addr, req.as_bytes()).await;
        assert!(allowed.contains(&status(&out)), "{body:?}: {out}");
        assert!(out.contains("\"status\":4"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    }
    let seen = up.seen();
    assert!(
        !seen.contains("0\r\n\r\n"),
        "no request body reached its end: {seen:?}"
    );
    assert!(!seen.contains("smuggled"), "{seen:?}");
    // An honest chunked body still arrives whole.
    let out = raw(
        f.addr,
        b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(out.contains("body: hello"), "{out}");
}

#[tokio::test]
async fn long_lines_and_large_heads_get_431_and_the_connection_closed() {
    let up = Upstream::start().await;
    let f = front(&up, &[]).await;
    let line = |n: usize| format!("Host: a\r\nX-Long: {}\r\n", "a".repeat(n));
    let mut large = String::from("Host: a\r\n");
    for i in 0..40 {
        large.push_str(&format!("X-{i}: {}\r\n", "v".repeat(1000)));
    }
    for lines in [line(9 * 1024), line(64 * 1024), large.clone()] {
        for req in both_paths(&lines) {
            let out = raw(f.addr, req.as_bytes()).await;
            assert_eq!(status(&out), "431", "{}", &out[..out.len().min(300)]);
            assert!(out.contains("too l") || out.contains("too large"), "{out}");
        }
    }
    let target = format!(
        "GET /api/{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    assert_eq!(status(&raw(f.addr, target.as_bytes()).await), "414");
    assert!(up.seen().is_empty(), "nothing reached the upstream");
    // Under the limits: served.
    let mut fits = String::from("Host: a\r\n");
    for i in 0..3 {
        fits.push_str(&format!("X-{i}: {}\r\n", "v".repeat(7 * 1024)));
    }
    fits.push_str("Connection: close\r\n");
    for req in both_paths(&fits) {
        assert_eq!(status(&raw(f.addr, req.as_bytes()).await), "200");
    }
    // Both limits are configurable.
    let g = front(
        &up,
        &[
            ("gateway.max_header_line_bytes", "20000"),
            ("gateway.max_header_bytes", "100000"),
        ],
    )
    .await;
    let wide = format!("{}{}Connection: close\r\n", line(16 * 1024), &large[9..]);
    for req in both_paths(&wide) {
        assert_eq!(status(&raw(g.addr, req.as_bytes()).await), "200");
    }
}

#[tokio::test]
async fn the_rules_hold_over_tls() {
    let up = Upstream::start().await;
    let f = front(&up, &[("tls.mode", "dev")]).await;
    let ca = f.dir.path().join("certs/dev-ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tls = || async {
        let tcp = TcpStream::connect(f.addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    };
    for (lines, want) in [
        ("X-A: 1\r\n".to_owned(), "400"),
        ("Host: a\r\nHost: b\r\n".to_owned(), "400"),
        (
            format!("Host: a\r\nX-Long: {}\r\n", "a".repeat(9 * 1024)),
            "431",
        ),
    ] {
        for req in both_paths(&lines) {
            let out = exchange(tls().await, req.as_bytes()).await;
            assert_eq!(status(&out), want, "{out}");
        }
    }
    let out = exchange(
        tls().await,
        b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nX-Real-IP: 6.6.6.6\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&out), "200", "{out}");
    assert!(!out.contains("6.6.6.6") && !out.contains("h2c"), "{out}");
    assert!(out.contains("x-forwarded-proto: https\n"), "{out}");
}

/// One HTTP/2 request by prior knowledge on the plain listener.
async fn h2(addr: SocketAddr, req: Request<http_body_util::Empty<bytes::Bytes>>) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let res = send.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn http2_requests_keep_the_same_rules() {
    let up = Upstream::start().await;
    let f = front(&up, &[]).await;
    let base = || {
        Request::builder()
            .uri(format!("http://{}/api/x", f.addr))
            .version(http::Version::HTTP_2)
    };
    let empty = http_body_util::Empty::<bytes::Bytes>::new;
    let (s, body) = h2(
        f.addr,
        base().header("x-real-ip", "6.6.6.6").body(empty()).unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        !body.contains("6.6.6.6") && body.contains("x-real-ip: 127.0.0.1"),
        "{body}"
    );
    let mut two = base().body(empty()).unwrap();
    two.headers_mut().append("host", "a".parse().unwrap());
    two.headers_mut().append("host", "b".parse().unwrap());
    let (s, body) = h2(f.addr, two).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = h2(
        f.addr,
        base()
            .header("host", "elsewhere.example")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("differs"), "{body}");
    let (s, body) = h2(
        f.addr,
        base()
            .header("x-long", "a".repeat(9 * 1024))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, 431, "{body}");
    assert!(!up.seen().contains("elsewhere") && !up.seen().contains("x-long"));
}
