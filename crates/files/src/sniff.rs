//! What a file is: its MIME type read from its first bytes (for a field's `mimeTypes` check,
//! which must not trust the name or the declared type), the type it is served with (from its
//! stored extension), and whether a browser may show it inline.

/// The MIME type of content starting with `head`, without parameters: magic numbers first
/// (`infer`), then the text formats a browser would run or parse (HTML, SVG, XML, JSON), then
/// `text/plain` for UTF-8 text and `application/octet-stream` for the rest.
pub fn detect(head: &[u8]) -> &'static str {
    if let Some(t) = infer::get(head) {
        return t.mime_type();
    }
    if head.is_empty() {
        return "text/plain";
    }
    // Text: valid UTF-8 (a cut last character is allowed) and no NUL.
    let text = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return "application/octet-stream",
    };
    if text.contains('\0') {
        return "application/octet-stream";
    }
    let t = text.trim_start_matches('\u{feff}').trim_start();
    let lower: String = t.chars().take(512).collect::<String>().to_ascii_lowercase();
    if lower.starts_with("<svg") || (lower.starts_with("<?xml") && lower.contains("<svg")) {
        return "image/svg+xml";
    }
    if lower.starts_with("<!doctype html")
        || [
            "<html", "<head", "<body", "<script", "<iframe", "<div", "<p>", "<a ",
        ]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return "text/html";
    }
    if lower.starts_with("<?xml") {
        return "text/xml";
    }
    if (t.starts_with('{') || t.starts_with('[')) && serde_json_like(t) {
        return "application/json";
    }
    "text/plain"
}

/// A cheap check that `t` looks like a JSON document (balanced brackets outside strings).
fn serde_json_like(t: &str) -> bool {
    let (mut depth, mut in_str, mut esc) = (0i64, false, false);
    for c in t.chars() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    // A cut head may leave brackets open.
    depth >= 0
}

/// The usual extension of content starting with `head`, for uploads whose name has none.
pub fn extension_for(head: &[u8]) -> Option<&'static str> {
    if let Some(t) = infer::get(head) {
        return Some(t.extension());
    }
    Some(match detect(head) {
        "image/svg+xml" => "svg",
        "text/html" => "html",
        "text/xml" => "xml",
        "application/json" => "json",
        "text/plain" => "txt",
        _ => return None,
    })
}

/// True when `detected` satisfies one of `allowed` (types compared without parameters and
/// case; `image/jpg` is `image/jpeg`).
pub fn allowed(detected: &str, allowed: &[String]) -> bool {
    let norm = |m: &str| {
        let m = m
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match m.as_str() {
            "image/jpg" | "image/pjpeg" => "image/jpeg".to_owned(),
            "text/xml" => "application/xml".to_owned(),
            _ => m,
        }
    };
    let d = norm(detected);
    allowed.iter().any(|a| norm(a) == d)
}

/// The `Content-Type` a stored file is served with, from its name's extension (the content was
/// checked at upload; `nosniff` keeps browsers to this type).
pub fn served_type(name: &str) -> String {
    let m = mime_guess::from_path(name).first_or_octet_stream();
    if m.type_() == "text" || m.essence_str() == "application/json" || m.subtype() == "xml" {
        format!("{}; charset=utf-8", m.essence_str())
    } else {
        m.essence_str().to_owned()
    }
}

/// Types a browser shows inline without running anything in pier's origin; everything else
/// is served as an attachment (PocketBase's list).
pub fn inline(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    matches!(
        essence,
        "image/png"
            | "image/jpg"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/x-icon"
            | "image/bmp"
            | "image/avif"
            | "video/webm"
            | "video/mp4"
            | "video/3gpp"
            | "video/quicktime"
            | "video/x-ms-wmv"
            | "audio/basic"
            | "audio/aiff"
            | "audio/mpeg"
            | "audio/midi"
            | "audio/mp3"
            | "audio/wave"
            | "audio/wav"
            | "audio/x-wav"
            | "audio/x-mpeg"
            | "audio/x-m4a"
            | "audio/aac"
            | "application/pdf"
            | "application/x-pdf"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_not_the_name() {
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(detect(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(detect(b"hello"), "text/plain");
        assert_eq!(
            detect(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            "image/svg+xml"
        );
        assert_eq!(detect(b"<!DOCTYPE html><html>"), "text/html");
        assert_eq!(detect(b"{\"a\": [1, 2]}"), "application/json");
        assert_eq!(detect(b"\0\x01\x02\xff\xfe"), "application/octet-stream");
        assert!(allowed("image/jpeg", &["image/jpg".into()]));
        assert!(!allowed("text/plain", &["image/png".into()]));
    }

    #[test]
    fn served_types_and_inline() {
        assert_eq!(served_type("a_x.png"), "image/png");
        assert_eq!(served_type("a_x.txt"), "text/plain; charset=utf-8");
        assert_eq!(served_type("a_x"), "application/octet-stream");
        assert!(inline("image/png"));
        assert!(!inline("text/html; charset=utf-8"));
        assert!(!inline("image/svg+xml"));
    }
}
