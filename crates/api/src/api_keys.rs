//! API keys over HTTP (beyond PocketBase): `POST /api/keys` makes one (its secret shown once),
//! `GET /api/keys` lists the caller's (a superuser's: all) without secrets, `DELETE
//! /api/keys/{id}` revokes one at once. A key is sent like a token, `Authorization: Bearer
//! pier_…`; [`key_allows`] is where a narrowed key's scope meets the request it came with.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use pier_records::{Engine, KeyAuth};
use serde_json::json;

use crate::records::{Caller, JsonObject, ok_json};
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/keys", get(list).post(create))
        .route("/api/keys/{id}", delete(revoke))
}

async fn create(
    State(state): State<AppState>,
    Caller(auth): Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    Ok(ok_json(engine.create_api_key(&auth, &body).await?))
}

async fn list(State(state): State<AppState>, Caller(auth): Caller) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let items = engine.list_api_keys(&auth).await?;
    Ok(ok_json(json!({"items": items})))
}

async fn revoke(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    engine.delete_api_key(&auth, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Refuses what a key may not do on `method path`: every key is refused where a token would be
/// minted (`auth-refresh`, `impersonate`) or bound for later (`/api/realtime`, whose events
/// would outlive a revocation); a narrowed key is allowed only the record routes of its
/// collections and actions.
pub(crate) async fn key_allows(
    engine: &Engine,
    key: &KeyAuth,
    method: &Method,
    path: &str,
) -> Result<(), ApiError> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mints = matches!(
        parts.as_slice(),
        ["", "api", "collections", _, "auth-refresh"]
            | ["", "api", "collections", _, "impersonate", ..]
    );
    if mints || path.starts_with("/api/realtime") {
        return Err(ApiError::forbidden(
            "API keys cannot be exchanged for tokens or bound to realtime clients.",
        ));
    }
    if key.scope.is_unscoped() {
        return Ok(());
    }
    let (collection, action) = match (parts.as_slice(), method) {
        (["", "api", "collections", c, "records"], &Method::GET) => (*c, "list"),
        (["", "api", "collections", c, "records"], &Method::POST) => (*c, "create"),
        (["", "api", "collections", c, "records", _], &Method::GET) => (*c, "view"),
        (["", "api", "collections", c, "records", _], &Method::PATCH) => (*c, "update"),
        (["", "api", "collections", c, "records", _], &Method::DELETE) => (*c, "delete"),
        _ => return Err(out_of_scope()),
    };
    let c = engine
        .collection(collection)
        .await
        .map_err(|_| out_of_scope())?;
    if key.scope.allows(&c.id, action) {
        Ok(())
    } else {
        Err(out_of_scope())
    }
}

fn out_of_scope() -> ApiError {
    ApiError::forbidden("The API key's scope does not cover this request.")
}
