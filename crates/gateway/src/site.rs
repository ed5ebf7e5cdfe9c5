//! The frontend build, held in memory: loaded at start and again when the folder changes.
//!
//! Every file is read once; text-like files also get gzip and brotli variants made at load
//! time, kept only when smaller. Files over `static_memory_max_bytes` stay on disk and are
//! streamed. Lookups go through the in-memory map only, which is built by walking the folder,
//! so no request path can name anything outside it; dotfiles (but `.well-known`) and symbolic
//! links that leave the folder are not served.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use pier_core::range::{ByteRange, parse_byte_range};
use sha2::{Digest, Sha256};

use crate::respond;

/// Compressed variants are kept only below this share of the original size.
const WORTH_COMPRESSING: f64 = 0.9;
const MIN_COMPRESS_BYTES: usize = 256;
const STREAM_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
enum Content {
    Memory {
        identity: Bytes,
        gzip: Option<Bytes>,
        br: Option<Bytes>,
    },
    Disk {
        path: PathBuf,
        len: u64,
    },
}

#[derive(Debug)]
pub(crate) struct Asset {
    content_type: HeaderValue,
    /// The quoted hash, without the variant suffix.
    hash: String,
    etag: HeaderValue,
    etag_gzip: Option<HeaderValue>,
    etag_br: Option<HeaderValue>,
    cache_control: HeaderValue,
    last_modified: Option<HeaderValue>,
    modified: Option<SystemTime>,
    content: Content,
}

impl Asset {
    fn len(&self) -> u64 {
        match &self.content {
            Content::Memory { identity, .. } => identity.len() as u64,
            Content::Disk { len, .. } => *len,
        }
    }

    fn has_variants(&self) -> bool {
        matches!(&self.content, Content::Memory { gzip, br, .. } if gzip.is_some() || br.is_some())
    }
}

/// One loaded copy of the folder.
#[derive(Debug, Default)]
pub(crate) struct Site {
    /// The folder's [`fingerprint`] taken before it was read: a change after that is noticed.
    pub(crate) fingerprint: u64,
    files: HashMap<String, Arc<Asset>>,
    index: Option<Arc<Asset>>,
    bytes_in_memory: u64,
    /// The welcome page `/` answers while the folder does not exist.
    welcome: Option<Bytes>,
}

/// What went wrong loading the folder.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SiteError {
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Site {
    /// Loads every file under `root`. A missing folder is an empty site whose `/` is the
    /// welcome page.
    pub(crate) fn load(root: &Path, memory_max: u64) -> Result<Site, SiteError> {
        let mut site = Site {
            fingerprint: fingerprint(root),
            ..Site::default()
        };
        if !root.is_dir() {
            site.welcome = Some(crate::welcome::page(root));
            return Ok(site);
        }
        let canonical_root = root.canonicalize().map_err(|source| SiteError::Read {
            path: root.to_owned(),
            source,
        })?;
        let mut stack = vec![(canonical_root.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| SiteError::Read {
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| SiteError::Read {
                    path: dir.clone(),
                    source,
                })?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') && name != ".well-known" {
                    continue;
                }
                let path = entry.path();
                // Follow links only while they stay inside the folder.
                let Ok(real) = path.canonicalize() else {
                    continue;
                };
                if !real.starts_with(&canonical_root) {
                    tracing::warn!(path = %path.display(), "not serving a link that leaves the public folder");
                    continue;
                }
                let rel = format!("{prefix}{name}");
                if real.is_dir() {
                    stack.push((real, format!("{rel}/")));
                } else if real.is_file() {
                    let asset = load_asset(&real, &rel, memory_max)?;
                    if let Content::Memory { identity, gzip, br } = &asset.content {
                        site.bytes_in_memory += (identity.len()
                            + gzip.as_ref().map_or(0, Bytes::len)
                            + br.as_ref().map_or(0, Bytes::len))
                            as u64;
                    }
                    site.files.insert(rel, Arc::new(asset));
                }
            }
        }
        site.index = site.files.get("index.html").cloned();
        Ok(site)
    }

    pub(crate) fn file_count(&self) -> usize {
        self.files.len()
    }

    pub(crate) fn bytes_in_memory(&self) -> u64 {
        self.bytes_in_memory
    }

    /// Answers a request for `raw_path` (still percent-encoded).
    pub(crate) async fn serve(
        &self,
        method: &Method,
        raw_path: &str,
        headers: &HeaderMap,
    ) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut res = respond::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed for a static file.",
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        let Some(path) = normalise(raw_path) else {
            return respond::error(StatusCode::BAD_REQUEST, "Invalid path.");
        };
        if path.is_empty()
            && let Some(page) = &self.welcome
        {
            return crate::welcome::respond(page, method);
        }
        let found = if path.is_empty() {
            self.index.clone()
        } else if let Some(dir) = path.strip_suffix('/') {
            self.files.get(&format!("{dir}/index.html")).cloned()
        } else {
            self.files
                .get(&path)
                .or_else(|| self.files.get(&format!("{path}/index.html")))
                .cloned()
        };
        let asset = match found {
            Some(a) => a,
            None if spa_fallback(&path, headers) => match &self.index {
                Some(i) => i.clone(),
                None => return respond::not_found(),
            },
            None => return respond::not_found(),
        };
        respond_with(&asset, method, headers).await
    }
}

/// Decodes and checks a request path; `None` when it could name something outside the folder
/// or holds bytes no file name here has. The result has no leading `/`.
pub(crate) fn normalise(raw: &str) -> Option<String> {
    let raw = raw.strip_prefix('/')?;
    let mut out = String::with_capacity(raw.len());
    let segments: Vec<&str> = raw.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.into_iter().enumerate() {
        let decoded = percent_encoding::percent_decode_str(seg)
            .decode_utf8()
            .ok()?;
        if decoded == ".."
            || decoded == "."
            || decoded
                .chars()
                .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_control())
        {
            return None;
        }
        if decoded.is_empty() && i != last {
            // `//` collapses.
            continue;
        }
        out.push_str(&decoded);
        if i != last {
            out.push('/');
        }
    }
    Some(out)
}

/// Single-page apps: a GET/HEAD for a page (accepts HTML, no file extension) that is not a
/// file gets `index.html`. Never under `/api/`.
fn spa_fallback(path: &str, headers: &HeaderMap) -> bool {
    if path == "api" || path.starts_with("api/") {
        return false;
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return false;
    }
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Identity,
    Gzip,
    Br,
}

/// Picks br, then gzip, by the client's `Accept-Encoding` q-values.
fn negotiate(headers: &HeaderMap, has_gzip: bool, has_br: bool) -> Encoding {
    let mut q_gzip = 0.0f32;
    let mut q_br = 0.0f32;
    let mut q_star = None;
    for v in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            for p in parts {
                if let Some(val) = p.trim().strip_prefix("q=") {
                    q = val.trim().parse().unwrap_or(0.0);
                }
            }
            match name.as_str() {
                "gzip" | "x-gzip" => q_gzip = q,
                "br" => q_br = q,
                "*" => q_star = Some(q),
                _ => {}
            }
        }
    }
    if let Some(s) = q_star {
        if q_gzip == 0.0 && !mentions(headers, "gzip") {
            q_gzip = s;
        }
        if q_br == 0.0 && !mentions(headers, "br") {
            q_br = s;
        }
    }
    if has_br && q_br > 0.0 && q_br >= q_gzip {
        Encoding::Br
    } else if has_gzip && q_gzip > 0.0 {
        Encoding::Gzip
    } else if has_br && q_br > 0.0 {
        Encoding::Br
    } else {
        Encoding::Identity
    }
}

fn mentions(headers: &HeaderMap, coding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|i| i.split(';').next().unwrap_or("").trim() == coding)
        })
}

/// True when an `If-None-Match` list names this asset (any of its variants), weakly compared.
fn none_match(list: &str, asset: &Asset) -> bool {
    list.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let inner = tag.trim_matches('"');
        inner == asset.hash
            || inner.strip_suffix("-gz") == Some(asset.hash.as_str())
            || inner.strip_suffix("-br") == Some(asset.hash.as_str())
    })
}

async fn respond_with(asset: &Asset, method: &Method, headers: &HeaderMap) -> Response<Body> {
    let (has_gzip, has_br) = match &asset.content {
        Content::Memory { gzip, br, .. } => (gzip.is_some(), br.is_some()),
        Content::Disk { .. } => (false, false),
    };
    let wants_range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // A range is served from the identity encoding.
    let encoding = if wants_range.is_some() {
        Encoding::Identity
    } else {
        negotiate(headers, has_gzip, has_br)
    };
    let etag = match encoding {
        Encoding::Identity => &asset.etag,
        Encoding::Gzip => asset.etag_gzip.as_ref().unwrap_or(&asset.etag),
        Encoding::Br => asset.etag_br.as_ref().unwrap_or(&asset.etag),
    };

    let mut res = Response::new(Body::empty());
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, asset.content_type.clone());
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, asset.cache_control.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(lm) = &asset.last_modified {
        h.insert(header::LAST_MODIFIED, lm.clone());
    }
    if asset.has_variants() {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }

    // Conditional requests: If-None-Match wins over If-Modified-Since.
    let not_modified = if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        none_match(inm, asset)
    } else if let (Some(since), Some(modified)) = (
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok()),
        asset.modified,
    ) {
        // Whole seconds, as the header carries them.
        httpdate::fmt_http_date(modified) == httpdate::fmt_http_date(since) || modified <= since
    } else {
        false
    };
    if not_modified {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res.headers_mut().remove(header::CONTENT_TYPE);
        return res;
    }

    let len = asset.len();
    let mut range = wants_range.map_or(ByteRange::Full, |v| parse_byte_range(v, len));
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
        && if_range.trim() != asset.etag.to_str().unwrap_or("")
    {
        range = ByteRange::Full;
    }
    let (start, end) = match range {
        ByteRange::Full => (0, len.saturating_sub(1)),
        ByteRange::Part(s, e) => {
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            (s, e)
        }
        ByteRange::Unsatisfiable => {
            let mut r = respond::error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The requested range is not satisfiable.",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let partial = res.status() == StatusCode::PARTIAL_CONTENT;

    let body_len;
    let body = match &asset.content {
        Content::Memory { identity, gzip, br } => {
            let bytes = match (encoding, gzip, br) {
                (Encoding::Gzip, Some(g), _) => {
                    res.headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    g.clone()
                }
                (Encoding::Br, _, Some(b)) => {
                    res.headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
                    b.clone()
                }
                _ if partial => identity.slice(start as usize..=end as usize),
                _ => identity.clone(),
            };
            body_len = bytes.len() as u64;
            Body::from(bytes)
        }
        Content::Disk { path, len } => {
            body_len = if *len == 0 { 0 } else { end - start + 1 };
            if method == Method::HEAD {
                Body::empty()
            } else {
                match stream_file(path, start, body_len).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "static file vanished");
                        return respond::not_found();
                    }
                }
            }
        }
    };
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    if method == Method::HEAD {
        return res;
    }
    *res.body_mut() = body;
    res
}

async fn stream_file(path: &Path, start: u64, len: u64) -> std::io::Result<Body> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await?;
    }
    let stream = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left.min(STREAM_CHUNK as u64)).unwrap_or(STREAM_CHUNK);
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(Body::from_stream(stream))
}

fn load_asset(path: &Path, rel: &str, memory_max: u64) -> Result<Asset, SiteError> {
    let read_err = |source| SiteError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let modified = meta.modified().ok();
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let content_type = content_type(name);
    let compressible = compressible(&content_type);
    let mut hasher = Sha256::new();
    let content = if meta.len() > memory_max {
        let mut f = std::fs::File::open(path).map_err(read_err)?;
        let mut buf = vec![0u8; STREAM_CHUNK];
        loop {
            let n = f.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Content::Disk {
            path: path.to_owned(),
            len: meta.len(),
        }
    } else {
        let data = std::fs::read(path).map_err(read_err)?;
        hasher.update(&data);
        let (gzip, br) = if compressible && data.len() >= MIN_COMPRESS_BYTES {
            (gzip(&data), brotli(&data))
        } else {
            (None, None)
        };
        Content::Memory {
            identity: Bytes::from(data),
            gzip,
            br,
        }
    };
    let digest = hasher.finalize();
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..18]);
    let tag = |suffix: &str| HeaderValue::from_str(&format!("\"{hash}{suffix}\"")).ok();
    let (has_gzip, has_br) = match &content {
        Content::Memory { gzip, br, .. } => (gzip.is_some(), br.is_some()),
        Content::Disk { .. } => (false, false),
    };
    let cache_control = if name == "index.html" || !is_fingerprinted(name) {
        HeaderValue::from_static("no-cache")
    } else {
        HeaderValue::from_static("public, max-age=31536000, immutable")
    };
    Ok(Asset {
        content_type: HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        etag: tag("").unwrap_or(HeaderValue::from_static("\"0\"")),
        etag_gzip: if has_gzip { tag("-gz") } else { None },
        etag_br: if has_br { tag("-br") } else { None },
        hash,
        cache_control,
        last_modified: modified
            .and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok()),
        modified,
        content,
    })
}

fn content_type(name: &str) -> String {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let mime = match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8".to_owned(),
        Some("js" | "mjs") => "text/javascript; charset=utf-8".to_owned(),
        Some("css") => "text/css; charset=utf-8".to_owned(),
        Some("json" | "map") => "application/json".to_owned(),
        Some("webmanifest") => "application/manifest+json".to_owned(),
        Some("txt") => "text/plain; charset=utf-8".to_owned(),
        Some("svg") => "image/svg+xml".to_owned(),
        Some("wasm") => "application/wasm".to_owned(),
        Some("ico") => "image/x-icon".to_owned(),
        Some(_) => mime_guess::from_path(name)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_owned(),
        None => "application/octet-stream".to_owned(),
    };
    if mime.starts_with("text/") && !mime.contains("charset") {
        format!("{mime}; charset=utf-8")
    } else {
        mime
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || [
            "application/json",
            "application/manifest+json",
            "application/javascript",
            "application/xml",
            "application/wasm",
            "image/svg+xml",
            "image/x-icon",
            "font/ttf",
            "font/otf",
        ]
        .iter()
        .any(|t| content_type.starts_with(t))
}

/// A build tool's content hash in the name: `app.3f9a1c2b.js`, `index-BwA3x9Qk.js`.
pub(crate) fn is_fingerprinted(name: &str) -> bool {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    stem.split(['.', '-', '_']).skip(1).any(|part| {
        (8..=64).contains(&part.len())
            && part.bytes().all(|c| c.is_ascii_alphanumeric())
            && part.bytes().any(|c| c.is_ascii_digit())
            && (part.bytes().all(|c| c.is_ascii_hexdigit())
                || (part.bytes().any(|c| c.is_ascii_uppercase())
                    && part.bytes().any(|c| c.is_ascii_lowercase())))
    })
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).ok()?;
    let out = enc.finish().ok()?;
    worth(out, data.len())
}

fn brotli(data: &[u8]) -> Option<Bytes> {
    let quality = if data.len() > 1024 * 1024 { 9 } else { 11 };
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, quality, 22);
        w.write_all(data).ok()?;
        w.flush().ok()?;
    }
    worth(out, data.len())
}

fn worth(out: Vec<u8>, original: usize) -> Option<Bytes> {
    ((out.len() as f64) < (original as f64) * WORTH_COMPRESSING).then(|| Bytes::from(out))
}

/// A cheap fingerprint of the folder (names, sizes, modification times) to notice changes.
pub(crate) fn fingerprint(root: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            0u8.hash(&mut h);
            continue;
        };
        let mut list: Vec<_> = entries.filter_map(Result::ok).collect();
        list.sort_by_key(std::fs::DirEntry::file_name);
        for e in list {
            e.file_name().hash(&mut h);
            if let Ok(m) = std::fs::metadata(e.path()) {
                m.len().hash(&mut h);
                m.modified().ok().hash(&mut h);
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_folder() {
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/x%00.html",
            "/./x",
            "/%ff",
            "no-slash",
        ] {
            assert_eq!(normalise(bad), None, "{bad}");
        }
        assert_eq!(normalise("/").as_deref(), Some(""));
        assert_eq!(normalise("/a//b.js").as_deref(), Some("a/b.js"));
        assert_eq!(normalise("/dir/").as_deref(), Some("dir/"));
        assert_eq!(normalise("/h%C3%A9llo.txt").as_deref(), Some("héllo.txt"));
    }

    #[test]
    fn fingerprinted_names() {
        assert!(is_fingerprinted("app.3f9a1c2b.js"));
        assert!(is_fingerprinted("index-BwA3x9Qk.js"));
        assert!(!is_fingerprinted("index.html"));
        assert!(!is_fingerprinted("bootstrap.min.js"));
        assert!(!is_fingerprinted("favicon.ico"));
    }

    #[test]
    fn ranges() {
        let part = |v| match parse_byte_range(v, 100) {
            ByteRange::Part(a, b) => Some((a, b)),
            ByteRange::Full => Some((0, 99)),
            ByteRange::Unsatisfiable => None,
        };
        assert_eq!(part("bytes=0-9"), Some((0, 9)));
        assert_eq!(part("bytes=90-"), Some((90, 99)));
        assert_eq!(part("bytes=-10"), Some((90, 99)));
        assert_eq!(part("bytes=50-1000"), Some((50, 99)));
        assert_eq!(part("bytes=100-"), None);
        assert_eq!(part("bytes=9-3"), None);
        assert_eq!(part("bytes=-0"), None);
        assert_eq!(part("bytes=a-b"), None);
        assert_eq!(part("bytes=0-1,5-6"), Some((0, 99)));
    }

    #[test]
    fn encodings_follow_q_values() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
            m
        };
        assert_eq!(negotiate(&h("gzip, deflate, br"), true, true), Encoding::Br);
        assert_eq!(negotiate(&h("gzip"), true, true), Encoding::Gzip);
        assert_eq!(negotiate(&h("br;q=0, gzip"), true, true), Encoding::Gzip);
        assert_eq!(negotiate(&h("gzip;q=0"), true, false), Encoding::Identity);
        assert_eq!(negotiate(&h("*"), true, true), Encoding::Br);
        assert_eq!(negotiate(&h("identity"), true, true), Encoding::Identity);
        assert_eq!(negotiate(&HeaderMap::new(), true, true), Encoding::Identity);
    }
}
