//! pier's BaaS core, without HTTP: collections and their fields, records with PocketBase's
//! validation and JSON shapes, API rules, authentication (passwords and tokens), and record
//! events after commit.
//!
//! The [`Engine`] owns a cache of collection definitions (the `_collections` table is the source
//! of truth) and runs every operation through `pier-storage`, so it works the same on SQLite
//! and PostgreSQL.
//!
//! # Layout
//! - `engine`: the [`Engine`] itself: construction, the store, the collection cache.
//! - `collections/`: the system collections, create / update (the schema diff) / delete /
//!   truncate / list, import, view collections, and what a definition may carry.
//! - `records/`: list and view (`read`), create / update / delete (`write`), API rules
//!   (`access`), `expand`, and field projection with `:excerpt` (`fields`).
//! - `auth/`: passwords, tokens, password sign-in, superusers, the failed-sign-in limiter.
//! - `events/`: record events after commit ([`Events`]), in-process or through the
//!   PostgreSQL outbox.
//! - `model`, `values`, `schema`, `query`: collection and field types, values between JSON and
//!   SQL, table DDL, and the filter language's resolver for collections.
#![deny(clippy::unwrap_used)]

mod auth;
mod collections;
mod engine;
mod error;
mod events;
mod ids;
mod migrations;
mod model;
mod query;
mod records;
mod schema;
mod values;

pub use auth::{
    AppInfo, Auth, KEY_ACTIONS, KEY_PREFIX, KeyAuth, KeyScope, Letter, LetterKind, Origin, SignIn,
    TokenClaims, sample_letter,
};
pub use collections::SUPERUSERS_ID;
pub use engine::Engine;
pub use error::RecordError;
pub use events::{Action, Event, Events, FilesSink, Gone, Lagged, Subscription};
pub use migrations::MIGRATIONS;
pub use model::{Collection, CollectionType, Field};
pub use query::RequestInfo;
pub use records::{
    EventRule, ListQuery, ListResult, RemovedFile, Upload, max_file_size, project, upload_too_large,
};
pub use values::is_email;
