//! The listener: accepts connections, serves HTTP/1.1 (with upgrades) and HTTP/2 on each in
//! its own task, and runs the gateway's background work (health checks, DNS, the public
//! folder's watcher) until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::framing::Guarded;
use crate::gateway::Gateway;

/// How often the public folder is looked at for changes.
const SITE_POLL: Duration = Duration::from_secs(1);

impl Gateway {
    /// Serves `listener` until `shutdown` resolves, then stops accepting and lets open
    /// connections finish within the shutdown deadline.
    ///
    /// # Errors
    /// None today; the signature leaves room for listener setup failing (TLS).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let background = tokio::spawn(self.clone().background(stop_rx.clone()));
        let ordering = self
            .inner
            .tls
            .as_ref()
            .and_then(|t| t.acme.clone())
            .map(|a| tokio::spawn(a.run(stop_rx.clone())));
        let redirect = match (&self.inner.tls, self.inner.settings.load().redirect_addr) {
            (Some(_), Some(addr)) => {
                let https_port = listener.local_addr().map(|a| a.port()).unwrap_or(443);
                match TcpListener::bind(addr).await {
                    Ok(l) => {
                        tracing::info!(addr = %addr, "redirecting http://{addr} to HTTPS");
                        let challenges = self
                            .inner
                            .tls
                            .as_ref()
                            .and_then(|t| t.acme.as_ref())
                            .map(|a| a.challenges.clone());
                        Some(tokio::spawn(redirect_to_https(
                            l,
                            https_port,
                            challenges,
                            stop_rx.clone(),
                        )))
                    }
                    Err(e) => {
                        tracing::warn!(addr = %addr, error = %e, "cannot listen for the HTTP to HTTPS redirect");
                        None
                    }
                }
            }
            _ => None,
        };

        let settings = self.inner.settings.load_full();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            // The guard in front enforces `max_header_bytes`; this is a backstop behind it.
            .max_buf_size(settings.max_header_bytes + 16 * 1024)
            .max_headers(settings.max_headers)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        // Connections on the fast path, which the graceful watcher does not see.
        let fast_open = Arc::new(AtomicUsize::new(0));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let gw = self.clone();
                    let fast_gw = self.clone();
                    let fast_path = self.inner.table.load().has_direct_pool();
                    let fast_open = fast_open.clone();
                    let stop = stop_rx.clone();
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    let tls = self.inner.tls.clone();
                    let handshake_timeout = settings.handshake_timeout;
                    let head_timeout = settings.header_read_timeout;
                    let rules = self.inner.settings.load().rules.clone();
                    // The handshake runs in the connection's own task: a slow client never
                    // holds up the accept loop.
                    tokio::spawn(async move {
                        let service = move |secure: bool| {
                            let gw = gw.clone();
                            hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                                let gw = gw.clone();
                                async move {
                                    Ok::<_, std::convert::Infallible>(
                                        gw.handle(req.map(axum::body::Body::new), peer, secure).await,
                                    )
                                }
                            })
                        };
                        let result = match tls {
                            None => {
                                // Plain HTTP/1.1 proxy requests first take the fast path; the
                                // general one takes over with whatever it read.
                                let mut stream = stream;
                                let Some(prefix) = fast_first(&fast_gw, &mut stream, peer, false, fast_path.then_some((stop, &fast_open))).await else {
                                    return;
                                };
                                let io = TokioIo::new(Guarded::new(crate::fast::Rewind::new(prefix, stream), head_timeout, rules));
                                let conn = builder.serve_connection_with_upgrades(io, service(false));
                                watcher.watch(conn.into_owned()).await
                            }
                            Some(tls) => {
                                let accepted = tokio::time::timeout(handshake_timeout, tls.acceptor.accept(stream)).await;
                                let stream = match accepted {
                                    Ok(Ok(s)) => s,
                                    Ok(Err(e)) => {
                                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::debug!(peer = %peer, "TLS handshake timed out");
                                        return;
                                    }
                                };
                                // HTTP/1.1 over TLS takes the fast path too; HTTP/2 does not.
                                let mut stream = stream;
                                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                                let Some(prefix) = fast_first(&fast_gw, &mut stream, peer, true, (fast_path && !h2).then_some((stop, &fast_open))).await else {
                                    return;
                                };
                                let io = TokioIo::new(Guarded::new(crate::fast::Rewind::new(prefix, stream), head_timeout, rules));
                                let conn = builder.serve_connection_with_upgrades(io, service(true));
                                watcher.watch(conn.into_owned()).await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let deadline = self.inner.settings.load().shutdown_timeout;
        let fast_drained = async {
            while fast_open.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            ((), ()) = async { tokio::join!(graceful.shutdown(), fast_drained) } => {}
            () = tokio::time::sleep(deadline) => {
                tracing::warn!(timeout_seconds = deadline.as_secs(), "open connections did not finish within the shutdown deadline");
            }
        }
        background.abort();
        if let Some(r) = redirect {
            r.abort();
        }
        if let Some(o) = ordering {
            o.abort();
        }
        Ok(())
    }

    /// Health checks, DNS refreshes and the public folder's watcher, until `stop`.
    async fn background(self, mut stop: watch::Receiver<bool>) {
        let mut last_dns = tokio::time::Instant::now();
        let mut last_health = tokio::time::Instant::now() - Duration::from_secs(3600);
        let mut last_site = tokio::time::Instant::now();
        // Resolve names once right away.
        for p in &self.inner.table.load().pools {
            p.refresh_dns().await;
        }
        loop {
            let settings = self.inner.settings.load_full();
            let tick = settings.health_interval.unwrap_or(SITE_POLL).min(SITE_POLL);
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
            let now = tokio::time::Instant::now();
            let table = self.inner.table.load_full();
            if now.duration_since(last_dns) >= settings.dns_refresh {
                last_dns = now;
                for p in &table.pools {
                    p.refresh_dns().await;
                }
            }
            if let Some(interval) = settings.health_interval
                && now.duration_since(last_health) >= interval
            {
                last_health = now;
                let checks = table.pools.iter().map(|p| p.check_all(&self.inner.clients));
                futures_util::future::join_all(checks).await;
            }
            if now.duration_since(last_site) >= SITE_POLL {
                last_site = now;
                if let Some(tls) = self.inner.tls.clone() {
                    let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
                }
                let dir = settings.public_dir.clone();
                let loaded = self.inner.site.load().fingerprint;
                let fp = tokio::task::spawn_blocking(move || crate::site::fingerprint(&dir))
                    .await
                    .unwrap_or(loaded);
                if fp != loaded {
                    let gw = self.clone();
                    let r = tokio::task::spawn_blocking(move || gw.reload_site()).await;
                    if let Ok(Err(e)) = r {
                        tracing::error!(error = %e, "public folder could not be reloaded; the last copy keeps serving");
                    }
                }
            }
        }
    }
}

/// Plain HTTP: every request gets a 308 to the same URL over HTTPS, except ACME's HTTP-01
/// challenges, which are answered here once certificates are ordered.
async fn redirect_to_https(
    listener: TcpListener,
    https_port: u16,
    challenges: Option<Arc<crate::acme::Challenges>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let challenges = challenges.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let challenges = challenges.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(https_location(
                        &req,
                        https_port,
                        challenges.as_deref(),
                    ))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn https_location(
    req: &hyper::Request<Incoming>,
    https_port: u16,
    challenges: Option<&crate::acme::Challenges>,
) -> hyper::Response<axum::body::Body> {
    use http::header;
    if let Some(token) = req
        .uri()
        .path()
        .strip_prefix("/.well-known/acme-challenge/")
    {
        return match challenges.and_then(|c| c.answer(token)) {
            Some(key_auth) => {
                let mut r = hyper::Response::new(axum::body::Body::from(key_auth));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/octet-stream"),
                );
                r
            }
            None => crate::respond::not_found(),
        };
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .map_or(host.to_owned(), |h| format!("{h}]"))
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h).to_owned()
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut res = hyper::Response::new(axum::body::Body::empty());
    *res.status_mut() = http::StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = http::HeaderValue::from_str(&format!("https://{host}{port}{pq}")) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The address a listener is bound to, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Serves `stream` on the fast path while it may (`fast`: its stop signal and the count of
/// fast-path connections). `None` when the connection is done; else what the general path
/// starts with.
async fn fast_first<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    gw: &Gateway,
    stream: &mut S,
    peer: SocketAddr,
    tls: bool,
    fast: Option<(watch::Receiver<bool>, &Arc<AtomicUsize>)>,
) -> Option<bytes::Bytes> {
    let Some((stop, open)) = fast else {
        return Some(bytes::Bytes::new());
    };
    let _open = FastOpen::new(open);
    match crate::fast::serve(gw, stream, peer, tls, stop).await {
        crate::fast::Next::Closed => None,
        crate::fast::Next::General(b) => Some(b.freeze()),
    }
}

/// Counts a connection on the fast path while it lives.
struct FastOpen(Arc<AtomicUsize>);

impl FastOpen {
    fn new(count: &Arc<AtomicUsize>) -> FastOpen {
        count.fetch_add(1, Ordering::Relaxed);
        FastOpen(count.clone())
    }
}

impl Drop for FastOpen {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
