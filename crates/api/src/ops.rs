//! `/livez`, `/readyz` and `/metrics`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pier_config::expose;
use serde_json::json;

use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn livez() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"alive"}"#,
    )
}

async fn readyz(State(state): State<AppState>) -> Response {
    let report = state
        .readiness()
        .check(Some(state.store()), state.migrations())
        .await;
    let status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if report.ok { "ready" } else { "unavailable" },
        "checks": {
            "database": report.database,
            "migrations": report.migrations,
            "disk": report.disk,
        },
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if !metrics_allowed(&state, peer, &parts.headers) {
        return Err(ApiError::forbidden(
            "The metrics endpoint is not open to this client.",
        ));
    }
    let ready = state.readiness().is_migrated();
    let text = state.metrics().render(Some(&state.store().stats()), ready);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Development: open. Production: a configured address or the configured bearer token.
fn metrics_allowed(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    let access = state.metrics_access();
    if access.open || !state.production() {
        return true;
    }
    if let Some(peer) = peer
        && access.allow.iter().any(|net| net.contains(peer.ip()))
    {
        return true;
    }
    if let Some(token) = &access.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(given) = given {
            return constant_time_eq(given.as_bytes(), expose(token).as_bytes());
        }
    }
    false
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
