//! pier's gateway: the front door of `pier serve` and `pier gateway`.
//!
//! One routing table, compiled from the configuration and swapped whole on reload, sends each
//! request to the frontend (held in memory, with precompressed variants, ETags and ranges), the
//! backend (a service in this process, or a pool of `pier backend` processes), a user route's
//! upstream pool, an outside API (its key added here), or a redirect. Pools balance by round
//! robin or least requests, check their members' `/readyz`, eject members that fail, and retry
//! requests that are safe to retry. The gateway never imports the API or storage crates: the
//! server hands it the backend as an opaque service.
#![deny(clippy::unwrap_used)]

mod acme;
mod devcert;
mod fast;
mod framing;
mod gateway;
mod h1pool;
mod limit;
mod message;
mod pool;
mod proxy;
mod respond;
mod routes;
mod serve;
mod site;
mod tls;
mod welcome;

pub use devcert::{DevCertificate, DevIssue, ensure_dev_certificate};
pub use gateway::{Backend, Gateway, GatewayError};
pub use respond::security_headers;

/// Sent by a backend on every answer while it drains (shutting down): the gateway takes it out
/// of its pool at once rather than at the next health check.
pub const DRAINING_HEADER: http::HeaderName = http::HeaderName::from_static("x-pier-draining");
pub use serve::describe;
pub use tls::TlsError;
