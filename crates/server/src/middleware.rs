//! The request layer every response passes through: request id, timeout, security headers,
//! metrics, and one log line per request.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pier_api::{ApiError, ErrorReport};
use pier_ops::{Metrics, access_log};

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared by every request.
pub(crate) struct Observer {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) timeout: Duration,
    pub(crate) log_requests: bool,
    ids: RequestIds,
}

impl Observer {
    pub(crate) fn new(metrics: Arc<Metrics>, timeout: Duration, log_requests: bool) -> Observer {
        Observer {
            metrics,
            timeout,
            log_requests,
            ids: RequestIds::new(),
        }
    }
}

/// Request ids: a random per-process prefix and a counter, 24 hex digits.
struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        RequestIds {
            prefix: h.finish(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 24];
        hex(&mut buf[..16], self.prefix);
        hex(&mut buf[16..], n);
        HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
    }
}

fn hex(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// A client-supplied id is kept when it is 1 to 128 characters of `[A-Za-z0-9._:-]`.
fn sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

pub(crate) async fn observe(
    State(obs): State<Arc<Observer>>,
    mut req: Request,
    next: Next,
) -> Response {
    let timer = obs.metrics.start();
    let id = match req.headers().get(&X_REQUEST_ID) {
        Some(v) if sane_request_id(v) => v.clone(),
        _ => {
            let v = obs.ids.next();
            req.headers_mut().insert(X_REQUEST_ID.clone(), v.clone());
            v
        }
    };
    let method = req.method().clone();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let path = (obs.log_requests && access_log::enabled()).then(|| req.uri().path().to_owned());

    let mut res = match tokio::time::timeout(obs.timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::unavailable("The request took too long to process.").into_response(),
    };

    let headers = res.headers_mut();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
        (header::X_XSS_PROTECTION, "1; mode=block"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }

    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = res.status().as_u16();
    let bytes = body_len(res.body());
    if let Some(report) = res.extensions().get::<ErrorReport>() {
        tracing::error!(
            request_id = %id.to_str().unwrap_or_default(),
            route = %route,
            status,
            error = %report.0,
            "request failed"
        );
    }
    let elapsed = timer.finish(method.as_str(), route, status, bytes);
    if let Some(path) = path {
        access_log::record(&access_log::Entry {
            request_id: id.to_str().unwrap_or_default(),
            method: method.as_str(),
            route,
            path: &path,
            status,
            duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            bytes,
        });
    }
    res
}

fn body_len(body: &Body) -> u64 {
    let hint = body.size_hint();
    hint.exact().unwrap_or(hint.lower())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_sane() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(sane_request_id(&a));
    }

    #[test]
    fn odd_client_ids_are_replaced() {
        for bad in ["", "has space", "semi;colon", &"x".repeat(129), "quote\""] {
            let v = HeaderValue::from_str(bad).unwrap_or(HeaderValue::from_static(""));
            assert!(!sane_request_id(&v), "{bad:?}");
        }
        assert!(sane_request_id(&HeaderValue::from_static("abc-123_x.y:z")));
    }
}
