//! pier's uploaded files, below HTTP: where they are kept and what they are.
//!
//! - `store`: [`FileStore`], one interface over a local folder and S3-compatible object
//!   storage (through `object_store`), with streamed uploads and ranged reads;
//! - `names`: PocketBase's stored file names, and the check a requested name must pass;
//! - `sniff`: a file's type read from its content, the type it is served with, and whether a
//!   browser may show it inline;
//! - `thumbs`: PocketBase's thumbnail sizes, made once per size with bounded decoding.
//!
//! The records engine decides which files a record has; the API streams uploads into the store
//! and serves them.

#![deny(clippy::unwrap_used)]

mod names;
mod sniff;
mod store;
mod thumbs;

pub use names::{is_stored_name, random, stored_name};
pub use sniff::{
    allowed as mime_allowed, detect as detect_mime, extension_for, inline, served_type,
};
pub use store::{Backend, Download, FileStore, Meta, file_key, thumb_key};
pub use thumbs::{Mode, ThumbLimits, ThumbSpec, Thumbs, thumbable};

/// What can go wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("file not found")]
    NotFound,
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The upload's body failed (the client stopped sending, a malformed part).
    #[error("the upload failed: {0}")]
    Body(String),
    #[error("not a usable image: {0}")]
    Image(String),
    /// The store refused or failed an operation; names the operation, the key and the store,
    /// never a credential.
    #[error("{op} of `{key}` failed on the {backend}: {source}")]
    Store {
        op: &'static str,
        key: String,
        backend: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: {source}")]
    Setup {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
