use std::path::PathBuf;

use crate::Source;

/// Everything that can be wrong with a configuration. Each message names the key (or file, or
/// variable), where the value came from, and what was expected; none carries a secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("failed to read config file `{}`", path.display())]
    FileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("config file `{}` is not valid TOML: {message}", path.display())]
    FileParse { path: PathBuf, message: String },
    /// A key that pier does not know.
    #[error("unknown setting `{key}` (from {origin})")]
    UnknownKey { key: String, origin: Source },
    /// A value of the wrong type or out of range.
    #[error("invalid value for `{key}` (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: Source,
        message: String,
    },
    /// A `*_FILE` variable names a file that cannot be read.
    #[error("failed to read `{}` named by {origin}", path.display())]
    SecretFile {
        path: PathBuf,
        origin: Source,
        #[source]
        io: std::io::Error,
    },
    /// Two settings that exclude each other.
    #[error("{message}")]
    Conflict { message: String },
    /// A folder that is missing, not a folder, or not writable.
    #[error("folder `{}` for `{key}` (from {origin}) {problem}", path.display())]
    Folder {
        key: String,
        origin: Source,
        path: PathBuf,
        problem: String,
    },
}
