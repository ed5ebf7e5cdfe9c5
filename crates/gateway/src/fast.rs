//! The proxy's fast path, for the requests a reverse proxy sees most: plain HTTP/1.1, no body,
//! an idempotent method, for an upstream pool of plain-HTTP members. Such a request is handled
//! on the client connection's own task: its head is parsed once, the upstream head is written
//! straight from it (hop-by-hop headers dropped, forwarding headers set) on a kept-alive
//! connection, and the response head is written back with the first part of its body in one
//! write; the rest of the body (by length, chunked, or to the end) is streamed as it arrives.
//!
//! Anything else (a body, an upgrade, `Expect`, HTTP/1.0, a head the smuggling guard does not
//! pass cleanly, a trusted proxy's forwarding headers to merge, a rate limit answer, or any
//! route but an upstream pool) hands the connection, with every byte read so far, to the
//! general path (hyper) for the rest of its life. Both paths answer alike; this one only does
//! less work for the common case.
//!
//! This file holds the connection loop; `head` parses the request head and writes the
//! upstream's, `upstream` does the exchange with a member, `relay` streams the response back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use pier_ops::access_log;
use pier_ops::request_id;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::framing;
use crate::gateway::Gateway;
use crate::limit;
use crate::routes::Target;

mod head;
mod relay;
mod upstream;

use head::Plain;
use relay::{insert_before_blank_line, relay, write_error};
use upstream::exchange;

/// Headers parsed per head at most; a head with more goes the general way (which answers 431
/// past its own limit).
const MAX_HEADERS: usize = 96;
/// An upstream response head larger than this is refused (502).
const UPSTREAM_HEAD_MAX: usize = 64 * 1024;
/// Attempts per request at most (each on another member), as on the general path.
const MAX_ATTEMPTS: usize = 3;
/// Bytes asked of a socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// What the connection does after the fast path.
pub(crate) enum Next {
    /// Closed, or to be closed.
    Closed,
    /// The general path takes over, starting with these bytes.
    General(BytesMut),
}

/// A member's idle upstream connections for the fast path.
pub(crate) type RawIdle = crate::h1pool::IdleList<TcpStream>;

/// Serves requests on `stream` while they take the fast path.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    gw: &Gateway,
    stream: &mut S,
    peer: SocketAddr,
    tls: bool,
    mut stop: watch::Receiver<bool>,
) -> Next {
    // HTTPS answers carry HSTS, as on the general path.
    let hsts = if tls { gw.inner.hsts.clone() } else { None };
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut up_buf = BytesMut::with_capacity(READ_CHUNK);
    let ip_text = peer.ip().to_string();
    loop {
        if *stop.borrow() && buf.is_empty() {
            return Next::Closed;
        }
        let settings = gw.inner.settings.load();
        let head_len = match read_head(
            stream,
            &mut buf,
            settings.header_read_timeout,
            settings.max_header_bytes,
            &mut stop,
        )
        .await
        {
            Head::Complete(n) => n,
            Head::Closed => return Next::Closed,
            Head::General => return Next::General(buf),
        };
        let Some(req) = Plain::parse(&buf[..head_len], &settings.rules) else {
            return Next::General(buf);
        };
        if limit::trusted(&settings.trusted_proxies, peer.ip()) {
            return Next::General(buf);
        }
        let table = gw.inner.table.load();
        let host = crate::gateway::host_key(req.host);
        let (path, query) = match req.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (req.target, None),
        };
        let matched = table.route(&host, path);
        let route = matched.route;
        let Target::Pool(pool) = &route.target else {
            return Next::General(buf);
        };
        if !pool.members().iter().all(|m| m.direct.is_some()) {
            return Next::General(buf);
        }
        if let Some(limiter) = &route.limiter {
            let ip = peer.ip();
            if !limit::trusted(&settings.rate_limit_exempt, ip)
                && limiter.check(ip, Instant::now()).is_err()
            {
                // The general path answers the 429.
                return Next::General(buf);
            }
        }

        let timer = gw.inner.metrics.start();
        let generated;
        let id: &[u8] = match req.request_id {
            Some(v) if request_id::is_sane(v) => v,
            _ => {
                generated = gw.inner.ids.next();
                &generated
            }
        };
        out.clear();
        req.write_upstream_head(
            &mut out,
            matched.path.as_ref(),
            query,
            (peer.ip(), &ip_text),
            tls,
            id,
        );
        let sent = exchange(
            pool,
            &out,
            &mut up_buf,
            route.connect_timeout,
            route.response_timeout,
            req.method == "HEAD",
        )
        .await;
        let (status, bytes, keep) = match sent {
            Ok(mut res) => {
                out.clear();
                res.write_client_head(&mut out, id, req.close, hsts.as_ref());
                let status = res.status;
                match relay(stream, &mut out, &mut up_buf, &mut res).await {
                    Ok(bytes) => (status, bytes, !req.close && !res.close_client),
                    Err(bytes) => (status, bytes, false),
                }
            }
            Err(failure) => {
                out.clear();
                write_error(&mut out, failure.status, failure.message, id, req.close);
                if let Some(v) = &hsts {
                    insert_before_blank_line(&mut out, b"strict-transport-security", v.as_bytes());
                }
                let ok = stream.write_all(&out).await.is_ok();
                (failure.status, 0, ok && !req.close)
            }
        };
        let elapsed = timer.finish(req.method, &route.label, status, bytes);
        if settings.log_requests && access_log::enabled() {
            access_log::record(&access_log::Entry {
                request_id: std::str::from_utf8(id).unwrap_or_default(),
                method: req.method,
                route: &route.label,
                path,
                status,
                duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                bytes,
            });
        }
        drop(table);
        buf.advance(head_len);
        if !keep {
            let _ = stream.shutdown().await;
            return Next::Closed;
        }
    }
}

enum Head {
    /// The head ends here.
    Complete(usize),
    /// The client left, or took too long, before a whole head.
    Closed,
    /// Too large for this path.
    General,
}

/// Reads until `buf` holds a whole head.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    timeout: Duration,
    max: usize,
    stop: &mut watch::Receiver<bool>,
) -> Head {
    if let Some(n) = framing::head_end(buf) {
        return Head::Complete(n);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if buf.len() > max {
            return Head::General;
        }
        buf.reserve(READ_CHUNK);
        let idle = buf.is_empty();
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => r,
            // Stopping: an idle connection closes at once.
            _ = stop.changed(), if idle => return Head::Closed,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Head::Closed,
            Ok(Ok(_)) => {
                if let Some(n) = framing::head_end(buf) {
                    return Head::Complete(n);
                }
            }
        }
    }
}

/// A stream that first yields bytes read from it before (the fast path's, when the general
/// path takes over).
pub(crate) struct Rewind<S> {
    prefix: bytes::Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(prefix: bytes::Bytes, inner: S) -> Rewind<S> {
        Rewind { prefix, inner }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let part = self.prefix.split_to(n);
            buf.put_slice(&part);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
