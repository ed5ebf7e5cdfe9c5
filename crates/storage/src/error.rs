use std::path::PathBuf;

use pier_core::ErrorKind;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything the storage layer can fail with. [`StorageError::kind`] classifies it; only the API
/// layer turns a kind into an HTTP status. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The SQLite file could not be opened or set up.
    #[error("failed to open database `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    /// Another process holds the database.
    #[error("database `{}` is in use by another pier process{}", path.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, pid: Option<u32> },
    /// The database server cannot be reached, or the engine is shutting down.
    #[error("database unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A statement failed.
    #[error("query failed: {message}")]
    Query {
        kind: ErrorKind,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The database was migrated by a newer pier.
    #[error(
        "database schema version {database} is newer than this pier knows ({binary}); \
         upgrade pier or restore a backup made by this version"
    )]
    SchemaTooNew { database: i64, binary: i64 },
    /// A migration failed; nothing of it was applied.
    #[error("migration {version} `{name}` failed")]
    Migration {
        version: i64,
        name: String,
        #[source]
        source: Box<StorageError>,
    },
    /// A snapshot, integrity check or restore failed (a file, a client tool, a check).
    #[error("{message}")]
    Snapshot {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A caller-defined failure inside a transaction closure; the transaction rolls back.
    #[error("{message}")]
    Aborted { kind: ErrorKind, message: String },
}

impl StorageError {
    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Open { .. } | StorageError::Unavailable { .. } => ErrorKind::Unavailable,
            StorageError::Locked { .. } => ErrorKind::Conflict,
            StorageError::Query { kind, .. } | StorageError::Aborted { kind, .. } => *kind,
            StorageError::SchemaTooNew { .. } | StorageError::Snapshot { .. } => {
                ErrorKind::Internal
            }
            StorageError::Migration { source, .. } => source.kind(),
        }
    }

    /// A failure decided by the caller inside a transaction closure.
    pub fn aborted(kind: ErrorKind, message: impl Into<String>) -> StorageError {
        StorageError::Aborted {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn closed() -> StorageError {
        StorageError::Unavailable {
            message: "the database is shutting down".into(),
            source: None,
        }
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> StorageError {
        use rusqlite::ffi::ErrorCode;
        let kind = match e.sqlite_error() {
            Some(err) => match err.code {
                ErrorCode::ConstraintViolation => match err.extended_code {
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::Conflict,
                    _ => ErrorKind::Constraint,
                },
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Unavailable,
                ErrorCode::DiskFull | ErrorCode::CannotOpen | ErrorCode::SystemIoFailure => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Internal,
            },
            None => match e {
                rusqlite::Error::QueryReturnedNoRows => ErrorKind::NotFound,
                rusqlite::Error::InvalidParameterCount(..)
                | rusqlite::Error::InvalidParameterName(_)
                | rusqlite::Error::InvalidColumnType(..) => ErrorKind::Internal,
                _ => ErrorKind::Internal,
            },
        };
        StorageError::Query {
            kind,
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> StorageError {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            let kind = match code {
                "23505" => ErrorKind::Conflict,
                c if c.starts_with("23") => ErrorKind::Constraint,
                "40001" | "40P01" => ErrorKind::Conflict,
                c if c.starts_with("08") || c.starts_with("57") || c.starts_with("53") => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Internal,
            };
            let message = format!("{} ({code})", db.message());
            return StorageError::Query {
                kind,
                message,
                source: Some(Box::new(e)),
            };
        }
        if e.is_closed() || e.to_string().contains("connect") {
            return StorageError::Unavailable {
                message: e.to_string(),
                source: Some(Box::new(e)),
            };
        }
        StorageError::Query {
            kind: ErrorKind::Internal,
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(e: deadpool_postgres::PoolError) -> StorageError {
        match e {
            deadpool_postgres::PoolError::Backend(pg) => {
                let mut err = StorageError::from(pg);
                if let StorageError::Query { kind, .. } = &mut err
                    && *kind == ErrorKind::Internal
                {
                    *kind = ErrorKind::Unavailable;
                }
                err
            }
            other => StorageError::Unavailable {
                message: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}
