//! PocketBase's files routes: `GET|HEAD /api/files/{collection}/{recordId}/{filename}` (with
//! `?thumb=`, `?download=1` and `?token=` for protected files, `Range` and `If-None-Match`),
//! and the janitor that deletes files once the writes that took them away have committed.
//!
//! User content never runs in pier's origin: every file carries `X-Content-Type-Options:
//! nosniff` and a sandboxing `Content-Security-Policy`, and types a browser would run (HTML,
//! SVG, XML, anything not on the inline list) are served as attachments.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pier_core::range::{ByteRange, parse_byte_range};
use pier_files::{FileStore, ThumbSpec};
use pier_records::{Auth, FilesSink, RemovedFile};
use serde_json::Map;

use crate::uploads::store_error;
use crate::{ApiError, AppState};

/// PocketBase's policy for user files: nothing may run, styles and media stay inert.
const CSP: &str = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(
        "/api/files/{collection}/{record}/{filename}",
        get(serve).head(serve),
    )
}

/// The sink the records engine calls after each committed write: the files it took away are
/// deleted (with their thumbnails) by one background task, in order. [`Janitor::settled`] waits
/// until every batch handed over so far is done, so a write's answer comes after its files are
/// gone, as PocketBase answers.
pub(crate) fn janitor(store: FileStore, janitor: &Janitor) -> FilesSink {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Vec<RemovedFile>)>();
    let done = janitor.done.clone();
    tokio::spawn(async move {
        while let Some((n, batch)) = rx.recv().await {
            for f in batch {
                if let Err(e) = store
                    .delete_file(&f.collection_id, &f.record_id, &f.name)
                    .await
                {
                    tracing::warn!("a removed file was not deleted: {e}");
                }
            }
            done.send_replace(n);
        }
    });
    let queued = janitor.queued.clone();
    Arc::new(move |batch| {
        let n = queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let _ = tx.send((n, batch));
    })
}

/// How far the deletion of removed files has got.
pub(crate) struct Janitor {
    queued: Arc<std::sync::atomic::AtomicU64>,
    done: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Janitor {
    fn default() -> Self {
        Janitor {
            queued: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            done: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl Janitor {
    /// Waits (at most 10 s) until the files of every write committed so far are deleted.
    pub(crate) async fn settled(&self) {
        let target = self.queued.load(std::sync::atomic::Ordering::SeqCst);
        let mut rx = self.done.subscribe();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            rx.wait_for(|d| *d >= target),
        )
        .await;
    }
}

/// Deletes every file of a collection (after the collection was deleted or truncated).
pub(crate) fn forget_collection(state: &AppState, collection_id: &str) {
    let store = state.files().clone();
    let prefix = collection_id.to_owned();
    tokio::spawn(async move {
        if let Err(e) = store.delete_prefix(&prefix).await {
            tracing::warn!("the files of a deleted collection were not all deleted: {e}");
        }
    });
}

async fn serve(
    State(state): State<AppState>,
    Path((collection, record_id, filename)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !pier_files::is_stored_name(&filename) || !pier_files::is_stored_name(&record_id) {
        return Err(ApiError::not_found());
    }
    let engine = state.engine().await?;
    let c = engine
        .collection(&collection)
        .await
        .map_err(|_| ApiError::not_found())?;
    let file_fields: Vec<&pier_records::Field> =
        c.fields.iter().filter(|f| f.kind == "file").collect();
    // Without protected fields every file of the collection is public: the store says whether
    // it exists (a removed file is deleted right after its write commits), and the record is
    // not read. With them, the record says which field the file is in, and that field's rule.
    let sizes_of = |f: &pier_records::Field| -> Vec<String> {
        f.options
            .get("thumbs")
            .and_then(|t| t.as_array())
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let thumb_sizes: Vec<String> = if file_fields.iter().any(|f| f.opt_bool("protected")) {
        let field = record_field(&engine, &c, &record_id, &filename).await?;
        if field.opt_bool("protected") {
            check_file_token(&engine, &c, &record_id, &q).await?;
        }
        sizes_of(&field)
    } else {
        file_fields.iter().flat_map(|f| sizes_of(f)).collect()
    };
    let store = state.files();
    let original = pier_files::file_key(&c.id, &record_id, &filename);
    let mut key = original.clone();
    let mut served_name = filename.clone();
    if let Some(size) = q.get("thumb").filter(|s| !s.is_empty())
        && pier_files::thumbable(&filename)
        && let Some(spec) = ThumbSpec::parse(size)
        && (size == "100x100" || thumb_sizes.iter().any(|s| s == size))
    {
        let thumb = pier_files::thumb_key(&c.id, &record_id, &filename, size);
        if state.thumbs().ensure(store, &original, &thumb, spec).await {
            key = thumb;
            served_name = format!("{size}_{filename}");
        }
    }
    let download = q
        .get("download")
        .is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    send(store, &key, &served_name, download, &method, &headers).await
}

/// The file field of `c`'s record `record_id` that holds `filename` (404 when none does).
async fn record_field(
    engine: &pier_records::Engine,
    c: &pier_records::Collection,
    record_id: &str,
    filename: &str,
) -> Result<pier_records::Field, ApiError> {
    let everything = engine
        .request_info(
            Auth::Superuser { id: String::new() },
            "GET",
            Map::new(),
            Map::new(),
            Map::new(),
        )
        .await;
    let record = engine
        .view(c, record_id, &everything)
        .await
        .map_err(|_| ApiError::not_found())?;
    c.fields
        .iter()
        .filter(|f| f.kind == "file")
        .find(|f| match record.get(&f.name) {
            Some(serde_json::Value::String(s)) => *s == filename,
            Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(filename)),
            _ => false,
        })
        .cloned()
        .ok_or_else(ApiError::not_found)
}

/// A protected file: `?token=` must be a file token whose owner passes the view rule (404
/// otherwise, as PocketBase answers).
async fn check_file_token(
    engine: &pier_records::Engine,
    c: &pier_records::Collection,
    record_id: &str,
    q: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let token = q.get("token").map(String::as_str).unwrap_or_default();
    let auth = if token.is_empty() {
        Auth::Guest
    } else {
        engine.authenticate_file_token(token).await
    };
    let mut query = Map::new();
    for (k, v) in q {
        query.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    let req = engine
        .request_info(auth, "GET", query, Map::new(), Map::new())
        .await;
    engine
        .view(c, record_id, &req)
        .await
        .map(|_| ())
        .map_err(|_| ApiError::not_found())
}

/// Sends a stored object with the headers user content needs.
async fn send(
    store: &FileStore,
    key: &str,
    name: &str,
    download: bool,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    // A plain GET reads the object once (its metadata comes with it); conditional, ranged and
    // HEAD requests look at the metadata first.
    let plain = method == Method::GET
        && !headers.contains_key(header::RANGE)
        && !headers.contains_key(header::IF_NONE_MATCH);
    let mut body = None;
    let meta = if plain {
        let d = store.get(key, None).await.map_err(store_error)?;
        let m = d.meta.clone();
        body = Some(d.body);
        m
    } else {
        store.head(key).await.map_err(store_error)?
    };
    let etag = format!(
        "\"{}\"",
        meta.e_tag
            .as_deref()
            .map(|t| t.trim_matches('"').to_owned())
            .unwrap_or_else(|| {
                let secs = meta
                    .modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                format!("{:x}-{secs:x}", meta.size)
            })
    );
    let content_type = pier_files::served_type(name);
    let disposition = if download || !pier_files::inline(&content_type) {
        "attachment"
    } else {
        "inline"
    };
    let mut b = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CACHE_CONTROL,
            "max-age=2592000, stale-while-revalidate=86400",
        )
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::ETAG, &etag)
        .header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(meta.modified),
        );
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"{name}\"")) {
        b = b.header(header::CONTENT_DISPOSITION, v);
    }
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return b
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    b = b.header(header::CONTENT_TYPE, &content_type);
    // A range is honoured unless `If-Range` names another version.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range_ok => match parse_byte_range(r, meta.size) {
            ByteRange::Full => None,
            ByteRange::Part(start, end) => Some(start..end + 1),
            ByteRange::Unsatisfiable => {
                return b
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", meta.size))
                    .body(Body::empty())
                    .map_err(|e| ApiError::internal(e.to_string()));
            }
        },
        _ => None,
    };
    let (status, len) = match &range {
        Some(r) => {
            b = b.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end - 1, meta.size),
            );
            (StatusCode::PARTIAL_CONTENT, r.end - r.start)
        }
        None => (StatusCode::OK, meta.size),
    };
    b = b.status(status).header(header::CONTENT_LENGTH, len);
    if method == Method::HEAD {
        return b
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    let stream = match body {
        Some(b) => b,
        None => store.get(key, range).await.map_err(store_error)?.body,
    };
    b.body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
        .map(IntoResponse::into_response)
}
