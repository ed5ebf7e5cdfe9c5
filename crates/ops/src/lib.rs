//! Operations: the metric registry and its names, process metrics, the readiness state, and
//! backups ([`backup`]).
//!
//! Metric names live in [`metrics::names`] and nowhere else. Label values are bounded: routes
//! are matched route templates, never raw paths.
#![deny(clippy::unwrap_used)]

pub mod access_log;
pub mod backup;
pub mod metrics;
mod process;
mod readiness;
pub mod request_id;

pub use metrics::{Collector, Exposition, Metrics, RequestTimer};
pub use process::ProcessStats;
pub use readiness::{Readiness, ReadinessReport};
