//! Realtime: PocketBase's SSE protocol at `/api/realtime` (connect with `GET`, set the
//! client's topics with `POST {clientId, subscriptions}`), the same subscriptions over a
//! WebSocket at `/api/realtime/ws`, and lossless resume.
//!
//! Every record event's SSE `id:` is its sequence number (`PB_CONNECT`'s stays the client id,
//! which is where PocketBase's SDK reads it). A client that reconnects with `Last-Event-ID`, or
//! subscribes with `"lastEventId"`, first gets every event it missed that its new topics
//! match, in order, with the rules applied as of now; when those events are no longer kept it
//! gets `PB_RESET` and should read again. Across backends on one PostgreSQL database the
//! events hub delivers every backend's events here; each backend checks its own clients'
//! rules.
//!
//! - `topic`: subscription topics and their options;
//! - `broker`: clients, their queues and frames;
//! - `dispatch`: events to frames, grouped by what subscribers would see, and replays;
//! - `ws`: the WebSocket endpoint.

mod broker;
mod dispatch;
mod topic;
mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub use broker::Broker;
use broker::{Frame, Registration};

use crate::records::Caller;
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/realtime", get(connect).post(subscribe))
        .route("/api/realtime/ws", get(ws::upgrade))
}

/// Registers the realtime series with `/metrics`.
pub(crate) fn metrics(broker: &Arc<Broker>) -> pier_ops::Collector {
    let broker = broker.clone();
    Arc::new(move |e: &mut pier_ops::Exposition| {
        use std::sync::atomic::Ordering::Relaxed;
        let (open, subs) = broker.sizes();
        let c = &broker.counters;
        for (name, kind, help, value) in [
            (
                "pier_realtime_connections",
                "gauge",
                "Open realtime connections (SSE and WebSocket).",
                open as u64,
            ),
            (
                "pier_realtime_subscriptions",
                "gauge",
                "Topics the open realtime connections follow.",
                subs as u64,
            ),
            (
                "pier_realtime_connections_total",
                "counter",
                "Realtime connections opened.",
                c.connections_total.load(Relaxed),
            ),
            (
                "pier_realtime_events_total",
                "counter",
                "Record events the realtime dispatcher handled.",
                c.events.load(Relaxed),
            ),
            (
                "pier_realtime_messages_delivered_total",
                "counter",
                "Event messages queued for realtime clients.",
                c.delivered.load(Relaxed),
            ),
            (
                "pier_realtime_messages_dropped_total",
                "counter",
                "Event messages not delivered because the client was too slow or gone.",
                c.dropped.load(Relaxed),
            ),
            (
                "pier_realtime_slow_disconnects_total",
                "counter",
                "Realtime clients disconnected because their queue was full.",
                c.slow_disconnects.load(Relaxed),
            ),
            (
                "pier_realtime_resumes_total",
                "counter",
                "Realtime clients that resumed after an event number.",
                c.resumes.load(Relaxed),
            ),
            (
                "pier_realtime_resets_total",
                "counter",
                "Realtime clients told to reload (PB_RESET).",
                c.resets.load(Relaxed),
            ),
            (
                "pier_realtime_rule_queries_total",
                "counter",
                "Rule queries run to decide who sees realtime events.",
                broker.engine.get().map_or(0, |e| e.event_rule_queries()),
            ),
        ] {
            e.family(name, kind, help);
            e.sample(name, &[], value);
        }
    })
}

/// A numeric `Last-Event-ID`.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

/// `GET /api/realtime`: the SSE stream.
async fn connect(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let engine = state.engine().await?;
    let broker = state.realtime();
    dispatch::start(broker, &engine);
    let (reg, rx) = broker.connect(last_event_id(&headers));
    let id = reg.client.id.clone();
    let hello = Frame::new(
        0,
        &id,
        Arc::from("PB_CONNECT"),
        Bytes::from(json!({"clientId": id}).to_string()),
    );
    tracing::info!(client = %id, "realtime stream opened");
    let stream = Stream::new(reg, rx, hello.sse(), &broker.settings);
    let body = futures_util::stream::unfold(stream, Stream::next);
    let mut res = Body::from_stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// A connection's one timer, shared by its keep-alives and its idle timeout, never reset by
/// traffic (thousands of streams each taking a timer per message would cost more than the
/// messages): at each tick, a connection idle for the idle timeout ends, and one that wrote
/// nothing for half a tick gets a keep-alive.
pub(crate) struct Quiet {
    tick: std::pin::Pin<Box<tokio::time::Interval>>,
    keepalive: bool,
    idle_timeout: std::time::Duration,
    /// When the last event was written (the idle timeout counts from it).
    last_message: Instant,
    /// When anything was last written.
    last_write: Instant,
}

/// What a tick asks of the connection.
pub(crate) enum Due {
    Nothing,
    KeepAlive,
    Idle,
}

impl Quiet {
    pub(crate) fn new(settings: &pier_config::RealtimeConfig) -> Quiet {
        let period = settings
            .keepalive
            .unwrap_or(settings.idle_timeout)
            .min(settings.idle_timeout);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let now = Instant::now();
        Quiet {
            tick: Box::pin(tick),
            keepalive: settings.keepalive.is_some(),
            idle_timeout: settings.idle_timeout,
            last_message: now,
            last_write: now,
        }
    }

    /// An event was written.
    pub(crate) fn message(&mut self) {
        self.last_message = Instant::now();
        self.last_write = self.last_message;
    }

    /// Waits for the next tick.
    pub(crate) async fn tick(&mut self) -> Due {
        self.tick.as_mut().tick().await;
        if self.last_message.elapsed() >= self.idle_timeout {
            Due::Idle
        } else if self.keepalive && self.last_write.elapsed() >= self.tick.period() / 2 {
            self.last_write = Instant::now();
            Due::KeepAlive
        } else {
            Due::Nothing
        }
    }
}

/// One SSE connection's writer.
struct Stream {
    reg: Registration,
    rx: tokio::sync::mpsc::Receiver<Arc<Frame>>,
    first: Option<Bytes>,
    quiet: Quiet,
    opened: Instant,
    sent: u64,
    /// The reconnect hint was written (at shutdown).
    hinted: bool,
}

impl Stream {
    fn new(
        reg: Registration,
        rx: tokio::sync::mpsc::Receiver<Arc<Frame>>,
        first: Bytes,
        settings: &pier_config::RealtimeConfig,
    ) -> Stream {
        Stream {
            reg,
            rx,
            first: Some(first),
            quiet: Quiet::new(settings),
            opened: Instant::now(),
            sent: 0,
            hinted: false,
        }
    }

    async fn next(mut self) -> Option<(Result<Bytes, std::convert::Infallible>, Stream)> {
        if let Some(b) = self.first.take() {
            return Some((Ok(b), self));
        }
        enum Woke {
            Closed,
            Frame(Option<Arc<Frame>>),
            Tick(Due),
        }
        let out = loop {
            let woke = tokio::select! {
                biased;
                () = self.reg.client.closed.cancelled() => Woke::Closed,
                f = self.rx.recv() => Woke::Frame(f),
                due = self.quiet.tick() => Woke::Tick(due),
            };
            match woke {
                Woke::Closed if !self.hinted && self.reg.broker.shutdown.is_cancelled() => {
                    // Shutting down: reconnect soon (to another backend, behind a gateway).
                    self.hinted = true;
                    break Some(Bytes::from_static(b"retry:500\n\n"));
                }
                Woke::Closed | Woke::Frame(None) | Woke::Tick(Due::Idle) => break None,
                Woke::Frame(Some(f)) => {
                    self.quiet.message();
                    self.sent += 1;
                    break Some(f.sse());
                }
                Woke::Tick(Due::KeepAlive) => break Some(Bytes::from_static(b":\n\n")),
                Woke::Tick(Due::Nothing) => {}
            }
        };
        match out {
            Some(b) => Some((Ok(b), self)),
            None => {
                tracing::info!(
                    client = %self.reg.client.id,
                    messages = self.sent,
                    seconds = self.opened.elapsed().as_secs(),
                    "realtime stream closed"
                );
                None
            }
        }
    }
}

/// `POST /api/realtime`: sets a client's topics and binds the request's auth to it.
async fn subscribe(
    State(state): State<AppState>,
    Caller(auth): Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let broker = state.realtime();
    let form = Form::parse(&body, &broker.settings)?;
    let client = broker
        .client(&form.client_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Missing or invalid client id."))?;
    let engine = state.engine().await?;
    bind_auth(&engine, &client, auth).await?;
    let resume = form
        .last_event_id
        .or_else(|| client.state().resume_after.take());
    set_topics(broker, &engine, &client, form.topics(), resume);
    Ok(StatusCode::NO_CONTENT)
}

/// Binds a request's caller to a client, as PocketBase allows: a guest may become a user (or
/// stay who it is), never another user.
pub(crate) async fn bind_auth(
    engine: &pier_records::Engine,
    client: &broker::Client,
    auth: pier_records::Auth,
) -> Result<(), ApiError> {
    let bound = client.state().auth.auth.clone();
    if bound != pier_records::Auth::Guest && bound != auth {
        return Err(ApiError::forbidden(
            "The current and the previous request authorization don't match.",
        ));
    }
    let auth = Arc::new(dispatch::client_auth(engine, auth).await);
    client.state().auth = auth;
    Ok(())
}

/// Replaces a client's topics; with `resume`, first replays what it missed after that number.
pub(crate) fn set_topics(
    broker: &Arc<Broker>,
    engine: &Arc<pier_records::Engine>,
    client: &Arc<broker::Client>,
    topics: Vec<Arc<topic::Topic>>,
    resume: Option<u64>,
) {
    let plan = {
        let _guard = dispatch::lock(&broker.dispatch);
        client.state().topics = topics;
        resume.map(|after| dispatch::begin_replay(broker, client, after))
    };
    if let Some((from, until)) = plan {
        tokio::spawn(dispatch::replay(
            broker.clone(),
            engine.clone(),
            client.clone(),
            from,
            until,
        ));
    }
}

fn bad_form() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "Something went wrong while processing your request.",
    )
}

/// The subscribe body, checked as PocketBase checks it.
struct Form {
    client_id: String,
    subscriptions: Vec<String>,
    last_event_id: Option<u64>,
}

impl Form {
    /// The subscriptions, parsed (empty ones dropped, as PocketBase does).
    fn topics(&self) -> Vec<Arc<topic::Topic>> {
        self.subscriptions
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| Arc::new(topic::Topic::parse(s)))
            .collect()
    }

    fn parse(body: &[u8], settings: &pier_config::RealtimeConfig) -> Result<Form, ApiError> {
        let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(body).map_err(|_| bad_form())?
        };
        let Value::Object(o) = v else {
            return Err(bad_form());
        };
        Form::from_object(&o, settings)
    }

    /// The form from a JSON object (the `POST` body, or a WebSocket message).
    fn from_object(
        o: &serde_json::Map<String, Value>,
        settings: &pier_config::RealtimeConfig,
    ) -> Result<Form, ApiError> {
        let bad = bad_form;
        let client_id = match o.get("clientId") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad()),
        };
        let subscriptions: Vec<String> = match o.get("subscriptions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(bad)?,
            Some(_) => return Err(bad()),
        };
        let last_event_id = match o.get("lastEventId") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let mut err = bad();
        let mut invalid = false;
        if client_id.is_empty() {
            invalid = true;
            err = err.with_data(
                "clientId",
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            );
        } else if client_id.chars().count() > 255 {
            invalid = true;
            err = err.with_data(
                "clientId",
                json!({"code": "validation_length_out_of_range", "message": "The length must be between 1 and 255.", "params": {"max": 255, "min": 1}}),
            );
        }
        let (most, longest) = (settings.max_subscriptions, settings.max_topic_length);
        if subscriptions.len() > most {
            invalid = true;
            err = err.with_data(
                "subscriptions",
                json!({"code": "validation_length_too_long", "message": format!("The length must be no more than {most}."), "params": {"max": most, "min": 0}}),
            );
        } else if let Some(i) = subscriptions
            .iter()
            .position(|s| s.chars().count() > longest)
        {
            invalid = true;
            err = err.with_data(
                "subscriptions",
                json!({i.to_string(): {"code": "validation_length_too_long", "message": format!("The length must be no more than {longest}."), "params": {"max": longest, "min": 0}}}),
            );
        }
        if invalid {
            return Err(err);
        }
        Ok(Form {
            client_id,
            subscriptions,
            last_event_id,
        })
    }
}
