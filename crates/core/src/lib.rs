//! Domain types shared by every pier crate. No I/O happens here.
//!
//! The most important item is [`ErrorKind`]: the small, closed set of error classes that library
//! crates report and that only the HTTP layer turns into status codes.
#![deny(clippy::unwrap_used)]

pub mod range;
pub mod time;

use std::fmt;

/// The class of a failure, independent of the layer that produced it.
///
/// Storage and the records engine report one of these through `kind()`; only `pier-api` maps a
/// kind to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// The write conflicts with existing data (a unique key, a concurrent change).
    Conflict,
    /// The write breaks a constraint (a foreign key, a check, a type).
    Constraint,
    /// The input was rejected before any work was done.
    Invalid,
    /// A dependency (the database, a disk) is not reachable right now; retrying may succeed.
    Unavailable,
    /// A bug or an unexpected state; never shown to clients in detail.
    Internal,
}

impl ErrorKind {
    /// Returns a short, stable, lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Constraint => "constraint",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The version of pier, as compiled.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_stable_and_distinct() {
        let all = [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Constraint,
            ErrorKind::Invalid,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ];
        let mut names: Vec<_> = all.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!(ErrorKind::NotFound.to_string(), "not_found");
    }
}
