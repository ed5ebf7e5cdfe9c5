//! The `[outbound]` section: the requests pier itself makes to other servers (OpenID Connect
//! discovery, OAuth2 token and user-info calls, avatar downloads). Every one goes through one
//! client with a timeout and a size limit, and never to a loopback, private, link-local or
//! metadata address unless its host is named in `allow` (an identity provider on the same
//! network, a test provider on 127.0.0.1).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::load::Layers;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOutbound {
    /// Hosts (names or addresses, as written in URLs) that may be reached even though they are
    /// or resolve to internal addresses.
    pub(crate) allow: Vec<String>,
    /// Whole-request limit, redirects included.
    pub(crate) timeout_seconds: u64,
    /// Largest response body read; a larger one is refused.
    pub(crate) max_bytes: u64,
}

impl Default for RawOutbound {
    fn default() -> Self {
        RawOutbound {
            allow: Vec::new(),
            timeout_seconds: 10,
            max_bytes: 5 * 1024 * 1024,
        }
    }
}

/// The limits of pier's own outgoing requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    pub allow: Vec<String>,
    pub timeout: Duration,
    pub max_bytes: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        let r = RawOutbound::default();
        OutboundConfig {
            allow: r.allow,
            timeout: Duration::from_secs(r.timeout_seconds),
            max_bytes: r.max_bytes,
        }
    }
}

pub(crate) fn validate(r: &RawOutbound, layers: &Layers) -> Result<OutboundConfig, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: layers.origin(key),
        message,
    };
    if r.timeout_seconds == 0 || r.timeout_seconds > 300 {
        return Err(invalid(
            "outbound.timeout_seconds",
            format!("expected 1 to 300 seconds, got {}", r.timeout_seconds),
        ));
    }
    if r.max_bytes == 0 {
        return Err(invalid(
            "outbound.max_bytes",
            "expected a size above 0".into(),
        ));
    }
    let allow: Vec<String> = r
        .allow
        .iter()
        .map(|h| {
            h.trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        })
        .filter(|h| !h.is_empty())
        .collect();
    if let Some(bad) = allow.iter().find(|h| h.contains(['/', ' ', '@'])) {
        return Err(invalid(
            "outbound.allow",
            format!("expected host names or addresses, got {bad:?}"),
        ));
    }
    Ok(OutboundConfig {
        allow,
        timeout: Duration::from_secs(r.timeout_seconds),
        max_bytes: r.max_bytes,
    })
}
