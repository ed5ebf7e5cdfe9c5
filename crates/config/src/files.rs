//! The `[files]` section: where uploaded files are kept (the local `paths.storage_dir`, or an
//! S3-compatible bucket), how large an upload may be, and what thumbnails may cost.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::load::Layers;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawFiles {
    /// Largest multipart body accepted by the record create and update routes (the files and
    /// the other fields together); each file is also held to its field's `maxSize`.
    /// `http.body_limit_bytes` stays the limit of every other body.
    pub(crate) upload_limit_bytes: u64,
    /// Images with more pixels than this get no thumbnail (the original is served).
    pub(crate) thumb_max_pixels: u64,
    /// Thumbnails made at the same time (0: the number of CPUs).
    pub(crate) thumb_workers: u64,
    pub(crate) s3: RawS3,
}

impl Default for RawFiles {
    fn default() -> Self {
        RawFiles {
            upload_limit_bytes: 1 << 33,
            thumb_max_pixels: 100_000_000,
            thumb_workers: 0,
            s3: RawS3::default(),
        }
    }
}

/// S3-compatible storage, PocketBase's `settings.s3` shape.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawS3 {
    pub(crate) enabled: bool,
    pub(crate) bucket: String,
    pub(crate) region: String,
    /// `https://…` or `http://…`; empty: AWS.
    pub(crate) endpoint: String,
    pub(crate) access_key: String,
    /// A secret: never printed; `files.s3.secret_file` (or `PIER_FILES__S3__SECRET_FILE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<String>,
    /// `bucket` in the path rather than the host name (MinIO, Garage and most self-hosted).
    pub(crate) force_path_style: bool,
}

/// Where uploaded files go.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    pub upload_limit: u64,
    pub thumb_max_pixels: u64,
    /// At least 1.
    pub thumb_workers: usize,
    /// `None`: the local `paths.storage_dir`.
    pub s3: Option<S3Config>,
}

impl Default for FilesConfig {
    fn default() -> Self {
        let raw = RawFiles::default();
        FilesConfig {
            upload_limit: raw.upload_limit_bytes,
            thumb_max_pixels: raw.thumb_max_pixels,
            thumb_workers: default_workers(),
            s3: None,
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// An S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub access_key: String,
    pub secret: SecretString,
    pub force_path_style: bool,
}

pub(crate) fn validate(f: &RawFiles, layers: &Layers) -> Result<FilesConfig, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: layers.origin(key),
        message,
    };
    if f.upload_limit_bytes == 0 {
        return Err(invalid(
            "files.upload_limit_bytes",
            "expected a value greater than 0".into(),
        ));
    }
    let s3 = &f.s3;
    let s3 = if s3.enabled {
        if s3.bucket.trim().is_empty() {
            return Err(invalid(
                "files.s3.bucket",
                "S3 storage is enabled but names no bucket".into(),
            ));
        }
        if !s3.endpoint.is_empty()
            && !s3.endpoint.starts_with("http://")
            && !s3.endpoint.starts_with("https://")
        {
            return Err(invalid(
                "files.s3.endpoint",
                format!("expected an http:// or https:// URL, got `{}`", s3.endpoint),
            ));
        }
        let secret = s3.secret.clone().unwrap_or_default();
        if s3.access_key.is_empty() || secret.is_empty() {
            return Err(invalid(
                if s3.access_key.is_empty() {
                    "files.s3.access_key"
                } else {
                    "files.s3.secret"
                },
                "S3 storage is enabled but its access key or secret is empty".into(),
            ));
        }
        Some(S3Config {
            bucket: s3.bucket.trim().to_owned(),
            region: s3.region.trim().to_owned(),
            endpoint: s3.endpoint.trim_end_matches('/').to_owned(),
            access_key: s3.access_key.clone(),
            secret: SecretString::from(secret),
            force_path_style: s3.force_path_style,
        })
    } else {
        None
    };
    Ok(FilesConfig {
        upload_limit: f.upload_limit_bytes,
        thumb_max_pixels: f.thumb_max_pixels.max(1),
        thumb_workers: match f.thumb_workers {
            0 => default_workers(),
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
        s3,
    })
}
