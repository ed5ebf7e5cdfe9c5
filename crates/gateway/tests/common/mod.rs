//! What the gateway's tests share: real HTTP/1.1 upstreams on port 0, a gateway in front of
//! them built from configuration text, and raw-socket helpers.
#![allow(dead_code, clippy::unwrap_used)] // Each test binary uses its own part of these.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pier_config::{Config, Env, Flag, LoadOptions, Role};
use pier_gateway::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

/// A real HTTP/1.1 upstream on port 0.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) release: Arc<Notify>,
    pub(crate) stop: Option<oneshot::Sender<()>>,
}

impl Upstream {
    pub(crate) async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (h, r) = (hits.clone(), release.clone());
        tokio::spawn(async move {
            let mut conns = Vec::new();
            loop {
                tokio::select! {
                    a = listener.accept() => {
                        let (stream, _) = a.unwrap();
                        let (h, r) = (h.clone(), r.clone());
                        conns.push(tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| {
                                let (h, r) = (h.clone(), r.clone());
                                async move { Ok::<_, Infallible>(upstream(name, req, h, r).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .with_upgrades()
                                .await;
                        }));
                    }
                    _ = &mut stopped => {
                        // Gone, connections and all, as a crashed process would be.
                        for c in conns { c.abort(); }
                        return;
                    }
                }
            }
        });
        Upstream {
            addr,
            hits,
            release,
            stop: Some(stop),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn kill(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub(crate) async fn upstream(
    name: &'static str,
    mut req: Request<Incoming>,
    hits: Arc<AtomicUsize>,
    release: Arc<Notify>,
) -> Response<Body> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    match path.strip_prefix("/api").unwrap_or(&path) {
        "/readyz" => Response::new(Body::from("ok")),
        "/ws" => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = on.await {
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if io.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(Body::empty())
                .unwrap()
        }
        "/sse" => {
            let stream = futures_util::stream::unfold(0u8, move |n| {
                let release = release.clone();
                async move {
                    match n {
                        0 => Some((Ok::<_, Infallible>(Bytes::from("data: one\n\n")), 1)),
                        1 => {
                            release.notified().await;
                            Some((Ok(Bytes::from("data: two\n\n")), 2))
                        }
                        _ => None,
                    }
                }
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        "/fail" => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Body::from(name))
            .unwrap(),
        _ => {
            // Echo what arrived: the upstream's name, the path and query, the headers, the body.
            let mut text = format!(
                "{name} {}\n",
                req.uri().path_and_query().map_or("", |p| p.as_str())
            );
            for (k, v) in req.headers() {
                text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            text.push_str(&format!("body: {}\n", String::from_utf8_lossy(&body)));
            Response::builder()
                .header("connection", "x-upstream-private")
                .header("x-upstream-private", "secret")
                .header("keep-alive", "timeout=5")
                .body(Body::from(text))
                .unwrap()
        }
    }
}

pub(crate) struct Front {
    pub(crate) addr: SocketAddr,
    pub(crate) base: String,
    pub(crate) gateway: Gateway,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) client: reqwest::Client,
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub(crate) fn config(dir: &Path, toml: &str, flags: &[(&'static str, String)]) -> Config {
    let file = dir.join("pier.toml");
    std::fs::write(&file, toml).unwrap();
    let mut all = vec![
        Flag {
            key: "paths.public_dir",
            value: dir.join("public").display().to_string(),
            name: "--public-dir",
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
    Config::load(
        LoadOptions {
            role: Role::Gateway,
            config_file: Some(file),
            flags: all,
        },
        &Env::default(),
    )
    .unwrap()
}

pub(crate) async fn front(toml: &str, flags: &[(&'static str, String)]) -> Front {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(public.join("assets")).unwrap();
    std::fs::create_dir_all(public.join("docs-site")).unwrap();
    std::fs::write(public.join("index.html"), "<!doctype html><p>home</p>").unwrap();
    std::fs::write(public.join(".env"), "SECRET=1").unwrap();
    std::fs::write(public.join("docs-site/index.html"), "<p>docs site</p>").unwrap();
    let js = "console.log('pier');\n".repeat(200);
    std::fs::write(public.join("assets/app.3f9a1c2b.js"), &js).unwrap();
    std::fs::write(public.join("robots.txt"), "User-agent: *\n").unwrap();
    let config = config(dir.path(), toml, flags);
    let gateway =
        Gateway::new(&config, None, Arc::new(pier_ops::Metrics::new())).expect("gateway starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Front {
        addr,
        base: format!("http://{addr}"),
        gateway,
        stop: Some(stop),
        dir,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_gzip()
            .no_brotli()
            .build()
            .unwrap(),
    }
}

pub(crate) async fn with_upstream(toml: &str) -> (Front, Upstream) {
    let up = Upstream::start("a").await;
    let f = front(toml, &[("gateway.upstreams", up.url())]).await;
    (f, up)
}

/// Sends raw bytes and reads until the server closes or `timeout` passes.
pub(crate) async fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends an upgrade request and reads the response head; the stream stays open for the tunnel.
pub(crate) async fn upgrade(addr: SocketAddr, request: &[u8]) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// Reads one response from `s` (its head, then a `Content-Length` body, or none for HEAD).
pub(crate) async fn read_response(s: &mut TcpStream, head_request: bool) -> (String, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; if head_request { 0 } else { len }];
    s.read_exact(&mut body).await.unwrap();
    (head, String::from_utf8_lossy(&body).into_owned())
}
