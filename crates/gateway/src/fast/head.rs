//! The fast path's request head: parsed once from the read buffer (only plain, bodiless,
//! idempotent HTTP/1.1 heads the guard passes), and the upstream head written straight from it.

use std::net::IpAddr;

use super::MAX_HEADERS;
use crate::framing;

/// A request head the fast path takes, borrowed from the read buffer.
pub(super) struct Plain<'a> {
    pub(super) method: &'static str,
    pub(super) target: &'a str,
    pub(super) host: &'a str,
    pub(super) request_id: Option<&'a [u8]>,
    /// The client asked to close after this response.
    pub(super) close: bool,
    pub(super) headers: Vec<(&'a str, &'a [u8])>,
    /// Header names `Connection` lists (hop-by-hop for this message).
    pub(super) named: Vec<&'a str>,
}

impl<'a> Plain<'a> {
    pub(super) fn parse(head: &'a [u8], rules: &framing::Rules) -> Option<Plain<'a>> {
        // No body, no upgrade, nothing the guard refuses (it answers those on the general path).
        if !matches!(
            framing::judge(head, rules),
            framing::Verdict::NoBody | framing::Verdict::Length(0)
        ) {
            return None;
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            _ => return None,
        }
        if req.version != Some(1) {
            return None;
        }
        let method = match req.method? {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "OPTIONS" => "OPTIONS",
            "DELETE" => "DELETE",
            _ => return None,
        };
        let target = req.path?;
        if !target.starts_with('/') || http::uri::PathAndQuery::try_from(target).is_err() {
            return None;
        }
        let mut host = None;
        let mut request_id = None;
        let mut close = false;
        let mut named = Vec::new();
        let mut headers = Vec::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("host") {
                if host.is_some() {
                    return None;
                }
                host = Some(std::str::from_utf8(h.value).ok()?);
                continue;
            } else if name.eq_ignore_ascii_case("connection") {
                for token in std::str::from_utf8(h.value).ok()?.split(',') {
                    let token = token.trim();
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("upgrade") {
                        return None;
                    } else if !token.is_empty() && !token.eq_ignore_ascii_case("keep-alive") {
                        named.push(token);
                    }
                }
                continue;
            } else if name.eq_ignore_ascii_case("expect")
                || name.eq_ignore_ascii_case("upgrade")
                || name.eq_ignore_ascii_case("transfer-encoding")
            {
                return None;
            } else if name.eq_ignore_ascii_case("x-request-id") {
                request_id = Some(h.value);
                continue;
            }
            headers.push((name, h.value));
        }
        Some(Plain {
            method,
            target,
            host: host?,
            request_id,
            close,
            headers,
            named,
        })
    }

    /// The head sent upstream: origin-form target, the client's headers less hop-by-hop and
    /// forwarding ones, then the forwarding headers and the request id (as `set_forwarding`
    /// does for an untrusted peer on the general path).
    pub(super) fn write_upstream_head(
        &self,
        out: &mut Vec<u8>,
        path: &str,
        query: Option<&str>,
        (ip, ip_text): (IpAddr, &str),
        tls: bool,
        id: &[u8],
    ) {
        let proto: &[u8] = if tls { b"https" } else { b"http" };
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        if let Some(q) = query {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &self.headers {
            if is_hop_by_hop(name)
                || self.named.iter().any(|n| n.eq_ignore_ascii_case(name))
                || crate::proxy::names_the_client(name)
                || name.eq_ignore_ascii_case(crate::message::REFUSED_HEADER)
            {
                continue;
            }
            header_line(out, name.as_bytes(), value);
        }
        header_line(out, b"host", self.host.as_bytes());
        header_line(out, b"x-forwarded-for", ip_text.as_bytes());
        header_line(out, b"x-real-ip", ip_text.as_bytes());
        header_line(out, b"x-forwarded-proto", proto);
        header_line(out, b"x-forwarded-host", self.host.as_bytes());
        out.extend_from_slice(b"forwarded: for=");
        match ip {
            IpAddr::V4(_) => out.extend_from_slice(ip_text.as_bytes()),
            IpAddr::V6(_) => {
                out.extend_from_slice(b"\"[");
                out.extend_from_slice(ip_text.as_bytes());
                out.extend_from_slice(b"]\"");
            }
        }
        out.extend_from_slice(b";proto=");
        out.extend_from_slice(proto);
        if !self.host.is_empty() && self.host.bytes().all(|c| c.is_ascii_graphic() && c != b'"') {
            out.extend_from_slice(b";host=\"");
            out.extend_from_slice(self.host.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
        header_line(out, b"x-request-id", id);
        out.extend_from_slice(b"\r\n");
    }
}

pub(super) fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn is_hop_by_hop(name: &str) -> bool {
    crate::proxy::HOP_BY_HOP
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_bodiless_heads_take_the_fast_path() {
        let rules = framing::Rules {
            head_max: 32 * 1024,
            line_max: 8 * 1024,
            upgrades: vec!["websocket".into()],
            marker: "m".into(),
        };
        let ok = b"GET /api/x?y=1 HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Request-Id: abc\r\nX-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nX-Forwarded-Port: 1\r\nCF-Connecting-IP: 6.6.6.6\r\n\r\n";
        let p = Plain::parse(ok, &rules).expect("plain");
        assert_eq!(p.method, "GET");
        assert_eq!(p.target, "/api/x?y=1");
        assert_eq!(p.host, "a.example");
        assert_eq!(p.request_id, Some(&b"abc"[..]));
        let mut out = Vec::new();
        p.write_upstream_head(
            &mut out,
            "/api/x",
            Some("y=1"),
            ("10.0.0.1".parse().unwrap(), "10.0.0.1"),
            false,
            b"abc",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("GET /api/x?y=1 HTTP/1.1\r\n"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("x-drop"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("connection"), "{text}");
        assert!(text.contains("forwarded: for=10.0.0.1;proto=http;host=\"a.example\"\r\n"));
        assert!(text.contains("x-forwarded-for: 10.0.0.1\r\n"));
        assert!(text.contains("x-real-ip: 10.0.0.1\r\n"), "{text}");
        assert!(
            !text.contains("6.6.6.6"),
            "no client-supplied address: {text}"
        );
        assert!(
            !text.to_ascii_lowercase().contains("x-forwarded-port"),
            "{text}"
        );
        assert!(text.ends_with("x-request-id: abc\r\n\r\n"));
        let hosts = text.lines().filter(|l| l.starts_with("host:")).count();
        assert_eq!(hosts, 1, "one Host header: {text}");
        for bad in [
            &b"POST /x HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n",
            b"GET /x HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            b"GET /x HTTP/1.1\nHost: a\r\n\r\n",
            b"GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        ] {
            assert!(
                Plain::parse(bad, &rules).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
