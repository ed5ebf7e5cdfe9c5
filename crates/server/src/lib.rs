//! The composition root: [`Application::build`] turns a [`pier_config::Config`] into a bound,
//! ready-to-run server; [`Application::run_until_stopped`] serves until the shutdown future
//! resolves, then drains in-flight requests within the configured deadline and closes the
//! database.
#![deny(clippy::unwrap_used)]

mod app;
mod middleware;
pub mod systemd;

pub use app::{Application, StartError};
pub use pier_gateway::{DevIssue, Gateway, GatewayError, TlsError, ensure_dev_certificate};

use pier_storage::Migration;

/// Every schema migration this build of pier knows, in order.
pub const MIGRATIONS: &[Migration] = pier_records::MIGRATIONS;
