//! The auth flows that send mail, and the sign-ins beyond a password: `request-verification`,
//! `confirm-verification`, `request-password-reset`, `confirm-password-reset`,
//! `request-email-change`, `confirm-email-change`, `request-otp`, `auth-with-otp`, and the MFA
//! answer every sign-in may give (401 with an `mfaId`). The engine decides; this layer reads
//! the bodies, hands the letters to the mailer and shapes the answers as PocketBase does.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pier_records::{Collection, CollectionType, Engine, Origin, SignIn};
use serde_json::{Map, Value, json};

use crate::mail::Outgoing;
use crate::records::{Caller, JsonObject, PeerAddr, collection_context, ok_json};
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    let route = |name: &str| format!("/api/collections/{{collection}}/{name}");
    Router::new()
        .route(&route("request-verification"), post(request_verification))
        .route(&route("confirm-verification"), post(confirm_verification))
        .route(
            &route("request-password-reset"),
            post(request_password_reset),
        )
        .route(
            &route("confirm-password-reset"),
            post(confirm_password_reset),
        )
        .route(&route("request-email-change"), post(request_email_change))
        .route(&route("confirm-email-change"), post(confirm_email_change))
        .route(&route("request-otp"), post(request_otp))
        .route(&route("auth-with-otp"), post(auth_with_otp))
}

fn text<'a>(body: &'a Map<String, Value>, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The auth collection of the path.
async fn auth_collection(
    state: &AppState,
    name: &str,
) -> Result<(std::sync::Arc<Engine>, std::sync::Arc<Collection>), ApiError> {
    let engine = state.engine().await?;
    let c = collection_context(&engine, name).await?;
    if c.kind != CollectionType::Auth {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid auth collection context.",
        ));
    }
    Ok((engine, c))
}

/// The client a sign-in comes from: its address and user agent.
pub(crate) struct Client(pub(crate) Origin);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Client, ApiError> {
        let PeerAddr(ip) = PeerAddr::from_request_parts(parts, state).await?;
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Client(Origin { ip, user_agent }))
    }
}

/// `mfaId` from the body or, as the SDK sends it, the query string.
pub(crate) fn mfa_id<'a>(
    body: &'a Map<String, Value>,
    query: &'a HashMap<String, String>,
) -> &'a str {
    body.get("mfaId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| query.get("mfaId").map(String::as_str))
        .unwrap_or_default()
}

/// A sign-in's answer: the token and record (and the sign-in alert mailed, when one is due), or
/// 401 `{"mfaId": …}` when a second factor is due.
pub(crate) async fn sign_in_response(
    state: &AppState,
    engine: &Engine,
    c: &Collection,
    result: SignIn,
) -> Result<Response, ApiError> {
    Ok(match result {
        SignIn::Token {
            token,
            record,
            alert,
        } => {
            if let Some(info) = alert {
                let out = Outgoing::load(state).await?;
                if let Some(letter) = engine.alert_letter(c, &record, &info, &out.app) {
                    out.send(state, letter);
                }
            }
            ok_json(json!({"token": token, "record": record}))
        }
        SignIn::Mfa { mfa_id } => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"mfaId": mfa_id})),
        )
            .into_response(),
    })
}

async fn request_verification(
    State(state): State<AppState>,
    Path(name): Path<String>,
    peer: PeerAddr,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let (engine, c) = auth_collection(&state, &name).await?;
    let out = Outgoing::load(&state).await?;
    if let Some(letter) = engine
        .request_verification(&c, text(&body, "email"), &peer.0, &out.app)
        .await?
    {
        out.send(&state, letter);
    }
    Ok(no_content())
}

async fn confirm_verification(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let (engine, c) = auth_collection(&state, &name).await?;
    engine
        .confirm_verification(&c, text(&body, "token"))
        .await?;
    Ok(no_content())
}

async fn request_password_reset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    peer: PeerAddr,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let (engine, c) = auth_collection(&state, &name).await?;
    let out = Outgoing::load(&state).await?;
    if let Some(letter) = engine
        .request_password_reset(&c, text(&body, "email"), &peer.0, &out.app)
        .await?
    {
        out.send(&state, letter);
    }
    Ok(no_content())
}

async fn confirm_password_reset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let (engine, c) = auth_collection(&state, &name).await?;
    engine
        .confirm_password_reset(
            &c,
            text(&body, "token"),
            text(&body, "password"),
            text(&body, "passwordConfirm"),
        )
        .await?;
    Ok(no_content())
}

async fn request_email_change(
    State(state): State<AppState>,
    Caller(auth): Caller,
    Path(name): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let (engine, c) = auth_collection(&state, &name).await?;
    let out = Outgoing::load(&state).await?;
    let letter = engine
        .request_email_change(&c, &auth, text(&body, "newEmail"), &out.app)
        .await?;
    out.send(&state, letter);
    Ok(no_content())
}

async fn confirm_email_change(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let (engine, c) = auth_collection(&state, &name).await?;
    engine
        .confirm_email_change(&c, text(&body, "token"), text(&body, "password"))
        .await?;
    Ok(no_content())
}

async fn request_otp(
    State(state): State<AppState>,
    Path(name): Path<String>,
    peer: PeerAddr,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let (engine, c) = auth_collection(&state, &name).await?;
    let out = Outgoing::load(&state).await?;
    let (otp_id, letter) = engine
        .request_otp(&c, text(&body, "email"), &peer.0, &out.app)
        .await?;
    if let Some(letter) = letter {
        out.send(&state, letter);
    }
    Ok(ok_json(json!({"otpId": otp_id})))
}

async fn auth_with_otp(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Client(origin): Client,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let (engine, c) = auth_collection(&state, &name).await?;
    let result = engine
        .auth_with_otp(
            &c,
            text(&body, "otpId"),
            text(&body, "password"),
            mfa_id(&body, &query),
            &origin,
        )
        .await?;
    sign_in_response(&state, &engine, &c, result).await
}
