//! PocketBase's backups API, superusers only: list, create, upload, download (with a file
//! token), delete and restore. Archives are pier's `.tar.zst` (not PocketBase's `.zip`), so
//! names follow PocketBase's rule with that extension: `[a-z0-9_-]+\.tar\.zst`.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pier_ops::backup::BackupKey;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::records::{Caller, require_superuser};
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/backups", get(list).post(create))
        .route("/api/backups/upload", post(upload))
        .route("/api/backups/{key}", get(download).delete(delete))
        .route("/api/backups/{key}/restore", post(restore))
        .route("/api/files/token", post(file_token))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A name given by a client, as PocketBase reports a bad one: a 400 with the field's error.
fn client_key(field: &str, name: &str) -> Result<BackupKey, ApiError> {
    BackupKey::parse(name).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "An error occurred while validating the submitted data.",
        )
        .with_data(
            field,
            json!({"code": "validation_invalid_key", "message": e.to_string()}),
        )
    })
}

/// A key in a URL: anything that is not a stored name is simply not found.
fn stored_key(key: &str) -> Result<BackupKey, ApiError> {
    BackupKey::parse_stored(key).map_err(|_| ApiError::not_found())
}

async fn list(State(state): State<AppState>, Caller(auth): Caller) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let backups = state.backups().clone();
    let entries = tokio::task::spawn_blocking(move || backups.list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let body: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "key": e.key.as_str(),
                "size": e.size,
                "modified": pier_core::time::format_datetime(e.modified),
            })
        })
        .collect();
    Ok(axum::Json(body).into_response())
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    Caller(auth): Caller,
    request: Request,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let bytes = axum::body::Bytes::from_request(request, &state)
        .await
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Failed to read the request body."))?;
    let body: CreateBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        CreateBody { name: None }
    } else {
        let invalid = || {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Failed to load the submitted data due to invalid formatting.",
            )
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        // A key pier does not know is refused, never dropped (PocketBase ignores it).
        if let Some(map) = value.as_object() {
            let unknown: Vec<&String> = map.keys().filter(|k| k.as_str() != "name").collect();
            if !unknown.is_empty() {
                let mut e = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "An error occurred while validating the submitted data.",
                );
                for k in unknown {
                    e = e.with_data(
                        k.clone(),
                        json!({"code": "validation_unknown_field", "message": "Unknown field."}),
                    );
                }
                return Err(e);
            }
        }
        serde_json::from_value(value).map_err(|_| invalid())?
    };
    let name = match body.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => Some(client_key("name", n)?),
        None => None,
    };
    // NOTE: the backup runs in its own task, so a request that times out or a client that
    // goes away does not cancel it halfway (it finishes, or fails and cleans up, on its own).
    let backups = state.backups().clone();
    tokio::spawn(async move { backups.create(name, false, &|_| {}).await })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(no_content())
}

async fn upload(
    State(state): State<AppState>,
    Caller(auth): Caller,
    request: Request,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Failed to load the submitted data due to invalid formatting.",
        )
    };
    let mut form = axum::extract::Multipart::from_request(request, &state)
        .await
        .map_err(|_| bad())?;
    while let Some(field) = form.next_field().await.map_err(|_| bad())? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or_default().to_owned();
        let key = client_key("file", &name)?;
        let bytes = field.bytes().await.map_err(|_| bad())?;
        state
            .backups()
            .import(&key, bytes.to_vec())
            .await
            .map_err(|e| match e {
                pier_ops::backup::BackupError::Damaged { .. } => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "An error occurred while validating the submitted data.",
                )
                .with_data(
                    "file",
                    json!({"code": "validation_invalid_backup", "message": e.to_string()}),
                ),
                other => ApiError::from(other),
            })?;
        return Ok(no_content());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "An error occurred while validating the submitted data.",
    )
    .with_data(
        "file",
        json!({"code": "validation_required", "message": "Missing required value."}),
    ))
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    let who = state
        .engine()
        .await?
        .authenticate_file_token(&query.token)
        .await;
    if !who.is_superuser() {
        return Err(ApiError::forbidden(
            "Insufficient permissions to access the resource.",
        ));
    }
    let key = stored_key(&key)?;
    let path = state.backups().path(&key)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(format!("failed to open `{}`: {e}", path.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("failed to read `{}`: {e}", path.display())))?
        .len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{key}\""),
            ),
            (
                header::CACHE_CONTROL,
                "max-age=2592000, stale-while-revalidate=86400".to_owned(),
            ),
        ],
        body,
    )
        .into_response())
}

async fn delete(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let key = stored_key(&key)?;
    let backups = state.backups().clone();
    tokio::task::spawn_blocking(move || backups.delete(&key))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(no_content())
}

async fn restore(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let key = stored_key(&key)?;
    state.request_restore(&key).await?;
    Ok(no_content())
}

async fn file_token(
    State(state): State<AppState>,
    Caller(auth): Caller,
) -> Result<Response, ApiError> {
    if matches!(auth, pier_records::Auth::Guest) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request requires valid record authorization token.",
        ));
    }
    let token = state.engine().await?.issue_file_token(&auth).await?;
    Ok(axum::Json(json!({ "token": token })).into_response())
}
