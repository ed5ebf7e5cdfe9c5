//! Resumable uploads, beyond PocketBase: the tus protocol 1.0 (core, creation, termination) at
//! `/api/files/uploads`. A large file is sent in as many `PATCH`es as it takes; a dropped
//! connection keeps what arrived, and `HEAD` tells the client where to resume. Once complete,
//! a record create or update attaches it with `"@uploads": {"field": ["<upload id>"]}` (or
//! `field+`, `+field`), and it goes through the same checks as a multipart file.
//!
//! Partial uploads are kept in `<data>/uploads` (`<id>` holds the bytes, `<id>.json` what the
//! upload is for), so they survive a restart; the store sees only complete files. An upload is
//! bound to the caller that created it, its size is declared up front and held to the field's
//! `maxSize`, and uploads left for a day are removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use futures_util::StreamExt;
use pier_records::{Auth, Upload};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::records::Caller;
use crate::{ApiError, AppState};

const VERSION: &str = "1.0.0";
/// Partial uploads older than this are removed.
const KEEP: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/files/uploads", post(create).options(options))
        .route(
            "/api/files/uploads/{id}",
            axum::routing::head(offset)
                .patch(append)
                .delete(terminate)
                .options(options),
        )
}

/// What an upload is for, kept beside its bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Info {
    length: u64,
    filename: String,
    collection_id: String,
    field: String,
    /// `collectionId/recordId` of the caller that created it; empty for a guest.
    owner: String,
}

fn owner(auth: &Auth) -> String {
    match auth {
        Auth::Guest => String::new(),
        Auth::Superuser { id } => format!("_superusers/{id}"),
        Auth::Record { collection_id, id } => format!("{collection_id}/{id}"),
    }
}

fn tus_headers(mut r: Response) -> Response {
    r.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(VERSION));
    r
}

fn error(status: StatusCode, message: &str) -> Response {
    tus_headers(ApiError::new(status, message).into_response())
}

async fn options(State(state): State<AppState>) -> Response {
    let (_, limit) = state.body_limits();
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(VERSION));
    h.insert(
        "tus-extension",
        HeaderValue::from_static("creation,termination"),
    );
    if let Ok(v) = HeaderValue::from_str(&limit.to_string()) {
        h.insert("tus-max-size", v);
    }
    tus_headers(r)
}

fn dir(state: &AppState) -> PathBuf {
    state.uploads_dir().to_path_buf()
}

fn paths(state: &AppState, id: &str) -> Option<(PathBuf, PathBuf)> {
    // Ids are made here: 20 characters of [a-z0-9]; anything else names no upload.
    (id.len() == 20
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then(|| {
        let d = dir(state);
        (d.join(id), d.join(format!("{id}.json")))
    })
}

async fn load(state: &AppState, id: &str) -> Option<(Info, PathBuf, u64)> {
    let (data, meta) = paths(state, id)?;
    let info: Info = serde_json::from_slice(&tokio::fs::read(&meta).await.ok()?).ok()?;
    let have = tokio::fs::metadata(&data).await.ok()?.len();
    Some((info, data, have))
}

/// The upload `id` of the caller `auth`: what it is for, its bytes' file and how many arrived.
/// Another caller's upload is as unknown as a missing one.
async fn load_own(state: &AppState, auth: &Auth, id: &str) -> Option<(Info, PathBuf, u64)> {
    load(state, id)
        .await
        .filter(|(info, _, _)| info.owner == owner(auth))
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Upload-Metadata: key base64,key base64`.
fn metadata(h: &HeaderMap) -> Vec<(String, String)> {
    let Some(v) = h.get("upload-metadata").and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    v.split(',')
        .filter_map(|pair| {
            let mut it = pair.trim().splitn(2, ' ');
            let k = it.next()?.to_owned();
            let v = it.next().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
            Some((k, String::from_utf8(bytes).ok()?))
        })
        .collect()
}

async fn create(
    State(state): State<AppState>,
    Caller(auth): Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    sweep(&dir(&state)).await;
    let Some(length) = header_u64(&headers, "upload-length") else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "Upload-Length is required (a number of bytes).",
        ));
    };
    let meta = metadata(&headers);
    let get = |k: &str| {
        meta.iter()
            .find(|(m, _)| m == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (collection, field_name) = (get("collection"), get("field"));
    let engine = state.engine().await?;
    let Ok(c) = engine.collection(&collection).await else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "Upload-Metadata must name an existing `collection`.",
        ));
    };
    let Some(field) = c
        .fields
        .iter()
        .find(|f| f.name == field_name && f.kind == "file")
    else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "Upload-Metadata must name a file `field` of the collection.",
        ));
    };
    // Nobody may write to a collection whose create and update rules are both null, except
    // superusers: such uploads could never be attached.
    if !auth.is_superuser() && c.create_rule.is_none() && c.update_rule.is_none() {
        return Err(ApiError::forbidden(
            "Only superusers can perform this action.",
        ));
    }
    let filename = match get("filename") {
        n if n.is_empty() => "upload".to_owned(),
        n => n,
    };
    if length > pier_records::max_file_size(field) {
        let e: ApiError = pier_records::upload_too_large(field, &filename, true).into();
        return Ok(tus_headers(
            (StatusCode::PAYLOAD_TOO_LARGE, e.into_response()).into_response(),
        ));
    }
    let id = pier_files::random(20);
    let Some((data, meta_path)) = paths(&state, &id) else {
        return Err(ApiError::internal(
            "a made upload id did not pass its own check",
        ));
    };
    let info = Info {
        length,
        filename,
        collection_id: c.id.clone(),
        field: field.name.clone(),
        owner: owner(&auth),
    };
    let write = async {
        tokio::fs::create_dir_all(dir(&state)).await?;
        tokio::fs::write(&data, b"").await?;
        tokio::fs::write(&meta_path, serde_json::to_vec(&info).unwrap_or_default()).await
    };
    write
        .await
        .map_err(|e| ApiError::internal(format!("cannot make the upload folder: {e}")))?;
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/files/uploads/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert("upload-offset", HeaderValue::from(0u64));
    Ok(tus_headers(r))
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "The requested resource wasn't found.",
    )
}

async fn offset(
    State(state): State<AppState>,
    Caller(auth): Caller,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((info, _, have)) = load_own(&state, &auth, &id).await else {
        return not_found();
    };
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert("upload-offset", HeaderValue::from(have));
    h.insert("upload-length", HeaderValue::from(info.length));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tus_headers(r)
}

async fn append(
    State(state): State<AppState>,
    Caller(auth): Caller,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> Response {
    let Some((info, data, have)) = load_own(&state, &auth, &id).await else {
        return not_found();
    };
    let h = req.headers();
    if h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
        != Some("application/offset+octet-stream")
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/offset+octet-stream.",
        );
    }
    if header_u64(h, "upload-offset") != Some(have) {
        let mut r = error(
            StatusCode::CONFLICT,
            "Upload-Offset does not match the bytes received so far (ask with HEAD).",
        );
        r.headers_mut()
            .insert("upload-offset", HeaderValue::from(have));
        return r;
    }
    let Ok(mut file) = tokio::fs::OpenOptions::new().append(true).open(&data).await else {
        return not_found();
    };
    let mut written = have;
    let mut body = req.into_body().into_data_stream();
    let mut over = false;
    while let Some(chunk) = body.next().await {
        // A dropped connection keeps what arrived: the client resumes from there.
        let Ok(chunk) = chunk else { break };
        if written + chunk.len() as u64 > info.length {
            over = true;
            break;
        }
        if file.write_all(&chunk).await.is_err() {
            break;
        }
        written += chunk.len() as u64;
    }
    let _ = file.flush().await;
    let _ = file.sync_data().await;
    if over {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The body goes past the upload's declared Upload-Length.",
        );
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert("upload-offset", HeaderValue::from(written));
    tus_headers(r)
}

async fn terminate(
    State(state): State<AppState>,
    Caller(auth): Caller,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((_, data, _)) = load_own(&state, &auth, &id).await else {
        return not_found();
    };
    forget(&data).await;
    tus_headers(StatusCode::NO_CONTENT.into_response())
}

/// Deletes a partial upload's files (its record's write committed).
pub(crate) async fn forget(data: &Path) {
    let _ = tokio::fs::remove_file(data).await;
    let _ = tokio::fs::remove_file(data.with_extension("json")).await;
}

/// Removes partial uploads left for more than a day.
async fn sweep(dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    let now = SystemTime::now();
    while let Ok(Some(e)) = entries.next_entry().await {
        let old = e
            .metadata()
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > KEEP);
        if old {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
}

/// Moves the complete uploads a record body names under `"@uploads"` into the store, as
/// uploads of `collection_id`'s record `record_id`, into `got`: their store keys (deleted if the
/// request fails) and their partial-upload files (deleted once the record's write commits; a
/// failed write keeps them, so the client may try again).
///
/// # Errors
/// 400 for an upload that is unknown, not the caller's, for another collection or field, or
/// not complete.
pub(crate) async fn attach(
    state: &AppState,
    auth: &Auth,
    collection_id: &str,
    record_id: &str,
    named: &serde_json::Value,
    got: &mut crate::uploads::Received,
) -> Result<(), ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, format!("@uploads: {m}"));
    let Some(map) = named.as_object() else {
        return Err(bad("expected an object of field names to upload ids"));
    };
    for (key, ids) in map {
        let ids: Vec<String> = match ids {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => return Err(bad("each field takes an upload id or a list of them")),
        };
        let base = key.trim_start_matches('+').trim_end_matches('+');
        for id in ids {
            let Some((info, data, have)) = load(state, &id).await else {
                return Err(bad(&format!("no upload `{id}`")));
            };
            if info.owner != owner(auth)
                || info.collection_id != collection_id
                || info.field != base
            {
                return Err(bad(&format!("upload `{id}` is not for this field")));
            }
            if have != info.length {
                return Err(bad(&format!(
                    "upload `{id}` is not complete ({have} of {} bytes)",
                    info.length
                )));
            }
            let head = read_head(&data).await;
            let name = pier_files::stored_name(&info.filename, pier_files::extension_for(&head));
            let store_key = pier_files::file_key(collection_id, record_id, &name);
            let file = tokio::fs::File::open(&data)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
            state
                .files()
                .put_stream(&store_key, stream, info.length)
                .await
                .map_err(crate::uploads::store_error)?;
            // Recorded at once: a later failure discards it with the rest of the request.
            got.keys.push(store_key);
            got.staged.push(data);
            got.uploads.push(Upload {
                key: key.clone(),
                name,
                original: info.filename.clone(),
                size: info.length,
                mime: pier_files::detect_mime(&head).to_owned(),
            });
        }
    }
    Ok(())
}

async fn read_head(path: &Path) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut head = vec![0u8; 8192];
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    let n = f.read(&mut head).await.unwrap_or(0);
    head.truncate(n);
    head
}
