//! pier's BaaS core, without HTTP: collections and their fields, records with PocketBase's
//! validation and JSON shapes, API rules, and authentication (passwords and tokens).
//!
//! The [`Engine`] owns a cache of collection definitions (the `_collections` table is the source
//! of truth) and runs every operation through `pier-storage`, so it works the same on SQLite
//! and PostgreSQL.
#![deny(clippy::unwrap_used)]

mod auth;
mod collections;
mod engine;
mod error;
mod ids;
mod limits;
mod migrations;
mod model;
mod query;
mod schema;
mod values;

pub use auth::{Auth, TokenClaims};
pub use engine::{Engine, ListQuery, ListResult, SUPERUSERS_ID, project};
pub use error::RecordError;
pub use migrations::MIGRATIONS;
pub use model::{Collection, CollectionType, Field};
pub use query::RequestInfo;
