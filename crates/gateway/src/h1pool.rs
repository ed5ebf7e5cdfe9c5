//! Keep-alive HTTP/1.1 connections to plain-HTTP members at a known address, driven directly
//! (hyper's client connection, no generic pool): a connection goes back to its member's idle
//! list when its response has been read to the end.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Idle connections kept per member at most.
const MAX_IDLE: usize = 512;

/// A member's idle connections, most recently used last.
pub(crate) struct IdleList<T>(Mutex<Vec<(Instant, T)>>);

impl<T> Default for IdleList<T> {
    fn default() -> IdleList<T> {
        IdleList(Mutex::new(Vec::new()))
    }
}

impl<T> std::fmt::Debug for IdleList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleList").finish_non_exhaustive()
    }
}

impl<T> IdleList<T> {
    /// The most recently used connection not idle for longer than `max_idle`; older ones
    /// are closed.
    pub(crate) fn pop(&self, max_idle: Duration) -> Option<T> {
        let mut idle = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The oldest sit at the front.
        let stale = idle
            .iter()
            .take_while(|(at, _)| at.elapsed() > max_idle)
            .count();
        if stale > 0 {
            idle.drain(..stale);
        }
        idle.pop().map(|(_, s)| s)
    }

    /// Keeps a connection whose last response is complete (up to a limit).
    pub(crate) fn push(&self, s: T) {
        let mut idle = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((Instant::now(), s));
        }
    }
}

/// hyper's client connections to a member.
pub(crate) type Idle = IdleList<SendRequest<Body>>;

impl IdleList<SendRequest<Body>> {
    /// Returns a connection whose last response is complete, unless it has closed.
    pub(crate) fn put(&self, s: SendRequest<Body>) {
        if !s.is_closed() {
            self.push(s);
        }
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) struct SendFailure {
    /// The request never left: any method may be tried elsewhere.
    pub(crate) never_sent: bool,
    pub(crate) message: String,
}

/// Sends `req` (origin-form target) on an idle connection to `addr`, or a new one.
pub(crate) async fn send(
    idle: &Idle,
    addr: SocketAddr,
    connect_timeout: Duration,
    max_idle: Duration,
    mut req: Request<Body>,
) -> Result<(Response<Incoming>, SendRequest<Body>), SendFailure> {
    let mut busy = Vec::new();
    let found = loop {
        match idle.pop(max_idle) {
            None => break None,
            Some(s) if s.is_closed() => {}
            // Still finishing its last exchange: keep it for later.
            Some(s) if !s.is_ready() => busy.push(s),
            Some(s) => break Some(s),
        }
    };
    for s in busy {
        idle.put(s);
    }
    if let Some(mut s) = found {
        match s.try_send_request(req).await {
            Ok(res) => return Ok((res, s)),
            Err(mut e) => match e.take_message() {
                // The connection was closed under us before the request went out: a new one.
                Some(r) => req = r,
                None => {
                    return Err(SendFailure {
                        never_sent: false,
                        message: e.into_error().to_string(),
                    });
                }
            },
        }
    }
    let stream =
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(SendFailure {
                    never_sent: true,
                    message: format!("connect: {e}"),
                });
            }
            Err(_) => {
                return Err(SendFailure {
                    never_sent: true,
                    message: "connect: timed out".into(),
                });
            }
        };
    let _ = stream.set_nodelay(true);
    let (mut s, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendFailure {
            never_sent: true,
            message: e.to_string(),
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    match s.try_send_request(req).await {
        Ok(res) => Ok((res, s)),
        Err(mut e) => Err(SendFailure {
            never_sent: e.take_message().is_some(),
            message: e.into_error().to_string(),
        }),
    }
}
