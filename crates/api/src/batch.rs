//! `POST /api/batch`: several record writes in one transaction, when the settings allow it.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pier_records::{Auth, RecordError};
use serde_json::{Map, Value, json};

use crate::records::{Caller, JsonObject, collection_context, shape};
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/batch", post(batch))
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
    let settings = crate::settings::load_settings(&state).await?;
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
    // The files the batch took away are gone before the answer.
    state.files_settled().await;
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
