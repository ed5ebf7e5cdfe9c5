//! Integration tests of pier-filter: compiled SQL run against real SQLite, and property tests.
#![allow(clippy::unwrap_used)] // Tests unwrap: a failure is a panic with its message.

mod helpers;
mod properties;
mod sqlite;
