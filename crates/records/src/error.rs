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
    /// Too many attempts at something, with the message to give (429).
    #[error("{0}")]
    Throttled(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(StorageError),
}

impl RecordError {
    /// A validation error on one field. A dotted key (`indexes.0`) nests, as PocketBase nests
    /// errors of list items: `{"indexes": {"0": {"code": …, "message": …}}}`.
    pub(crate) fn field(message: &str, field: &str, code: &str, text: &str) -> RecordError {
        let mut error = serde_json::json!({"code": code, "message": text});
        let mut keys: Vec<&str> = field.split('.').collect();
        let first = keys.remove(0);
        for key in keys.into_iter().rev() {
            let mut m = Map::new();
            m.insert(key.to_owned(), error);
            error = Value::Object(m);
        }
        let mut fields = Map::new();
        fields.insert(first.to_owned(), error);
        RecordError::Validation {
            message: message.to_owned(),
            fields,
        }
    }

    /// Every `(dotted key, message)` of a validation error's fields, nested ones flattened.
    pub(crate) fn field_messages(fields: &Map<String, Value>) -> Vec<(String, String)> {
        fn walk(prefix: String, v: &Value, out: &mut Vec<(String, String)>) {
            match v.get("message").and_then(Value::as_str) {
                Some(m) => out.push((prefix, m.to_owned())),
                None => {
                    if let Value::Object(m) = v {
                        for (k, inner) in m {
                            walk(format!("{prefix}.{k}"), inner, out);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (k, v) in fields {
            walk(k.clone(), v, &mut out);
        }
        out
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
