//! pier's REST backend. Each area exposes one `router(state)`; handlers stay private.
//!
//! Every error leaves through [`ApiError`], in PocketBase's JSON shape
//! (`{"data":{},"message":"…","status":404}`); 5xx bodies never carry internals.
#![deny(clippy::unwrap_used)]

mod api_keys;
mod auth_flows;
mod backups;
mod batch;
mod error;
mod files;
mod health;
mod mail;
mod ops;
mod realtime;
mod records;
mod settings;
mod setup;
mod state;
mod tus;
mod uploads;

pub use error::{ApiError, ErrorReport};
pub use realtime::Broker;
pub use state::AppState;

use axum::Router;

/// Every route of the backend: `/api/health`, `/livez`, `/readyz`, `/metrics`, and the PocketBase
/// API fallback for unknown `/api/*` paths.
pub fn router(state: AppState) -> Router {
    let (_, upload_limit) = state.body_limits();
    Router::new()
        .merge(health::router())
        .merge(ops::router())
        .merge(records::router(upload_limit))
        .merge(batch::router())
        .merge(settings::router())
        .merge(mail::router())
        .merge(auth_flows::router())
        .merge(api_keys::router())
        .merge(backups::router())
        .merge(files::router())
        .merge(tus::router())
        .merge(realtime::router())
        .merge(setup::router())
        .route("/api/{*rest}", axum::routing::any(not_found))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}
