//! The realtime clients of this process: each with its subscriptions, its auth, and a bounded
//! queue of frames its connection writes. Frames are rendered once and shared (`Arc`) by every
//! client that receives them; a client whose queue is full is cut off, never waited for.
//!
//! Resuming (`Last-Event-ID`, or a number given when subscribing) replays missed events into
//! the queue while live frames for that client are held back, then releases them, so the
//! client sees every event once, in order (see `dispatch::replay`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use pier_config::RealtimeConfig;
use pier_records::Auth;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::topic::Topic;

/// One message to a client, rendered for SSE and for the WebSocket on first use.
pub(crate) struct Frame {
    /// The event's sequence number (0 for connection messages).
    pub(crate) seq: u64,
    /// SSE `id:` (the sequence number; the client id for `PB_CONNECT`).
    id: Box<str>,
    /// SSE `event:` (the topic) and the WebSocket message's `topic`.
    pub(crate) name: Arc<str>,
    /// The JSON payload.
    pub(crate) data: Bytes,
    sse: std::sync::OnceLock<Bytes>,
    ws: std::sync::OnceLock<Bytes>,
}

impl Frame {
    pub(crate) fn new(seq: u64, id: &str, name: Arc<str>, data: Bytes) -> Arc<Frame> {
        Arc::new(Frame {
            seq,
            id: id.into(),
            name,
            data,
            sse: std::sync::OnceLock::new(),
            ws: std::sync::OnceLock::new(),
        })
    }

    /// `id:…\nevent:…\ndata:…\n\n`, as PocketBase writes it.
    pub(crate) fn sse(&self) -> Bytes {
        self.sse
            .get_or_init(|| {
                let mut b = Vec::with_capacity(self.data.len() + self.name.len() + 32);
                b.extend_from_slice(b"id:");
                b.extend_from_slice(self.id.as_bytes());
                b.extend_from_slice(b"\nevent:");
                b.extend_from_slice(self.name.as_bytes());
                b.extend_from_slice(b"\ndata:");
                b.extend_from_slice(&self.data);
                b.extend_from_slice(b"\n\n");
                Bytes::from(b)
            })
            .clone()
    }

    /// `{"type":"event","id":…,"topic":…,"data":…}` (or the connection message's own type).
    pub(crate) fn ws(&self) -> Bytes {
        self.ws
            .get_or_init(|| {
                let kind = match &*self.name {
                    "PB_CONNECT" => "connect",
                    "PB_RESET" => "reset",
                    _ => "event",
                };
                let topic = Value::String(self.name.to_string());
                let id = Value::String(self.id.to_string());
                let mut b =
                    format!(r#"{{"type":"{kind}","id":{id},"topic":{topic},"data":"#).into_bytes();
                b.extend_from_slice(&self.data);
                b.push(b'}');
                Bytes::from(b)
            })
            .clone()
    }
}

/// Who a client is, for rules: bound by its subscribe requests.
#[derive(Clone, Default)]
pub(crate) struct ClientAuth {
    pub(crate) auth: Auth,
    /// The auth record as its owner sees it (`@request.auth.*`).
    pub(crate) record: Option<Map<String, Value>>,
    /// Equal for clients that rules see as the same caller (made once: every event groups by
    /// it).
    pub(crate) key: Arc<str>,
}

impl ClientAuth {
    pub(crate) fn new(auth: Auth, record: Option<Map<String, Value>>) -> ClientAuth {
        let key = match &auth {
            Auth::Guest => Arc::from(""),
            Auth::Superuser { id } => Arc::from(format!("{}/{id}", pier_records::SUPERUSERS_ID)),
            Auth::Record { collection_id, id } => Arc::from(format!("{collection_id}/{id}")),
        };
        ClientAuth { auth, record, key }
    }

    pub(crate) fn is(&self, collection_id: &str, id: &str) -> bool {
        match &self.auth {
            Auth::Guest => false,
            Auth::Superuser { id: me } => collection_id == pier_records::SUPERUSERS_ID && me == id,
            Auth::Record {
                collection_id: c,
                id: me,
            } => c == collection_id && me == id,
        }
    }
}

pub(crate) struct ClientState {
    pub(crate) topics: Vec<Arc<Topic>>,
    pub(crate) auth: Arc<ClientAuth>,
    /// Resume after this number at the next subscribe (from `Last-Event-ID`).
    pub(crate) resume_after: Option<u64>,
    /// While a replay runs: live frames waiting for it to finish.
    pub(crate) held: Option<VecDeque<Arc<Frame>>>,
    /// The number of the last event queued for this client.
    pub(crate) last_queued: u64,
}

/// One connected client (SSE stream or WebSocket).
pub(crate) struct Client {
    pub(crate) id: String,
    tx: mpsc::Sender<Arc<Frame>>,
    state: Mutex<ClientState>,
    /// Cancelled to end the connection (a full queue, or shutdown).
    pub(crate) closed: CancellationToken,
}

impl Client {
    pub(crate) fn state(&self) -> MutexGuard<'_, ClientState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Waits for room in the queue (replays only; live frames never wait).
    pub(crate) async fn send(&self, frame: Arc<Frame>) -> bool {
        self.tx.send(frame).await.is_ok()
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) slow_disconnects: AtomicU64,
    pub(crate) resumes: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) connections_total: AtomicU64,
}

/// Every client of this process.
pub struct Broker {
    clients: RwLock<HashMap<String, Arc<Client>>>,
    pub(crate) settings: RealtimeConfig,
    pub(crate) counters: Counters,
    /// Held while live frames are queued and while a replay takes its starting point, so that
    /// the two agree on which events the live path has already handled.
    pub(crate) dispatch: Mutex<()>,
    /// The number of the last event the live path has handled.
    pub(crate) dispatched: AtomicU64,
    /// Set when the dispatcher starts.
    pub(crate) engine: std::sync::OnceLock<Arc<pier_records::Engine>>,
    /// Cancelled at shutdown: every stream ends, so clients reconnect elsewhere.
    pub(crate) shutdown: CancellationToken,
}

/// Removes its client from the broker when the connection ends.
pub(crate) struct Registration {
    pub(crate) broker: Arc<Broker>,
    pub(crate) client: Arc<Client>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.broker.remove(&self.client.id);
    }
}

impl Broker {
    pub(crate) fn new(settings: RealtimeConfig) -> Broker {
        Broker {
            clients: RwLock::new(HashMap::new()),
            settings,
            counters: Counters::default(),
            dispatch: Mutex::new(()),
            dispatched: AtomicU64::new(0),
            engine: std::sync::OnceLock::new(),
            shutdown: CancellationToken::new(),
        }
    }

    /// A new client, registered until the returned guard is dropped.
    pub(crate) fn connect(
        self: &Arc<Self>,
        resume_after: Option<u64>,
    ) -> (Registration, mpsc::Receiver<Arc<Frame>>) {
        let (tx, rx) = mpsc::channel(self.settings.client_buffer);
        let client = Arc::new(Client {
            id: pier_files::random(40),
            tx,
            state: Mutex::new(ClientState {
                topics: Vec::new(),
                auth: Arc::default(),
                resume_after,
                held: None,
                last_queued: 0,
            }),
            closed: self.shutdown.child_token(),
        });
        self.write().insert(client.id.clone(), client.clone());
        self.counters
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        (
            Registration {
                broker: self.clone(),
                client,
            },
            rx,
        )
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Client>>> {
        match self.clients.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(crate) fn client(&self, id: &str) -> Option<Arc<Client>> {
        match self.clients.read() {
            Ok(g) => g.get(id).cloned(),
            Err(p) => p.into_inner().get(id).cloned(),
        }
    }

    /// Every client, at this moment.
    pub(crate) fn clients(&self) -> Vec<Arc<Client>> {
        match self.clients.read() {
            Ok(g) => g.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        if let Some(c) = self.write().remove(id) {
            c.closed.cancel();
        }
    }

    /// Queues a live frame (the caller holds `dispatch`): held back while the client replays,
    /// and the client cut off when its queue is full.
    pub(crate) fn push(&self, client: &Arc<Client>, frame: &Arc<Frame>) {
        let mut st = client.state();
        if !st.topics.iter().any(|t| t.raw == frame.name) {
            return; // Unsubscribed since the frame was made.
        }
        if let Some(held) = &mut st.held {
            if held.len() >= self.settings.client_buffer {
                drop(st);
                self.cut_off(client);
                return;
            }
            held.push_back(frame.clone());
            st.last_queued = frame.seq;
            return;
        }
        if self.offer(client, frame) {
            st.last_queued = frame.seq;
        }
    }

    /// Queues `frame` if the client has room; a full queue cuts it off, a closed one removes
    /// it. Never waits.
    pub(crate) fn offer(&self, client: &Client, frame: &Arc<Frame>) -> bool {
        match client.tx.try_send(frame.clone()) {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.cut_off(client);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.remove(&client.id);
                false
            }
        }
    }

    /// A client that does not keep up: its connection ends (the SDK reconnects).
    fn cut_off(&self, client: &Client) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        self.counters
            .slow_disconnects
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(client = %client.id, "realtime client too slow; disconnected");
        self.remove(&client.id);
    }

    /// Open connections and their subscriptions (counted when asked: a scrape is rare).
    pub(crate) fn sizes(&self) -> (usize, usize) {
        let clients = self.clients();
        let topics = clients.iter().map(|c| c.state().topics.len()).sum();
        (clients.len(), topics)
    }

    /// Ends every stream (shutdown): clients reconnect to another backend.
    pub fn close_all(&self) {
        self.shutdown.cancel();
    }
}
