//! `GET|HEAD /api/health`, answered exactly as PocketBase answers it.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

/// PocketBase's body, byte for byte.
const HEALTHY: &str = r#"{"message":"API is healthy.","code":200,"data":{}}"#;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/health", get(health))
}

async fn health() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], HEALTHY)
}
