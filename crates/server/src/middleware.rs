//! The request layer every response passes through: request id, timeout, security headers,
//! metrics, and one log line per request.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pier_api::{ApiError, ErrorReport};
use pier_ops::request_id::{self, RequestIds};
use pier_ops::{Metrics, access_log};

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared by every request.
pub(crate) struct Observer {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) timeout: Duration,
    pub(crate) log_requests: bool,
    ids: RequestIds,
    /// While it drains, every answer says so (`x-pier-draining`), and `pier gateway` sends the
    /// next requests elsewhere at once.
    readiness: Arc<pier_ops::Readiness>,
}

impl Observer {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        timeout: Duration,
        log_requests: bool,
        readiness: Arc<pier_ops::Readiness>,
    ) -> Observer {
        Observer {
            readiness,
            metrics,
            timeout,
            log_requests,
            ids: RequestIds::new(),
        }
    }
}

pub(crate) async fn observe(
    State(obs): State<Arc<Observer>>,
    mut req: Request,
    next: Next,
) -> Response {
    let timer = obs.metrics.start();
    let id = match req.headers().get(&X_REQUEST_ID) {
        Some(v) if request_id::is_sane(v.as_bytes()) => v.clone(),
        _ => {
            let v =
                HeaderValue::from_bytes(&obs.ids.next()).unwrap_or(HeaderValue::from_static("0"));
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
    pier_gateway::security_headers(headers);
    if obs.readiness.is_draining() {
        headers.insert(pier_gateway::DRAINING_HEADER, HeaderValue::from_static("1"));
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
