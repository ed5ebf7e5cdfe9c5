//! The `[realtime]` section: how many events a subscriber may have waiting, when an idle
//! connection is closed or pinged, and the bounds on subscriptions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::load::Layers;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRealtime {
    /// Messages a client may have waiting to be written; one whose queue fills is disconnected
    /// (the SDK reconnects), so a slow reader never holds the others back or grows memory.
    pub(crate) client_buffer: u64,
    /// A connection that received no message for this long is closed, as PocketBase does
    /// (5 minutes); the SDK reconnects and subscribes again.
    pub(crate) idle_timeout_seconds: u64,
    /// A comment line is written after this many seconds without traffic, so proxies that cut
    /// idle connections keep the stream (0: never).
    pub(crate) keepalive_seconds: u64,
    /// Subscriptions one request may set (PocketBase: 1000).
    pub(crate) max_subscriptions: u64,
    /// Longest subscription topic, options included (PocketBase: 2500 characters).
    pub(crate) max_topic_length: u64,
}

impl Default for RawRealtime {
    fn default() -> Self {
        RawRealtime {
            client_buffer: 512,
            idle_timeout_seconds: 300,
            keepalive_seconds: 25,
            max_subscriptions: 1000,
            max_topic_length: 2500,
        }
    }
}

/// Realtime connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeConfig {
    /// At least 1.
    pub client_buffer: usize,
    pub idle_timeout: Duration,
    /// `None`: no keep-alive comments.
    pub keepalive: Option<Duration>,
    pub max_subscriptions: usize,
    pub max_topic_length: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        // The defaults are valid by construction.
        from_raw(&RawRealtime::default())
    }
}

fn from_raw(r: &RawRealtime) -> RealtimeConfig {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    RealtimeConfig {
        client_buffer: size(r.client_buffer).max(1),
        idle_timeout: Duration::from_secs(r.idle_timeout_seconds),
        keepalive: (r.keepalive_seconds > 0).then(|| Duration::from_secs(r.keepalive_seconds)),
        max_subscriptions: size(r.max_subscriptions),
        max_topic_length: size(r.max_topic_length),
    }
}

pub(crate) fn validate(r: &RawRealtime, layers: &Layers) -> Result<RealtimeConfig, ConfigError> {
    for (key, n) in [
        ("realtime.client_buffer", r.client_buffer),
        ("realtime.idle_timeout_seconds", r.idle_timeout_seconds),
        ("realtime.max_subscriptions", r.max_subscriptions),
        ("realtime.max_topic_length", r.max_topic_length),
    ] {
        if n == 0 {
            return Err(ConfigError::Invalid {
                key: key.to_owned(),
                origin: layers.origin(key),
                message: "expected a number from 1 up, got 0".into(),
            });
        }
    }
    Ok(from_raw(r))
}
