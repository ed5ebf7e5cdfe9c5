//! `GET /api/realtime/ws`: the realtime subscriptions over one WebSocket, for clients that
//! prefer it to SSE plus `POST`. Messages are JSON text:
//!
//! - from the server: `{"type":"connect","id":"<clientId>","topic":"PB_CONNECT","data":{…}}`
//!   first; then `{"type":"event","id":"<seq>","topic":"<topic>","data":{"record":…,
//!   "action":…}}` per event; `{"type":"reset",…}` when a resume is impossible; replies
//!   `{"type":"subscribed"|"unsubscribed"|"auth"|"pong",…}` and `{"type":"error","status":…,
//!   "message":…,"data":{…}}` (PocketBase's error shape, with a type).
//! - from the client: `{"type":"auth","token":"…"}` (or `Authorization` on the upgrade),
//!   `{"type":"subscribe","subscriptions":[…],"lastEventId":N?}` (replaces the topics, as
//!   `POST /api/realtime` does), `{"type":"unsubscribe","subscriptions":[…]?}` (the listed
//!   ones, or all), `{"type":"resume","lastEventId":N}`, `{"type":"ping"}`.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use pier_records::{Auth, Engine};
use serde_json::{Value, json};

use super::broker::{Broker, Client, Frame};
use super::{Form, dispatch, topic};
use crate::records::Caller;
use crate::{ApiError, AppState};

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Caller(auth): Caller,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let broker = state.realtime().clone();
    dispatch::start(&broker, &engine);
    let limit = broker.settings.max_subscriptions * (broker.settings.max_topic_length + 8) + 4096;
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| run(socket, broker, engine, auth)))
}

async fn run(mut socket: WebSocket, broker: Arc<Broker>, engine: Arc<Engine>, auth: Auth) {
    let (reg, mut rx) = broker.connect(None);
    let client = reg.client.clone();
    // A fresh client: binding cannot be refused.
    let _ = super::bind_auth(&engine, &client, auth).await;
    let hello = Frame::new(
        0,
        &client.id,
        Arc::from("PB_CONNECT"),
        Bytes::from(json!({"clientId": client.id}).to_string()),
    );
    if send(&mut socket, hello.ws()).await.is_err() {
        return;
    }
    tracing::info!(client = %client.id, "realtime websocket opened");
    let mut quiet = super::Quiet::new(&broker.settings);
    loop {
        let out = tokio::select! {
            biased;
            () = client.closed.cancelled() => break,
            f = rx.recv() => match f {
                Some(f) => {
                    quiet.message();
                    Message::Text(text(f.ws()))
                }
                None => break,
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Text(t))) => {
                    let reply = handle(&broker, &engine, &client, t.as_str()).await;
                    Message::Text(reply.to_string().into())
                }
                Some(Ok(Message::Binary(_))) => {
                    Message::Text(error(400, "Messages are JSON text.").to_string().into())
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            due = quiet.tick() => match due {
                super::Due::Idle => break,
                super::Due::KeepAlive => Message::Ping(Bytes::new()),
                super::Due::Nothing => continue,
            },
        };
        if socket.send(out).await.is_err() {
            break;
        }
    }
    // 1012: the server restarts (reconnect elsewhere); 1013: too slow, try again later.
    let (code, reason) = if broker.shutdown.is_cancelled() {
        (1012, "restarting")
    } else if client.closed.is_cancelled() {
        (1013, "too slow")
    } else {
        (1000, "closing")
    };
    let frame = axum::extract::ws::CloseFrame {
        code,
        reason: axum::extract::ws::Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    tracing::info!(client = %client.id, "realtime websocket closed");
    drop(reg);
}

fn text(b: Bytes) -> axum::extract::ws::Utf8Bytes {
    // Frames are rendered from JSON, so always UTF-8.
    axum::extract::ws::Utf8Bytes::try_from(b).unwrap_or_default()
}

async fn send(socket: &mut WebSocket, b: Bytes) -> Result<(), axum::Error> {
    socket.send(Message::Text(text(b))).await
}

fn error(status: u16, message: &str) -> Value {
    json!({"type": "error", "status": status, "message": message, "data": {}})
}

fn from_api(e: &ApiError) -> Value {
    let mut v = e.body();
    if let Value::Object(o) = &mut v {
        o.insert("type".into(), Value::from("error"));
    }
    v
}

/// One client message, answered.
async fn handle(
    broker: &Arc<Broker>,
    engine: &Arc<Engine>,
    client: &Arc<Client>,
    text: &str,
) -> Value {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(text) else {
        return error(400, "Messages are JSON objects with a \"type\".");
    };
    let kind = m
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match kind.as_str() {
        "ping" => json!({"type": "pong"}),
        "auth" => {
            let token = m.get("token").and_then(Value::as_str).unwrap_or_default();
            let auth = engine.authenticate(token).await;
            let who = match &auth {
                Auth::Guest => Value::Null,
                Auth::Superuser { id } => {
                    json!({"collectionId": pier_records::SUPERUSERS_ID, "id": id})
                }
                Auth::Record { collection_id, id } => {
                    json!({"collectionId": collection_id, "id": id})
                }
            };
            if let Err(e) = super::bind_auth(engine, client, auth).await {
                return from_api(&e);
            }
            json!({"type": "auth", "auth": who})
        }
        "subscribe" | "resume" => {
            if kind == "resume" {
                let topics: Vec<Value> = client
                    .state()
                    .topics
                    .iter()
                    .map(|t| Value::from(t.raw.to_string()))
                    .collect();
                m.insert("subscriptions".into(), Value::Array(topics));
            }
            m.insert("clientId".into(), Value::from(client.id.clone()));
            let form = match Form::from_object(&m, &broker.settings) {
                Ok(f) => f,
                Err(e) => return from_api(&e),
            };
            super::set_topics(broker, engine, client, form.topics(), form.last_event_id);
            json!({"type": "subscribed", "subscriptions": form.subscriptions})
        }
        "unsubscribe" => {
            let listed: Option<Vec<String>> =
                m.get("subscriptions").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                });
            let kept: Vec<Arc<topic::Topic>> = client
                .state()
                .topics
                .iter()
                .filter(|t| {
                    listed
                        .as_ref()
                        .is_some_and(|l| !l.iter().any(|s| **s == *t.raw))
                })
                .cloned()
                .collect();
            let names: Vec<String> = kept.iter().map(|t| t.raw.to_string()).collect();
            super::set_topics(broker, engine, client, kept, None);
            json!({"type": "unsubscribed", "subscriptions": names})
        }
        _ => error(
            400,
            "Unknown message type (expected auth, subscribe, unsubscribe, resume or ping).",
        ),
    }
}
