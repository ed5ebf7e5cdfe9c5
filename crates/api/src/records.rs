//! Collections, records and password auth: PocketBase's `/api/collections/…` routes.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use pier_records::{Auth, ListQuery};
use serde_json::{Map, Value, json};

use crate::{ApiError, AppState};

/// `upload_limit`: the body limit of record creates and updates, which may carry files.
pub(crate) fn router(upload_limit: u64) -> Router<AppState> {
    let uploads =
        axum::extract::DefaultBodyLimit::max(usize::try_from(upload_limit).unwrap_or(usize::MAX));
    Router::new()
        .route(
            "/api/collections",
            get(list_collections).post(create_collection),
        )
        .route(
            "/api/collections/import",
            axum::routing::put(import_collections),
        )
        .route(
            "/api/collections/{collection}",
            get(view_collection)
                .patch(update_collection)
                .delete(delete_collection),
        )
        .route(
            "/api/collections/{collection}/truncate",
            delete(truncate_collection),
        )
        .route(
            "/api/collections/{collection}/auth-with-password",
            post(auth_with_password),
        )
        .route(
            "/api/collections/{collection}/auth-refresh",
            post(auth_refresh),
        )
        .route(
            "/api/collections/{collection}/auth-methods",
            get(auth_methods),
        )
        .route(
            "/api/collections/{collection}/impersonate/{id}",
            post(impersonate),
        )
        .route(
            "/api/collections/{collection}/records",
            get(list_records).post(create_record).layer(uploads),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(view_record)
                .patch(update_record)
                .delete(delete_record)
                .layer(uploads),
        )
}

/// The caller, from `Authorization: <token>` (with or without `Bearer `), or an API key
/// (`pier_…`) held to its scope for this request.
pub(crate) struct Caller(pub(crate) Auth);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(t) = token else {
            return Ok(Caller(Auth::Guest));
        };
        let engine = state.engine().await?;
        let bare = t.strip_prefix("Bearer ").unwrap_or(t).trim_start();
        if !bare.starts_with(pier_records::KEY_PREFIX) {
            return Ok(Caller(engine.authenticate(t).await));
        }
        match engine.authenticate_key(bare).await {
            None => Ok(Caller(Auth::Guest)),
            Some(key) => {
                crate::api_keys::key_allows(&engine, &key, &parts.method, parts.uri.path()).await?;
                Ok(Caller(key.auth))
            }
        }
    }
}

pub(crate) fn require_superuser(auth: &Auth) -> Result<(), ApiError> {
    match auth {
        Auth::Superuser { .. } => Ok(()),
        Auth::Guest => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request requires valid record authorization token.",
        )),
        Auth::Record { .. } => Err(ApiError::forbidden(
            "The authorized record is not allowed to perform this action.",
        )),
    }
}

/// A JSON object body; anything else is PocketBase's 400.
pub(crate) struct JsonObject(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<JsonObject, ApiError> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("multipart/form-data"));
        if multipart {
            return multipart_object(req, state).await;
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    crate::uploads::too_large()
                } else {
                    crate::uploads::malformed()
                }
            })?;
        crate::uploads::json_object(&bytes).map(JsonObject)
    }
}

/// A multipart form as a JSON object (PocketBase's `@jsonPayload` merged in, see
/// `uploads::add_text`). Only record creates and updates take files (`uploads`); a file part
/// here is refused.
async fn multipart_object<S: Send + Sync>(req: Request, state: &S) -> Result<JsonObject, ApiError> {
    let malformed = crate::uploads::malformed;
    let mut form = axum::extract::Multipart::from_request(req, state)
        .await
        .map_err(|_| malformed())?;
    let mut out = Map::new();
    while let Some(field) = form.next_field().await.map_err(|_| malformed())? {
        let name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Files are accepted only by record creates and updates.",
            ));
        }
        let text = field.text().await.map_err(|_| malformed())?;
        crate::uploads::add_text(&mut out, name, text)?;
    }
    Ok(JsonObject(out))
}

pub(crate) fn ok_json(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

async fn list_collections(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let engine = state.engine().await?;
    let lq = list_query(&q)?;
    let page = lq.page.unwrap_or(1).max(1);
    let per_page = match lq.per_page.unwrap_or(30) {
        n if n <= 0 => 30,
        n => n.min(1000),
    };
    let (items, total) = engine
        .list_collections(&lq.filter, &lq.sort, page, per_page)
        .await?;
    let items: Vec<Value> = items.iter().map(|c| c.to_public_json()).collect();
    let (total_items, total_pages) = if lq.skip_total {
        (-1, -1)
    } else {
        (total, (total + per_page - 1) / per_page)
    };
    Ok(ok_json(json!({
        "page": page, "perPage": per_page, "totalItems": total_items,
        "totalPages": total_pages, "items": items,
    })))
}

async fn create_collection(
    State(state): State<AppState>,
    Caller(auth): Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let c = state
        .engine()
        .await?
        .create_collection(&Value::Object(body))
        .await?;
    Ok(ok_json(c.to_public_json()))
}

async fn view_collection(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    Ok(ok_json(
        state
            .engine()
            .await?
            .collection(&name)
            .await?
            .to_public_json(),
    ))
}

async fn update_collection(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(name): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let c = state
        .engine()
        .await?
        .update_collection(&name, &Value::Object(body))
        .await?;
    Ok(ok_json(c.to_public_json()))
}

async fn delete_collection(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let engine = state.engine().await?;
    let id = engine.collection(&name).await.map(|c| c.id.clone()).ok();
    engine.delete_collection(&name).await?;
    // Its files go with it.
    if let Some(id) = id {
        crate::files::forget_collection(&state, &id);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn truncate_collection(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let engine = state.engine().await?;
    let id = engine.collection(&name).await.map(|c| c.id.clone()).ok();
    engine.truncate_collection(&name).await?;
    // Its files go with it.
    if let Some(id) = id {
        crate::files::forget_collection(&state, &id);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn auth_with_password(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    crate::auth_flows::Client(origin): crate::auth_flows::Client,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = collection_context(&engine, &name).await?;
    let identity = body
        .get("identity")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let password = body
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut errors = Map::new();
    for (k, v) in [("identity", identity), ("password", password)] {
        if v.is_empty() {
            errors.insert(
                k.into(),
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            );
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::from(pier_records::RecordError::Validation {
            message: "An error occurred while validating the submitted data.".into(),
            fields: errors,
        }));
    }
    let mfa_id = crate::auth_flows::mfa_id(&body, &query);
    let result = engine
        .auth_with_password(&c, identity, password, mfa_id, &origin)
        .await?;
    crate::auth_flows::sign_in_response(&state, &engine, &c, result).await
}

fn list_query(q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let int = |key: &str| -> Result<Option<i64>, ApiError> {
        match q.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid `{key}` value."))
            }),
        }
    };
    Ok(ListQuery {
        page: int("page")?,
        per_page: int("perPage")?,
        sort: q.get("sort").cloned().unwrap_or_default(),
        filter: q.get("filter").cloned().unwrap_or_default(),
        skip_total: q
            .get("skipTotal")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true")),
    })
}

async fn list_records(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    ctx: RequestContext,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = collection_context(&engine, &name).await?;
    let req = ctx.info(&engine, auth, Map::new()).await;
    let mut result = engine.list(&c, &list_query(&q)?, &req).await?;
    shape(&engine, &c, &mut result.items, &q, &req).await?;
    Ok(ok_json(result.to_json()))
}

async fn view_record(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    ctx: RequestContext,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = collection_context(&engine, &name).await?;
    let req = ctx.info(&engine, auth, Map::new()).await;
    let record = engine.view(&c, &id, &req).await?;
    one(&engine, &c, record, &q, &req).await
}

async fn create_record(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    ctx: RequestContext,
    body: Request,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = collection_context(&engine, &name).await?;
    let mut received = crate::uploads::receive(&state, &c, &auth, None, body).await?;
    // The first superuser, created with the one-time setup token.
    let mut auth = auth;
    let mut claim = None;
    if matches!(auth, Auth::Guest)
        && c.id == pier_records::SUPERUSERS_ID
        && let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|t| t.trim().trim_start_matches("Bearer ").trim())
            .filter(|t| !t.is_empty())
    {
        claim = state.claim_setup_token(&engine, token).await?;
        if claim.is_some() {
            auth = crate::setup::SetupClaim::auth();
        }
    }
    let mut req = ctx
        .info(&engine, auth, std::mem::take(&mut received.body))
        .await;
    req.uploads = std::mem::take(&mut received.uploads);
    req.upload_id = received.upload_id.take();
    let record = match engine.create(&c, &req).await {
        Ok(r) => r,
        Err(e) => {
            received.discard().await;
            return Err(e.into());
        }
    };
    received.committed().await;
    if let Some(claim) = claim {
        claim.spend();
    }
    one(&engine, &c, record, &q, &req).await
}

async fn update_record(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    ctx: RequestContext,
    body: Request,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = collection_context(&engine, &name).await?;
    // Files go under the record's folder only once the record is known to exist.
    if !pier_files::is_stored_name(&id) {
        return Err(ApiError::not_found());
    }
    let mut received = crate::uploads::receive(&state, &c, &auth, Some(&id), body).await?;
    let mut req = ctx
        .info(&engine, auth, std::mem::take(&mut received.body))
        .await;
    req.uploads = std::mem::take(&mut received.uploads);
    let record = match engine.update(&c, &id, &req).await {
        Ok(r) => r,
        Err(e) => {
            received.discard().await;
            return Err(e.into());
        }
    };
    received.committed().await;
    // The files the update replaced or removed are gone before the answer.
    state.files_settled().await;
    one(&engine, &c, record, &q, &req).await
}

async fn delete_record(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path((name, id)): Path<(String, String)>,
    ctx: RequestContext,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = collection_context(&engine, &name).await?;
    let req = ctx.info(&engine, auth, Map::new()).await;
    engine.delete(&c, &id, &req).await?;
    // The record's files are gone before the answer, as PocketBase answers.
    state.files_settled().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The parts of a request that rules read as `@request.method`, `@request.query.*` and
/// `@request.headers.*` (header names lowercased, `-` as `_`).
pub(crate) struct RequestContext {
    method: String,
    query: Map<String, Value>,
    headers: Map<String, Value>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<RequestContext, ApiError> {
        let mut query = Map::new();
        if let Some(q) = parts.uri.query() {
            for (k, v) in query_pairs(q) {
                query.insert(k, Value::String(v));
            }
        }
        let mut headers = Map::new();
        for (name, value) in &parts.headers {
            if name == header::AUTHORIZATION || name == header::COOKIE {
                continue;
            }
            if let Ok(v) = value.to_str() {
                headers.insert(name.as_str().replace('-', "_"), Value::String(v.to_owned()));
            }
        }
        Ok(RequestContext {
            method: parts.method.as_str().to_owned(),
            query,
            headers,
        })
    }
}

impl RequestContext {
    async fn info(
        self,
        engine: &pier_records::Engine,
        auth: Auth,
        body: Map<String, Value>,
    ) -> pier_records::RequestInfo {
        engine
            .request_info(auth, &self.method, self.query, self.headers, body)
            .await
    }
}

/// `a=1&b=x%20y` as decoded pairs; malformed escapes are kept as written.
fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn auth_refresh(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = engine.collection(&name).await?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (token, record) = engine.auth_refresh(&c, &auth, presented).await?;
    Ok(ok_json(json!({"token": token, "record": record})))
}

async fn auth_methods(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = collection_context(&engine, &name).await?;
    Ok(ok_json(engine.auth_methods(&c)?))
}

/// The client's address as a string (`unknown` when the server was not given it).
pub(crate) struct PeerAddr(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<PeerAddr, ApiError> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

/// The collection of a records route; PocketBase words an unknown one differently from a 404.
pub(crate) async fn collection_context(
    engine: &pier_records::Engine,
    name: &str,
) -> Result<std::sync::Arc<pier_records::Collection>, ApiError> {
    engine.collection(name).await.map_err(|e| match e {
        pier_records::RecordError::NotFound => {
            ApiError::new(StatusCode::NOT_FOUND, "Missing collection context.")
        }
        other => ApiError::from(other),
    })
}

async fn impersonate(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path((name, id)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let c = engine.collection(&name).await?;
    let duration = body.get("duration").and_then(Value::as_i64).unwrap_or(0);
    if duration < 0 {
        let mut fields = Map::new();
        fields.insert(
            "duration".into(),
            json!({"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 0."}),
        );
        return Err(ApiError::from(pier_records::RecordError::Validation {
            message: "An error occurred while validating the submitted data.".into(),
            fields,
        }));
    }
    let (token, record) = engine.impersonate(&c, &id, duration, &auth).await?;
    Ok(ok_json(json!({"token": token, "record": record})))
}

/// Applies `expand` and `fields` from the query string.
pub(crate) async fn shape(
    engine: &pier_records::Engine,
    c: &pier_records::Collection,
    items: &mut [Map<String, Value>],
    q: &HashMap<String, String>,
    req: &pier_records::RequestInfo,
) -> Result<(), ApiError> {
    if let Some(expand) = q.get("expand").filter(|e| !e.trim().is_empty()) {
        engine.expand(c, items, expand, req).await?;
    }
    if let Some(fields) = q.get("fields").filter(|f| !f.trim().is_empty()) {
        for item in items.iter_mut() {
            pier_records::project(item, fields);
        }
    }
    Ok(())
}

async fn one(
    engine: &pier_records::Engine,
    c: &pier_records::Collection,
    record: Map<String, Value>,
    q: &HashMap<String, String>,
    req: &pier_records::RequestInfo,
) -> Result<Response, ApiError> {
    let mut items = [record];
    shape(engine, c, &mut items, q, req).await?;
    let [record] = items;
    Ok(ok_json(Value::Object(record)))
}

async fn import_collections(
    State(state): State<AppState>,
    Caller(auth): Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let list = body
        .get("collections")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let delete_missing = body
        .get("deleteMissing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    state
        .engine()
        .await?
        .import_collections(&list, delete_missing)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
