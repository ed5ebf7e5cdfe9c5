//! The page `/` shows while no frontend folder exists: what pier is, links to the dashboard,
//! the docs and the health check, and how to point pier at a frontend build. It never stands in
//! for a real frontend (once the folder exists the site is served as before, and the folder is
//! watched, so the page goes when the build arrives) and never answers under `/api/`.

use std::path::Path;

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response};

const TEMPLATE: &str = include_str!("assets/welcome.html");

/// The page has no script; its one stylesheet is inline.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// The page for a missing `public_dir`, which it names.
pub(crate) fn page(public_dir: &Path) -> Bytes {
    let shown = escape(&public_dir.display().to_string());
    Bytes::from(TEMPLATE.replace("{{PUBLIC_DIR}}", &shown))
}

/// Answers a GET or HEAD for `/` with the page.
pub(crate) fn respond(page: &Bytes, method: &Method) -> Response<Body> {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(page.clone())
    };
    let mut res = Response::new(body);
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(page.len()));
    // Not cached: the real frontend replaces it as soon as its folder appears.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    res
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_named_and_escaped() {
        let page = page(Path::new("/srv/<app>&co"));
        let text = std::str::from_utf8(&page).unwrap();
        assert!(
            text.contains("<code>/srv/&lt;app&gt;&amp;co</code>"),
            "{text}"
        );
        assert!(!text.contains("{{"), "every placeholder is filled");
        for link in ["href=\"/_/\"", "href=\"/docs\"", "href=\"/api/health\""] {
            assert!(text.contains(link), "{link}");
        }
    }
}
