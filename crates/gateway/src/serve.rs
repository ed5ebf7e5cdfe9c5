//! The listener: accepts connections, serves HTTP/1.1 (with upgrades) and HTTP/2 on each in
//! its own task, and runs the gateway's background work (health checks, DNS, the public
//! folder's watcher) until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

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

        let settings = self.inner.settings.load_full();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_buf_size(settings.max_header_bytes)
            .max_headers(settings.max_headers)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let gw = gw.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(gw.handle(req.map(axum::body::Body::new), peer, false).await)
                        }
                    });
                    let io = TokioIo::new(crate::framing::Guarded::new(
                        stream,
                        settings.header_read_timeout,
                    ));
                    let conn = builder.serve_connection_with_upgrades(io, service);
                    let conn = graceful.watch(conn.into_owned());
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
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
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(deadline) => {
                tracing::warn!(timeout_seconds = deadline.as_secs(), "open connections did not finish within the shutdown deadline");
            }
        }
        background.abort();
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
                let checks = table.pools.iter().map(|p| p.check_all(&self.inner.client));
                futures_util::future::join_all(checks).await;
            }
            if now.duration_since(last_site) >= SITE_POLL {
                last_site = now;
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

/// The address a listener is bound to, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
