//! The message rules a request must keep (RFC 9112 §3.2, RFC 9113 §8.3.1), and the answers
//! to the ones that break them. The HTTP/1 guard (`framing`) refuses heads before the parser
//! sees them and hands on a request of its own naming the refusal; `check` answers that one,
//! applies the same rules to HTTP/2 requests (one `Host`, agreeing with `:authority`, the line
//! limit), and gives an HTTP/1 request in absolute form its target's authority as its `Host`.

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Request, Response};

use crate::framing::Rules;
use crate::respond;

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its framing could be read two ways (smuggling), or its line ends are wrong.
    Framing,
    MissingHost,
    TwoHosts,
    BadHost,
    /// HTTP/2: a `Host` that differs from `:authority`.
    HostMismatch,
    LongRequestLine,
    LongHeaderLine,
    LargeHead,
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Refusal::Framing,
        Refusal::MissingHost,
        Refusal::TwoHosts,
        Refusal::BadHost,
        Refusal::HostMismatch,
        Refusal::LongRequestLine,
        Refusal::LongHeaderLine,
        Refusal::LargeHead,
    ];

    pub(crate) fn code(self) -> &'static str {
        match self {
            Refusal::Framing => "framing",
            Refusal::MissingHost => "missing-host",
            Refusal::TwoHosts => "two-hosts",
            Refusal::BadHost => "bad-host",
            Refusal::HostMismatch => "host-mismatch",
            Refusal::LongRequestLine => "long-request-line",
            Refusal::LongHeaderLine => "long-header-line",
            Refusal::LargeHead => "large-head",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }

    pub(crate) fn status(self) -> http::StatusCode {
        match self {
            Refusal::LongRequestLine => http::StatusCode::URI_TOO_LONG,
            Refusal::LongHeaderLine | Refusal::LargeHead => {
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Framing => {
                "The request's framing is ambiguous (Content-Length with Transfer-Encoding, or bare line ends)."
            }
            Refusal::MissingHost => "An HTTP/1.1 request needs a Host header.",
            Refusal::TwoHosts => "A request may have only one Host header.",
            Refusal::BadHost => "The Host header is not a host name.",
            Refusal::HostMismatch => "The Host header differs from the request's authority.",
            Refusal::LongRequestLine => "The request line is too long.",
            Refusal::LongHeaderLine => "A request header line is too long.",
            Refusal::LargeHead => "The request headers are too large.",
        }
    }

    /// The request handed to the parser in place of a refused head.
    pub(crate) fn request(self, marker: &str) -> Vec<u8> {
        format!(
            "GET / HTTP/1.1\r\nhost: refused.invalid\r\n{REFUSED_HEADER}: {marker} {}\r\nconnection: close\r\n\r\n",
            self.code()
        )
        .into_bytes()
    }
}

/// The header naming a refusal on the guard's own request.
pub(crate) const REFUSED_HEADER: &str = "pier-refused";

/// The refusal a request names, if the guard made it; `None` for a client's own header.
pub(crate) fn refusal_of(value: &http::HeaderValue, marker: &str) -> Option<Refusal> {
    let text = value.to_str().ok()?;
    let (token, code) = text.split_once(' ')?;
    if !crate::gateway::constant_time_eq(token.as_bytes(), marker.as_bytes()) {
        return None;
    }
    Refusal::from_code(code)
}

/// The answer to a request the HTTP/1 guard refused, or to an HTTP/2 request that breaks
/// the same rules (RFC 9113 §8.3.1: one `Host`, agreeing with `:authority`; the line limit).
/// An HTTP/1 request in absolute form gets its target's authority as its `Host`.
pub(crate) fn check(req: &mut Request<Body>, rules: &Rules) -> Option<Response<Body>> {
    let http2 = req.version() == http::Version::HTTP_2;
    let refusal = if let Some(v) = req.headers().get(REFUSED_HEADER) {
        let refusal = refusal_of(v, &rules.marker);
        if refusal.is_none() {
            // A client's own: it means nothing.
            req.headers_mut().remove(REFUSED_HEADER);
        }
        refusal
    } else if http2 {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let host = hosts.next();
        let line_max = rules.line_max;
        if hosts.next().is_some() {
            Some(Refusal::TwoHosts)
        } else if let (Some(h), Some(a)) = (host, req.uri().authority())
            && !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())
        {
            Some(Refusal::HostMismatch)
        } else if host.is_none() && req.uri().authority().is_none() {
            Some(Refusal::MissingHost)
        } else if req
            .headers()
            .iter()
            .any(|(k, v)| k.as_str().len() + v.len() + 2 > line_max)
        {
            Some(Refusal::LongHeaderLine)
        } else {
            None
        }
    } else {
        // An absolute-form target names the host; the Host header is ignored (RFC 9112
        // §3.2.2), so routes and upstreams see one host only.
        if let Some(a) = req.uri().authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            req.headers_mut().insert(header::HOST, v);
        }
        None
    };
    refusal.map(|r| {
        let mut res = respond::error(r.status(), r.message());
        respond::security_headers(res.headers_mut());
        // On HTTP/1 the connection cannot go on after a refused head; on HTTP/2 only the
        // stream ends.
        if !http2 {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_guards_marker_names_a_refusal() {
        let ours = http::HeaderValue::from_static("m4rk two-hosts");
        assert_eq!(refusal_of(&ours, "m4rk"), Some(Refusal::TwoHosts));
        for theirs in [
            "m4rx two-hosts",
            "two-hosts",
            "m4rk nonsense",
            "m4r two-hosts",
        ] {
            let v = http::HeaderValue::from_str(theirs).unwrap();
            assert_eq!(refusal_of(&v, "m4rk"), None, "{theirs}");
        }
    }
}
