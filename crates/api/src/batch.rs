//! `GET/PATCH /api/settings` (the parts pier uses) and `POST /api/batch`: several record
//! writes in one transaction.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pier_records::{Auth, RecordError};
use serde_json::{Map, Value, json};

use crate::records::{Caller, JsonObject, collection_context, require_superuser, shape};
use crate::{ApiError, AppState};

const SETTINGS_KEY: &str = "settings";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(view_settings).patch(update_settings))
        .route("/api/batch", post(batch))
}

fn default_settings() -> Value {
    json!({
        "meta": {"appName": "pier", "appURL": "", "hideControls": false, "senderName": "", "senderAddress": ""},
        "batch": {"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
    })
}

/// Merges `patch` into `base`, objects key by key.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

async fn load_settings(state: &AppState) -> Result<Value, ApiError> {
    let rows = state
        .store()
        .query(
            "SELECT value FROM _params WHERE key = $1",
            vec![SETTINGS_KEY.into()],
        )
        .await?;
    let mut settings = default_settings();
    if let Some(saved) = rows
        .scalar()
        .and_then(pier_storage::Value::as_str)
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        merge(&mut settings, &saved);
    }
    Ok(settings)
}

async fn view_settings(
    State(state): State<AppState>,
    Caller(auth): Caller,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    Ok(axum::Json(load_settings(&state).await?).into_response())
}

async fn update_settings(
    State(state): State<AppState>,
    Caller(auth): Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    require_superuser(&auth)?;
    let mut settings = load_settings(&state).await?;
    // Only the sections pier knows are kept; their types are checked.
    let known = default_settings();
    for (section, value) in &body {
        let Some(Value::Object(defaults)) = known.get(section) else {
            continue;
        };
        let Value::Object(given) = value else {
            return Err(invalid(section, "Must be an object."));
        };
        for (k, v) in given {
            match defaults.get(k) {
                Some(d) if same_kind(d, v) => {
                    settings[section][k] = v.clone();
                }
                Some(_) => return Err(invalid(&format!("{section}.{k}"), "Invalid value type.")),
                None => {}
            }
        }
    }
    let text = settings.to_string();
    state
        .store()
        .execute(
            "INSERT INTO _params (key, value, updated_at) VALUES ($1, $2, 0)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![SETTINGS_KEY.into(), text.into()],
        )
        .await?;
    Ok(axum::Json(settings).into_response())
}

fn same_kind(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Bool(_), Value::Bool(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::String(_), Value::String(_))
    )
}

fn invalid(key: &str, message: &str) -> ApiError {
    let mut fields = Map::new();
    fields.insert(
        key.to_owned(),
        json!({"code": "validation_invalid_value", "message": message}),
    );
    ApiError::from(RecordError::Validation {
        message: "An error occurred while validating the submitted data.".into(),
        fields,
    })
}

/// One sub-request: which record operation, on which collection.
enum Op {
    Create,
    Upsert,
    Update(String),
    Delete(String),
}

fn parse_url(method: &str, url: &str) -> Option<(String, Op, HashMap<String, String>)> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let rest = path.strip_prefix("/api/collections/")?;
    let mut parts = rest.split('/');
    let collection = parts.next().filter(|c| !c.is_empty())?.to_owned();
    if parts.next()? != "records" {
        return None;
    }
    let id = parts.next().filter(|i| !i.is_empty()).map(str::to_owned);
    if parts.next().is_some() {
        return None;
    }
    let op = match (method.to_ascii_uppercase().as_str(), id) {
        ("POST", None) => Op::Create,
        ("PUT", None) => Op::Upsert,
        ("PATCH", Some(id)) => Op::Update(id),
        ("DELETE", Some(id)) => Op::Delete(id),
        _ => return None,
    };
    let q = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2C", ",").replace("%2c", ",")))
        .collect();
    Some((collection, op, q))
}

async fn batch(
    State(state): State<AppState>,
    Caller(auth): Caller,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let settings = load_settings(&state).await?;
    if settings["batch"]["enabled"] != Value::Bool(true) {
        return Err(ApiError::forbidden("Batch requests are not allowed."));
    }
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if requests.is_empty() {
        return Err(invalid_requests("validation_required", "Cannot be blank."));
    }
    let max = settings["batch"]["maxRequests"].as_u64().unwrap_or(50);
    if requests.len() as u64 > max {
        return Err(invalid_requests(
            "validation_length_too_long",
            &format!("The maximum number of requests is {max}."),
        ));
    }
    let engine = state.engine().await?;
    let session = engine.store().session().await?;
    let scoped = engine.scoped(session.store());
    let mut results = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        match run_one(&scoped, &auth, &headers, r).await {
            Ok(v) => results.push(v),
            Err(e) => {
                session.rollback().await;
                let mut item = Map::new();
                item.insert(
                    i.to_string(),
                    json!({"code": "batch_request_failed", "message": "Batch request failed.", "response": e.body()}),
                );
                return Err(
                    ApiError::new(StatusCode::BAD_REQUEST, "Batch transaction failed.")
                        .with_data("requests", Value::Object(item)),
                );
            }
        }
    }
    session.commit().await?;
    Ok(axum::Json(Value::Array(results)).into_response())
}

fn invalid_requests(code: &str, message: &str) -> ApiError {
    let mut fields = Map::new();
    fields.insert("requests".into(), json!({"code": code, "message": message}));
    ApiError::from(RecordError::Validation {
        message: "An error occurred while validating the submitted data.".into(),
        fields,
    })
}

async fn run_one(
    engine: &pier_records::Engine,
    auth: &Auth,
    headers: &HeaderMap,
    r: &Value,
) -> Result<Value, ApiError> {
    let method = r.get("method").and_then(Value::as_str).unwrap_or_default();
    let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
    let body = match r.get("body") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let Some((name, op, query)) = parse_url(method, url) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid batch request: only record create, update, upsert and delete are allowed.",
        ));
    };
    let c = collection_context(engine, &name).await?;
    let mut header_map = Map::new();
    for (k, v) in headers {
        if k != axum::http::header::AUTHORIZATION
            && let Ok(v) = v.to_str()
        {
            header_map.insert(k.as_str().replace('-', "_"), Value::String(v.to_owned()));
        }
    }
    let query_map: Map<String, Value> = query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let req = engine
        .request_info(auth.clone(), method, query_map, header_map, body)
        .await;
    let record = match op {
        Op::Create => engine.create(&c, &req).await?,
        Op::Update(id) => engine.update(&c, &id, &req).await?,
        Op::Delete(id) => {
            engine.delete(&c, &id, &req).await?;
            return Ok(json!({"status": 204, "body": null}));
        }
        Op::Upsert => {
            let id = req
                .body
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let exists = match &id {
                Some(id) => engine.exists(&c, id).await?,
                None => false,
            };
            match id.filter(|_| exists) {
                Some(id) => engine.update(&c, &id, &req).await?,
                None => engine.create(&c, &req).await?,
            }
        }
    };
    let mut items = [record];
    shape(engine, &c, &mut items, &query, &req).await?;
    let [record] = items;
    Ok(json!({"status": 200, "body": record}))
}
