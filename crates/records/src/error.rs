use pier_core::ErrorKind;
use pier_storage::StorageError;
use serde_json::{Map, Value};

/// What a records operation can fail with. The API maps each variant to PocketBase's status and
/// message explicitly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The collection or record does not exist, or a rule hides it.
    #[error("not found")]
    NotFound,
    /// The caller may not do this (e.g. a `null` rule for a non-superuser).
    #[error("{0}")]
    Forbidden(String),
    /// A token is missing where one is required, or is invalid.
    #[error("{0}")]
    Unauthorized(String),
    /// The input failed validation; `fields` maps field names to `{code, message}`.
    #[error("{message}")]
    Validation {
        message: String,
        fields: Map<String, Value>,
    },
    /// A malformed request that is not about one field.
    #[error("{0}")]
    BadRequest(String),
    /// Too many failed attempts; retry after the given number of seconds.
    #[error("too many attempts")]
    TooManyAttempts { retry_after_seconds: u64 },
    /// Storage failed.
    #[error(transparent)]
    Storage(StorageError),
}

impl RecordError {
    pub(crate) fn field(message: &str, field: &str, code: &str, text: &str) -> RecordError {
        let mut fields = Map::new();
        fields.insert(
            field.to_owned(),
            serde_json::json!({"code": code, "message": text}),
        );
        RecordError::Validation {
            message: message.to_owned(),
            fields,
        }
    }
}

impl From<StorageError> for RecordError {
    fn from(e: StorageError) -> RecordError {
        match e.kind() {
            ErrorKind::NotFound => RecordError::NotFound,
            _ => RecordError::Storage(e),
        }
    }
}
