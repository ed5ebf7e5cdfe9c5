//! `manifest.json`, the last member of every archive: what the archive holds and how to check it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format this build writes and reads.
pub(super) const FORMAT: u32 = 1;

/// The member name of the manifest.
pub(super) const MANIFEST_MEMBER: &str = "manifest.json";

/// One member of the archive with its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The member path inside the archive (`database/…`, `storage/…`, `public/…`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the contents.
    pub sha256: String,
}

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`FORMAT`]).
    pub format: u32,
    /// The pier version that wrote the archive.
    pub pier_version: String,
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// Highest applied migration of the database when it was copied.
    pub schema_version: i64,
    /// When the snapshot was taken, `YYYY-MM-DD HH:MM:SS.sssZ` (UTC).
    pub created: String,
    /// The same instant in Unix milliseconds.
    pub created_unix_ms: i64,
    /// The member holding the database (a SQLite file or a `pg_dump` custom-format dump).
    pub database: String,
    /// Whether the static folder (`public/`) was included; a restore replaces it only then.
    pub includes_public: bool,
    /// Rows in every table when the snapshot was taken (one table per collection, plus pier's
    /// own tables).
    pub tables: BTreeMap<String, u64>,
    /// Sum of the members' sizes.
    pub total_bytes: u64,
    /// Every member except the manifest.
    pub files: Vec<ManifestFile>,
}

/// Archive member folders.
pub(super) const DATABASE_DIR: &str = "database";
/// Uploaded files.
pub(super) const STORAGE_DIR: &str = "storage";
/// The static folder.
pub(super) const PUBLIC_DIR: &str = "public";

/// The database member name for an engine.
pub(super) fn database_member(engine: pier_storage::Dialect) -> String {
    match engine {
        pier_storage::Dialect::Sqlite => format!("{DATABASE_DIR}/data.db"),
        pier_storage::Dialect::Postgres => format!("{DATABASE_DIR}/pier.dump"),
    }
}
