//! The body of a record create or update: JSON (held to `http.body_limit_bytes`), or a
//! multipart form whose file parts are streamed into the file store as they arrive (held to
//! `files.upload_limit_bytes` in all, and each file to its field's `maxSize`), while the text
//! parts and PocketBase's `@jsonPayload` become the record's JSON.
//!
//! Files land at their final key (`<collectionId>/<recordId>/<stored name>`, a name no other
//! file has), so nothing is copied after the commit. [`Received::discard`] deletes them when
//! the write fails; a record's replaced and removed files are deleted only after a write
//! commits (the records engine's files sink, `files::janitor`).

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use pier_files::{FileStore, FilesError};
use pier_records::{Auth, Collection, Upload};
use serde_json::{Map, Value};

use crate::{ApiError, AppState};

pub(crate) fn malformed() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "Failed to load the submitted data due to invalid formatting.",
    )
}

pub(crate) fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.")
}

/// A record body as received.
pub(crate) struct Received {
    pub(crate) body: Map<String, Value>,
    pub(crate) uploads: Vec<Upload>,
    /// The record id the files were stored under.
    pub(crate) upload_id: Option<String>,
    /// Every store key this request wrote (what `discard` deletes).
    pub(crate) keys: Vec<String>,
    /// Resumable uploads attached, deleted once the write commits.
    pub(crate) staged: Vec<std::path::PathBuf>,
    store: FileStore,
}

impl Received {
    /// The write committed: the resumable uploads it attached are done with.
    pub(crate) async fn committed(self) {
        for p in &self.staged {
            crate::tus::forget(p).await;
        }
    }

    /// Deletes the files this request stored (its write failed or was refused).
    pub(crate) async fn discard(self) {
        for k in &self.keys {
            if let Err(e) = self.store.delete(k).await {
                tracing::warn!("an upload of a failed request was not deleted: {e}");
            }
        }
    }
}

/// Reads the body of a create (`record_id: None`) or an update of `c`.
pub(crate) async fn receive(
    state: &AppState,
    c: &Collection,
    auth: &Auth,
    record_id: Option<&str>,
    req: Request,
) -> Result<Received, ApiError> {
    let (body_limit, _) = state.body_limits();
    let store = state.files().clone();
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    if !multipart {
        // Past the limit is a 413; a body that breaks off is malformed, not too large.
        let bytes = http_body_util::BodyExt::collect(http_body_util::Limited::new(
            req.into_body(),
            body_limit,
        ))
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                malformed()
            }
        })?
        .to_bytes();
        let body = json_object(&bytes)?;
        let mut got = Received {
            body,
            uploads: Vec::new(),
            upload_id: None,
            keys: Vec::new(),
            staged: Vec::new(),
            store,
        };
        // A create that names its id keeps its files under it.
        let id = record_id
            .map(str::to_owned)
            .or_else(|| match got.body.get("id") {
                Some(Value::String(id)) if pier_files::is_stored_name(id) => Some(id.clone()),
                _ => None,
            });
        if let Err(e) = attach_resumable(state, c, auth, id.as_deref(), &mut got).await {
            got.discard().await;
            return Err(e);
        }
        return Ok(got);
    }
    // The route's `DefaultBodyLimit` is `files.upload_limit_bytes` (see `records::router`).
    let form = axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|_| malformed())?;
    let upload_id = record_id.map_or_else(|| pier_files::random(15), str::to_owned);
    let mut got = Received {
        body: Map::new(),
        uploads: Vec::new(),
        upload_id: Some(upload_id.clone()),
        keys: Vec::new(),
        staged: Vec::new(),
        store,
    };
    // Whatever fails after the first file landed leaves nothing behind.
    let outcome = async {
        read_form(
            form,
            c,
            auth,
            (&upload_id, record_id.is_none()),
            body_limit,
            &mut got,
        )
        .await?;
        attach_resumable(
            state,
            c,
            auth,
            Some(record_id.unwrap_or(&upload_id)),
            &mut got,
        )
        .await?;
        // A create that names its own id: the files move under it.
        match got.body.get("id") {
            Some(Value::String(id))
                if record_id.is_none() && !id.is_empty() && *id != upload_id =>
            {
                let id = id.clone();
                move_uploads(&mut got, &c.id, &id).await
            }
            _ => Ok(()),
        }
    }
    .await;
    match outcome {
        Ok(()) => Ok(got),
        Err(e) => {
            got.discard().await;
            Err(e)
        }
    }
}

/// Takes `"@uploads"` out of the body and attaches the resumable uploads it names.
async fn attach_resumable(
    state: &AppState,
    c: &Collection,
    auth: &Auth,
    record_id: Option<&str>,
    got: &mut Received,
) -> Result<(), ApiError> {
    let Some(named) = got.body.remove("@uploads") else {
        return Ok(());
    };
    let id = match (record_id, &got.upload_id) {
        (Some(id), _) => id.to_owned(),
        (None, Some(id)) => id.clone(),
        (None, None) => pier_files::random(15),
    };
    got.upload_id = Some(id.clone());
    crate::tus::attach(state, auth, &c.id, &id, &named, got).await
}

async fn move_uploads(got: &mut Received, collection_id: &str, id: &str) -> Result<(), ApiError> {
    if !pier_files::is_stored_name(id) {
        // The engine refuses the id; nothing to move.
        return Ok(());
    }
    // Each file is copied, then its old key replaced by the new one, so that a failure midway
    // still leaves `keys` naming everything stored.
    for i in 0..got.keys.len() {
        let to = pier_files::file_key(collection_id, id, &got.uploads[i].name);
        got.store
            .copy(&got.keys[i], &to)
            .await
            .map_err(store_error)?;
        let from = std::mem::replace(&mut got.keys[i], to);
        let _ = got.store.delete(&from).await;
    }
    got.upload_id = Some(id.to_owned());
    Ok(())
}

pub(crate) fn store_error(e: FilesError) -> ApiError {
    match e {
        FilesError::NotFound => ApiError::not_found(),
        e => {
            tracing::error!("file store: {e}");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Failed to upload the file: the file storage is not available.",
            )
        }
    }
}

/// A JSON object body (blank is an empty object); anything else is PocketBase's 400.
pub(crate) fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(malformed()),
    }
}

async fn read_form(
    mut form: axum::extract::Multipart,
    c: &Collection,
    auth: &Auth,
    (upload_id, creating): (&str, bool),
    text_limit: usize,
    got: &mut Received,
) -> Result<(), ApiError> {
    let mut text_bytes = 0usize;
    while let Some(mut part) = form.next_field().await.map_err(part_error)? {
        let name = part.name().unwrap_or_default().to_owned();
        if let Some(original) = part.file_name().map(str::to_owned) {
            let base = name.trim_start_matches('+').trim_end_matches('+');
            let field = c
                .fields
                .iter()
                .find(|f| f.name == base && f.kind == "file")
                .filter(|f| !f.hidden || auth.is_superuser());
            // Files for anything but a file field are ignored, as PocketBase ignores them.
            let Some(field) = field else {
                while part.chunk().await.map_err(part_error)?.is_some() {}
                continue;
            };
            // The first bytes name the type (and the extension, when the name has none).
            let mut head: Vec<Bytes> = Vec::new();
            let mut seen = 0usize;
            while seen < 512 {
                match part.chunk().await.map_err(part_error)? {
                    Some(b) => {
                        seen += b.len();
                        head.push(b);
                    }
                    None => break,
                }
            }
            // A browser sends an empty part for a file input left empty.
            if seen == 0 && original.is_empty() {
                continue;
            }
            let first: Vec<u8> = head.iter().flat_map(|b| b.iter().copied()).collect();
            let stored = pier_files::stored_name(&original, pier_files::extension_for(&first));
            let key = pier_files::file_key(&c.id, upload_id, &stored);
            let limit = pier_records::max_file_size(field);
            let rest = stream::unfold(part, |mut p| async move {
                match p.chunk().await {
                    Ok(Some(b)) => Some((Ok(b), p)),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), p)),
                }
            });
            let body = stream::iter(head.into_iter().map(Ok)).chain(rest);
            let result = got.store.put_stream(&key, Box::pin(body), limit).await;
            let size = match result {
                Ok(size) => size,
                Err(FilesError::TooLarge { .. }) => {
                    // Read (and drop) the rest, so that a client still sending gets the answer
                    // rather than a reset connection.
                    drain(form, DRAIN_LIMIT).await;
                    return Err(pier_records::upload_too_large(field, &original, creating).into());
                }
                Err(FilesError::Body(_)) => return Err(malformed()),
                Err(e) => return Err(store_error(e)),
            };
            got.keys.push(key);
            got.uploads.push(Upload {
                key: name,
                name: stored,
                original,
                size,
                mime: pier_files::detect_mime(&first).to_owned(),
            });
            continue;
        }
        let text = part.text().await.map_err(part_error)?;
        text_bytes += text.len();
        if text_bytes > text_limit {
            return Err(too_large());
        }
        add_text(&mut got.body, name, text)?;
    }
    Ok(())
}

/// One text part of a multipart form into the body: PocketBase's `@jsonPayload` is merged in,
/// any other part is a string value (a repeated name, a list).
pub(crate) fn add_text(
    body: &mut Map<String, Value>,
    name: String,
    text: String,
) -> Result<(), ApiError> {
    if name == "@jsonPayload" {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => body.extend(m),
            _ => return Err(malformed()),
        }
        return Ok(());
    }
    match body.get_mut(&name) {
        Some(Value::Array(a)) => a.push(Value::String(text)),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, Value::String(text)]);
        }
        None => {
            body.insert(name, Value::String(text));
        }
    }
    Ok(())
}

/// How much of a refused body is still read so that the client sees the answer.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

async fn drain(mut form: axum::extract::Multipart, mut budget: u64) {
    while let Ok(Some(mut part)) = form.next_field().await {
        while let Ok(Some(chunk)) = part.chunk().await {
            budget = budget.saturating_sub(chunk.len() as u64);
            if budget == 0 {
                return;
            }
        }
    }
}

fn part_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        malformed()
    }
}
