//! The one error type handlers return, and its single `IntoResponse`.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pier_core::ErrorKind;
use pier_ops::backup::BackupError;
use pier_records::RecordError;
use pier_storage::StorageError;
use serde_json::{Map, Value, json};

/// An error answered in PocketBase's shape: `{"data":{…},"message":"…","status":N}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    data: Map<String, Value>,
    /// The cause of a 5xx, logged once by the request middleware and never sent.
    internal: Option<String>,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

/// Attached to 5xx responses as an extension so that middleware can log the cause once.
#[derive(Debug, Clone)]
pub struct ErrorReport(pub Arc<str>);

impl ApiError {
    /// An error with a status and a client-facing message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            data: Map::new(),
            internal: None,
            retry_after: None,
        }
    }

    /// 404 with PocketBase's wording.
    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "The requested resource wasn't found.",
        )
    }

    /// 403 with PocketBase's wording.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 503, e.g. while the database is unreachable.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500 with a generic message; `cause` is logged, never sent.
    pub fn internal(cause: impl Into<String>) -> ApiError {
        ApiError {
            internal: Some(cause.into()),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong while processing your request.",
            )
        }
    }

    /// Adds a `data` entry (per-field validation errors use this).
    pub fn with_data(mut self, key: impl Into<String>, value: Value) -> ApiError {
        self.data.insert(key.into(), value);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e.kind() {
            ErrorKind::NotFound => ApiError::not_found(),
            ErrorKind::Conflict | ErrorKind::Constraint | ErrorKind::Invalid => {
                ApiError::new(StatusCode::BAD_REQUEST, "Failed to process the request.")
            }
            ErrorKind::Unavailable => ApiError {
                internal: Some(e.to_string()),
                ..ApiError::unavailable("The database is temporarily unavailable.")
            },
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> ApiError {
        match e {
            RecordError::NotFound => ApiError::not_found(),
            RecordError::Forbidden(m) => ApiError::forbidden(m),
            RecordError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            RecordError::Validation { message, fields } => ApiError {
                data: fields,
                ..ApiError::new(StatusCode::BAD_REQUEST, message)
            },
            RecordError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            RecordError::TooManyAttempts {
                retry_after_seconds,
            } => ApiError {
                retry_after: Some(retry_after_seconds),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests.")
            },
            RecordError::Throttled(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, m),
            RecordError::Storage(s) => ApiError::from(s),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> ApiError {
        match &e {
            BackupError::NotFound { .. } => ApiError::not_found(),
            BackupError::InvalidKey(_) | BackupError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            BackupError::Damaged { .. } | BackupError::Refused { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            BackupError::Busy => ApiError::new(
                StatusCode::BAD_REQUEST,
                "Try again later - another backup/restore operation has already been started.",
            ),
            _ => ApiError::internal(e.chain()),
        }
    }
}

impl ApiError {
    /// The JSON body this error answers with.
    pub fn body(&self) -> Value {
        json!({
            "data": self.data,
            "message": self.message,
            "status": self.status.as_u16(),
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        if let Some(cause) = self.internal {
            res.extensions_mut().insert(ErrorReport(cause.into()));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_never_reach_the_body() {
        let res = ApiError::internal("password=hunter2 at db.example").into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let report = res.extensions().get::<ErrorReport>().unwrap();
        assert!(report.0.contains("hunter2"));
    }

    #[test]
    fn storage_kinds_map_to_statuses() {
        let e = StorageError::aborted(ErrorKind::NotFound, "x");
        assert_eq!(ApiError::from(e).status(), StatusCode::NOT_FOUND);
        let e = StorageError::aborted(ErrorKind::Conflict, "x");
        assert_eq!(ApiError::from(e).status(), StatusCode::BAD_REQUEST);
        let e = StorageError::aborted(ErrorKind::Unavailable, "x");
        assert_eq!(ApiError::from(e).status(), StatusCode::SERVICE_UNAVAILABLE);
        let e = StorageError::aborted(ErrorKind::Internal, "x");
        assert_eq!(
            ApiError::from(e).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
