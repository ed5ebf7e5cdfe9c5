//! pier's integration tests: the HTTP API through the real application (`api`, `ops`), and the
//! built binary through its command line (`cli`, `process`).
#![allow(clippy::unwrap_used)] // Tests unwrap: a failure is a panic with its message.

mod api;
mod api_keys;
mod backup;
mod backup_api;
mod cli;
mod collection_options;
mod crash;
mod deploy;
mod draining;
mod events;
mod events_across_backends;
mod files;
mod files_resumable;
mod first_page;
mod hardening;
mod helpers;
mod http_rules;
mod mail;
mod process;
mod realtime;
mod realtime_topology;
mod realtime_ws;
mod records;
mod records_auth;
mod records_collections;
mod records_queries;
mod schema_changes;
mod settings;
