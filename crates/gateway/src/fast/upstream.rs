//! The fast path's upstream exchange: a kept connection to a member, the head written, the
//! response head read and judged (status, body framing, reuse), retries on other members, and
//! the client's response head written from the upstream's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::head::{header_line, is_hop_by_hop};
use super::{MAX_ATTEMPTS, MAX_HEADERS, READ_CHUNK, UPSTREAM_HEAD_MAX};
use crate::framing;
use crate::pool::{InFlight, Member, Pool};

/// How an upstream response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length(u64),
    Chunked,
    /// At the end of the connection.
    Close,
}

/// An upstream response whose head has been read.
pub(super) struct Upstream {
    pub(super) status: u16,
    /// The head as received (for its headers), up to the end of the head.
    pub(super) head: BytesMut,
    pub(super) framing: Framing,
    /// The upstream connection, while it may be kept.
    pub(super) conn: Option<TcpStream>,
    pub(super) reusable: bool,
    /// The client connection must close after this response (a body that ends with the
    /// upstream connection).
    pub(super) close_client: bool,
    pub(super) slot: InFlight,
}

impl Upstream {
    /// The client's response head: the upstream's status and headers less hop-by-hop ones,
    /// the request id, and the security headers where the upstream did not send them.
    pub(super) fn write_client_head(
        &mut self,
        out: &mut Vec<u8>,
        id: &[u8],
        close: bool,
        hsts: Option<&http::HeaderValue>,
    ) {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut slots);
        // Parsed before: this cannot fail now.
        let _ = res.parse(&self.head);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        let reason = res
            .reason
            .filter(|r| !r.is_empty())
            .or_else(|| {
                http::StatusCode::from_u16(self.status)
                    .ok()?
                    .canonical_reason()
            })
            .unwrap_or("");
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut named: Vec<&str> = Vec::new();
        for h in res.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection")
                && let Ok(v) = std::str::from_utf8(h.value)
            {
                named.extend(v.split(',').map(str::trim).filter(|t| !t.is_empty()));
            }
        }
        let mut seen = [false; 3];
        for h in res.headers.iter() {
            let name = h.name;
            let keep_framing =
                name.eq_ignore_ascii_case("transfer-encoding") && self.framing == Framing::Chunked;
            // A chunked body's length is its framing's, not a header's (RFC 9112 §6.3).
            let stale_length =
                name.eq_ignore_ascii_case("content-length") && self.framing == Framing::Chunked;
            if (is_hop_by_hop(name) && !keep_framing)
                || stale_length
                || named.iter().any(|n| n.eq_ignore_ascii_case(name))
                || name.eq_ignore_ascii_case("x-request-id")
                || name.eq_ignore_ascii_case(crate::DRAINING_HEADER.as_str())
            {
                continue;
            }
            for (i, (n, _)) in SECURITY.iter().enumerate() {
                if name.eq_ignore_ascii_case(n) {
                    seen[i] = true;
                }
            }
            header_line(out, name.as_bytes(), h.value);
        }
        for (i, (n, v)) in SECURITY.iter().enumerate() {
            if !seen[i] {
                header_line(out, n.as_bytes(), v.as_bytes());
            }
        }
        header_line(out, b"x-request-id", id);
        if let Some(v) = hsts
            && !res
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("strict-transport-security"))
        {
            header_line(out, b"strict-transport-security", v.as_bytes());
        }
        if close || self.close_client {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The headers `respond::security_headers` adds, in the same order.
pub(super) const SECURITY: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-xss-protection", "1; mode=block"),
];

pub(super) struct Failure {
    pub(super) status: u16,
    pub(super) message: &'static str,
}

/// Sends `head` to a member of `pool` and reads the response head into `up_buf`, retrying on
/// other members as the general path does.
pub(super) async fn exchange(
    pool: &Arc<Pool>,
    head: &[u8],
    up_buf: &mut BytesMut,
    connect_timeout: Duration,
    response_timeout: Duration,
    head_request: bool,
) -> Result<Upstream, Failure> {
    let idle_timeout = pool.settings().idle_timeout;
    let mut tried: Vec<Arc<Member>> = Vec::new();
    let mut last = Failure {
        status: 502,
        message: "The upstream server is unavailable.",
    };
    for _ in 0..MAX_ATTEMPTS {
        let Some(slot) = pool.pick(&tried) else {
            break;
        };
        let member = slot.member().clone();
        tried.push(member.clone());
        let Some(addr) = member.direct else {
            break;
        };
        let attempt = tokio::time::timeout(
            response_timeout,
            attempt(&member, addr, head, up_buf, connect_timeout, idle_timeout),
        )
        .await;
        let (conn, head_len) = match attempt {
            Ok(Ok(done)) => done,
            Ok(Err(why)) => {
                pool.failed(&member);
                tracing::warn!(pool = %pool.name, member = %member.label, error = why, "upstream request failed");
                last = Failure {
                    status: 502,
                    message: "The upstream server is unavailable.",
                };
                continue;
            }
            Err(_) => {
                pool.failed(&member);
                tracing::warn!(pool = %pool.name, member = %member.label, "upstream response timed out");
                last = Failure {
                    status: 504,
                    message: "The upstream server took too long to respond.",
                };
                continue;
            }
        };
        let head_bytes = up_buf.split_to(head_len);
        let Some((status, framing, upstream_keep)) = response_framing(&head_bytes, head_request)
        else {
            pool.failed(&member);
            last = Failure {
                status: 502,
                message: "The upstream server failed.",
            };
            up_buf.clear();
            continue;
        };
        if status >= 500 {
            pool.failed(&member);
            if matches!(status, 502..=504) && pool.members().len() > tried.len() {
                last = Failure {
                    status,
                    message: "The upstream server failed.",
                };
                up_buf.clear();
                continue;
            }
        } else {
            pool.succeeded(&member);
        }
        // pier writes its header names in lower case; a draining backend leaves the pool now.
        if head_bytes.windows(DRAINING.len()).any(|w| w == DRAINING) {
            pool.draining(&member);
        }
        return Ok(Upstream {
            status,
            head: head_bytes,
            framing,
            conn: Some(conn),
            reusable: upstream_keep && framing != Framing::Close,
            close_client: framing == Framing::Close,
            slot,
        });
    }
    if tried.is_empty() {
        return Err(Failure {
            status: 503,
            message: "No upstream server is available.",
        });
    }
    Err(last)
}

/// One member: a kept connection (a fresh one if the kept one turns out closed), the head
/// written, the response head read (informational responses skipped). Returns the connection
/// and the length of the head at the front of `up_buf`; or why nothing usable came back (the
/// request, which is idempotent, may then go to another member).
pub(super) async fn attempt(
    member: &Member,
    addr: SocketAddr,
    head: &[u8],
    up_buf: &mut BytesMut,
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> Result<(TcpStream, usize), &'static str> {
    let mut reused = member.raw.pop(idle_timeout);
    loop {
        let fresh = reused.is_none();
        let mut conn = match reused.take() {
            Some(c) => c,
            None => match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(c)) => {
                    let _ = c.set_nodelay(true);
                    c
                }
                Ok(Err(_)) => return Err("connect failed"),
                Err(_) => return Err("connect timed out"),
            },
        };
        up_buf.clear();
        let sent = conn.write_all(head).await;
        let got = match sent {
            Ok(()) => read_response_head(&mut conn, up_buf).await,
            Err(_) => Err(0),
        };
        match got {
            Ok(n) => return Ok((conn, n)),
            // A kept connection the upstream had closed: once more on a new one.
            Err(0) if !fresh => {}
            Err(0) => return Err("connection closed before a response"),
            Err(_) => return Err("incomplete response head"),
        }
    }
}

/// Reads a final response head (skipping 1xx ones) into `up_buf`: its length, or the bytes
/// read before the connection failed.
pub(super) async fn read_response_head(
    conn: &mut TcpStream,
    up_buf: &mut BytesMut,
) -> Result<usize, usize> {
    let mut received = 0;
    loop {
        if let Some(n) = framing::head_end(up_buf) {
            let informational = up_buf.len() >= 12
                && up_buf.starts_with(b"HTTP/1.")
                && up_buf[9] == b'1'
                && &up_buf[9..12] != b"101";
            if informational {
                up_buf.advance(n);
                continue;
            }
            return Ok(n);
        }
        if up_buf.len() > UPSTREAM_HEAD_MAX {
            return Err(received.max(1));
        }
        up_buf.reserve(READ_CHUNK);
        match conn.read_buf(up_buf).await {
            Ok(0) | Err(_) => return Err(received),
            Ok(n) => received += n,
        }
    }
}

/// The header a draining backend sends (`crate::DRAINING_HEADER`), as a line starts.
const DRAINING: &[u8] = b"\nx-pier-draining:";

/// Status, body framing and whether the upstream keeps the connection, from a response head.
pub(super) fn response_framing(head: &[u8], head_request: bool) -> Option<(u16, Framing, bool)> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    match res.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let status = res.code?;
    if status == 101 {
        // Nothing asked for an upgrade.
        return None;
    }
    let mut keep = res.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = std::str::from_utf8(h.value).ok()?;
            let last = v.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = std::str::from_utf8(h.value).ok()?;
            if v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")) {
                keep = false;
            }
        }
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            // Another final coding: delimited by the connection's end.
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    // A HEAD response may carry a length with no body; anything else length-less and
    // body-less is fine too.
    Some((status, framing, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(head: &[u8], framing: Framing) -> Upstream {
        let pool = Pool::new(
            "t".into(),
            &["http://127.0.0.1:1".parse().unwrap()],
            crate::pool::PoolSettings {
                balance: pier_config::Balance::RoundRobin,
                health: None,
                eject_after: 5,
                eject_for: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(1),
            },
        );
        let (status, _, _) = response_framing(head, false).unwrap();
        Upstream {
            status,
            head: BytesMut::from(head),
            framing,
            conn: None,
            reusable: false,
            close_client: framing == Framing::Close,
            slot: pool.pick(&[]).unwrap(),
        }
    }

    #[test]
    fn client_heads_lose_hop_by_hop_headers_and_gain_the_security_ones() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nConnection: x-private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\nX-Frame-Options: DENY\r\nX-Request-Id: upstream\r\n\r\n";
        let mut out = Vec::new();
        let hsts = http::HeaderValue::from_static("max-age=60");
        answer(head, Framing::Chunked).write_client_head(&mut out, b"mine", false, Some(&hsts));
        let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert!(
            !text.contains("content-length"),
            "a chunked body's length goes: {text}"
        );
        assert!(
            !text.contains("x-private") && !text.contains("keep-alive"),
            "{text}"
        );
        assert!(!text.contains("connection"), "{text}");
        assert_eq!(
            text.matches("x-frame-options").count(),
            1,
            "the upstream's kept: {text}"
        );
        assert!(text.contains("x-frame-options: deny\r\n"), "{text}");
        assert!(
            text.contains("x-content-type-options: nosniff\r\n"),
            "{text}"
        );
        assert!(
            text.contains("x-request-id: mine\r\n") && !text.contains("upstream"),
            "{text}"
        );
        assert!(
            text.contains("strict-transport-security: max-age=60\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"), "{text}");

        let mut out = Vec::new();
        answer(b"HTTP/1.1 200 OK\r\n\r\n", Framing::Close)
            .write_client_head(&mut out, b"i", false, None);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("connection: close\r\n"),
            "ends with the connection: {text}"
        );
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let f = response_framing;
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            Some((200, Framing::Length(5), true))
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            Some((200, Framing::Length(0), true))
        );
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            Some((200, Framing::Chunked, true))
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false),
            Some((200, Framing::Close, false))
        );
        assert_eq!(
            f(b"HTTP/1.0 204 No Content\r\n\r\n", false),
            Some((204, Framing::Length(0), false))
        );
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                false
            ),
            None
        );
    }
}
