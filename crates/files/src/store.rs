//! The blob store behind uploaded files: one interface over a local folder and S3-compatible
//! object storage, both through `object_store` (its S3 client signs with SigV4, retries with
//! backoff and does multipart uploads; its local store writes through a temporary file and
//! renames, so a reader never sees half a file).
//!
//! Keys are PocketBase's layout, `<collectionId>/<recordId>/<file>`, with thumbnails under
//! `<collectionId>/<recordId>/thumbs_<file>/<size>_<file>`. Uploads are streamed: at most one
//! part (`PART_SIZE`) per upload in flight plus the one being filled stays in memory, whatever
//! the file's size.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, GetOptions, GetRange, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
};
use pier_config::S3Config;
use secrecy::ExposeSecret;

use crate::FilesError;

/// The size of one part of a multipart upload (S3's minimum is 5 MiB).
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Where files live, for messages and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Local(std::path::PathBuf),
    S3 { bucket: String, endpoint: String },
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(p) => write!(f, "local folder `{}`", p.display()),
            Backend::S3 { bucket, endpoint } if endpoint.is_empty() => {
                write!(f, "S3 bucket `{bucket}`")
            }
            Backend::S3 { bucket, endpoint } => write!(f, "S3 bucket `{bucket}` at {endpoint}"),
        }
    }
}

/// What is known of a stored object.
#[derive(Debug, Clone)]
pub struct Meta {
    pub size: u64,
    pub modified: SystemTime,
    /// The store's entity tag, when it has one.
    pub e_tag: Option<String>,
}

/// A stored object being read: its metadata and the bytes asked for.
pub struct Download {
    pub meta: Meta,
    pub body: futures_util::stream::BoxStream<'static, Result<Bytes, FilesError>>,
}

/// Uploaded files, on a local folder or S3.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<dyn ObjectStore>,
    backend: Backend,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Files under the local folder `dir` (made when missing).
    ///
    /// # Errors
    /// The folder cannot be made or opened.
    pub fn local(dir: &std::path::Path) -> Result<FileStore, FilesError> {
        std::fs::create_dir_all(dir).map_err(|e| FilesError::Setup {
            what: format!("cannot make the storage folder `{}`", dir.display()),
            source: Box::new(e),
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| FilesError::Setup {
                what: format!("cannot open the storage folder `{}`", dir.display()),
                source: Box::new(e),
            })?
            .with_automatic_cleanup(true);
        Ok(FileStore {
            inner: Arc::new(fs),
            backend: Backend::Local(dir.to_path_buf()),
        })
    }

    /// Files in an S3-compatible bucket.
    ///
    /// # Errors
    /// The settings do not make a client (an endpoint that is not a URL, for example).
    pub fn s3(c: &S3Config) -> Result<FileStore, FilesError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&c.bucket)
            .with_region(if c.region.is_empty() {
                "us-east-1"
            } else {
                &c.region
            })
            .with_access_key_id(&c.access_key)
            .with_secret_access_key(c.secret.expose_secret())
            .with_virtual_hosted_style_request(!c.force_path_style)
            .with_allow_http(true)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
            });
        if !c.endpoint.is_empty() {
            b = b.with_endpoint(&c.endpoint);
        }
        let s3 = b.build().map_err(|e| FilesError::Setup {
            what: format!("cannot configure the S3 bucket `{}`", c.bucket),
            source: Box::new(e),
        })?;
        Ok(FileStore {
            inner: Arc::new(s3),
            backend: Backend::S3 {
                bucket: c.bucket.clone(),
                endpoint: c.endpoint.clone(),
            },
        })
    }

    /// Where the files are.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    fn err(&self, op: &'static str, key: &str, e: object_store::Error) -> FilesError {
        match e {
            object_store::Error::NotFound { .. } => FilesError::NotFound,
            e => FilesError::Store {
                op,
                key: key.to_owned(),
                backend: self.backend.to_string(),
                source: Box::new(e),
            },
        }
    }

    /// Streams `body` into `key`; at most `limit` bytes are taken (`Err(TooLarge)` past it,
    /// and nothing is kept). A stream that fails (a client that stops sending) keeps nothing.
    /// Returns the size stored.
    ///
    /// # Errors
    /// [`FilesError::TooLarge`], the stream's error as [`FilesError::Body`], store errors.
    pub async fn put_stream<S, E>(&self, key: &str, body: S, limit: u64) -> Result<u64, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = Key::from(key);
        let mut body = body;
        let mut size: u64 = 0;
        // Small files go in one request; a file that fills a part goes as a multipart upload.
        let mut first: Vec<Bytes> = Vec::new();
        let mut buffered = 0usize;
        let mut upload: Option<WriteMultipart> = None;
        let outcome: Result<(), FilesError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| FilesError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(FilesError::TooLarge { limit });
                }
                match upload.as_mut() {
                    Some(w) => {
                        w.wait_for_capacity(1)
                            .await
                            .map_err(|e| self.err("upload", key, e))?;
                        w.put(chunk);
                    }
                    None => {
                        buffered += chunk.len();
                        first.push(chunk);
                        if buffered >= PART_SIZE {
                            let m = self
                                .inner
                                .put_multipart(&path)
                                .await
                                .map_err(|e| self.err("upload", key, e))?;
                            let mut w = WriteMultipart::new_with_chunk_size(m, PART_SIZE);
                            for c in first.drain(..) {
                                w.put(c);
                            }
                            upload = Some(w);
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        match (outcome, upload) {
            (Err(e), Some(w)) => {
                let _ = w.abort().await;
                Err(e)
            }
            (Err(e), None) => Err(e),
            (Ok(()), Some(w)) => {
                w.finish().await.map_err(|e| self.err("upload", key, e))?;
                Ok(size)
            }
            (Ok(()), None) => {
                let payload: PutPayload = first.into_iter().collect();
                self.inner
                    .put(&path, payload)
                    .await
                    .map_err(|e| self.err("upload", key, e))?;
                Ok(size)
            }
        }
    }

    /// Stores `bytes` at `key` in one request.
    ///
    /// # Errors
    /// Store errors.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), FilesError> {
        self.inner
            .put(&Key::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.err("upload", key, e))
    }

    /// What is stored at `key`.
    ///
    /// # Errors
    /// [`FilesError::NotFound`], store errors.
    pub async fn head(&self, key: &str) -> Result<Meta, FilesError> {
        let m = self
            .inner
            .head(&Key::from(key))
            .await
            .map_err(|e| self.err("read", key, e))?;
        Ok(Meta {
            size: m.size,
            modified: m.last_modified.into(),
            // The local folder's reads carry no tag either: the same object, the same meta.
            e_tag: m
                .e_tag
                .filter(|_| !matches!(self.backend, Backend::Local(_))),
        })
    }

    /// Reads `key`, or the byte `range` of it.
    ///
    /// # Errors
    /// [`FilesError::NotFound`], store errors.
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Download, FilesError> {
        if let Backend::Local(dir) = &self.backend {
            return local_get(dir, key, range).await;
        }
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let r = self
            .inner
            .get_opts(&Key::from(key), opts)
            .await
            .map_err(|e| self.err("read", key, e))?;
        let meta = Meta {
            size: r.meta.size,
            modified: r.meta.last_modified.into(),
            e_tag: r.meta.e_tag.clone(),
        };
        let store = self.clone();
        let key = key.to_owned();
        let body = r
            .into_stream()
            .map_err(move |e| store.err("read", &key, e))
            .boxed();
        Ok(Download { meta, body })
    }

    /// Reads all of `key` into memory (thumbnail sources), refusing past `limit` bytes.
    ///
    /// # Errors
    /// [`FilesError::NotFound`], [`FilesError::TooLarge`], store errors.
    pub async fn read_all(&self, key: &str, limit: u64) -> Result<Bytes, FilesError> {
        let d = self.get(key, None).await?;
        if d.meta.size > limit {
            return Err(FilesError::TooLarge { limit });
        }
        let mut out = Vec::with_capacity(usize::try_from(d.meta.size).unwrap_or(0));
        let mut body = d.body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(out))
    }

    /// Deletes `key`; a key that is not there is not an error.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete(&self, key: &str) -> Result<(), FilesError> {
        match self.inner.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", key, e)),
        }
    }

    /// Deletes a record's file and every thumbnail made of it.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_file(
        &self,
        collection_id: &str,
        record_id: &str,
        name: &str,
    ) -> Result<(), FilesError> {
        self.delete(&file_key(collection_id, record_id, name))
            .await?;
        self.delete_prefix(&thumbs_prefix(collection_id, record_id, name))
            .await
            .map(|_| ())
    }

    /// Deletes every object under `prefix` (a record's or a collection's folder).
    ///
    /// # Errors
    /// Store errors (what was deleted before stays deleted).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, FilesError> {
        let p = Key::from(prefix);
        let keys: Vec<Key> = self
            .inner
            .list(Some(&p))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| self.err("list", prefix, e))?;
        let mut n = 0;
        for k in keys {
            self.delete(k.as_ref()).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Copies `from` to `to` (server-side on S3).
    ///
    /// # Errors
    /// [`FilesError::NotFound`], store errors.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), FilesError> {
        self.inner
            .copy(&Key::from(from), &Key::from(to))
            .await
            .map_err(|e| self.err("copy", from, e))
    }

    /// Writes, reads back and deletes a small object: the check behind
    /// `POST /api/settings/test/s3`.
    ///
    /// # Errors
    /// The step that failed.
    pub async fn self_test(&self) -> Result<(), FilesError> {
        let key = format!(".pier_test_{}", crate::names::random(10));
        self.put(&key, Bytes::from_static(b"pier")).await?;
        let back = self.read_all(&key, 16).await?;
        self.delete(&key).await?;
        if &back[..] != b"pier" {
            return Err(FilesError::Body("the object read back differs".into()));
        }
        Ok(())
    }
}

/// What a read of the local folder sends at a time: files up to this size go in one piece.
const LOCAL_CHUNK: usize = 256 * 1024;

/// A local read without `object_store`'s small blocking reads: the file is opened and its
/// metadata read in one blocking call, then read in large chunks (keys are checked by the
/// callers; `Key` keeps them inside the folder).
async fn local_get(
    dir: &std::path::Path,
    key: &str,
    range: Option<Range<u64>>,
) -> Result<Download, FilesError> {
    use std::io::{Read, Seek, SeekFrom};
    let path = Key::parse(key).map_err(|_| FilesError::NotFound)?;
    let file_path = path
        .parts()
        .fold(dir.to_path_buf(), |p, part| p.join(part.as_ref()));
    let key_owned = key.to_owned();
    let io_err = move |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => FilesError::NotFound,
        _ => FilesError::Store {
            op: "read",
            key: key_owned.clone(),
            backend: "local folder".into(),
            source: Box::new(e),
        },
    };
    let err = io_err.clone();
    let (file, meta, range, first) = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&file_path)?;
        let m = f.metadata()?;
        if !m.is_file() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let size = m.len();
        let range = range.map_or(0..size, |r| r.start.min(size)..r.end.min(size));
        f.seek(SeekFrom::Start(range.start))?;
        let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        let mut first = vec![0u8; want.min(LOCAL_CHUNK)];
        f.read_exact(&mut first)?;
        Ok((f, m, range, first))
    })
    .await
    .map_err(|e| FilesError::Body(e.to_string()))?
    .map_err(err)?;
    let meta = Meta {
        size: meta.len(),
        modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
        e_tag: None,
    };
    let sent = first.len() as u64;
    let rest = range.end - range.start - sent;
    let head = futures_util::stream::once(async move { Ok(Bytes::from(first)) });
    let body = if rest == 0 {
        head.boxed()
    } else {
        let file = tokio::fs::File::from_std(file);
        let tail = tokio_util::io::ReaderStream::with_capacity(
            tokio::io::AsyncReadExt::take(file, rest),
            LOCAL_CHUNK,
        )
        .map_err(io_err);
        head.chain(tail).boxed()
    };
    Ok(Download { meta, body })
}

/// The key of a record's file.
pub fn file_key(collection_id: &str, record_id: &str, name: &str) -> String {
    format!("{collection_id}/{record_id}/{name}")
}

/// The folder of a record's file's thumbnails (PocketBase's layout).
fn thumbs_prefix(collection_id: &str, record_id: &str, name: &str) -> String {
    format!("{collection_id}/{record_id}/thumbs_{name}")
}

/// The key of one thumbnail of a record's file.
pub fn thumb_key(collection_id: &str, record_id: &str, name: &str, size: &str) -> String {
    format!(
        "{}/{size}_{name}",
        thumbs_prefix(collection_id, record_id, name)
    )
}
