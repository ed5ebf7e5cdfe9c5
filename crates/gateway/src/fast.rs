//! The proxy's fast path, for the requests a reverse proxy sees most: plain HTTP/1.1, no body,
//! an idempotent method, for an upstream pool of plain-HTTP members. Such a request is handled
//! on the client connection's own task: its head is parsed once, the upstream head is written
//! straight from it (hop-by-hop headers dropped, forwarding headers set) on a kept-alive
//! connection, and the response head is written back with the first part of its body in one
//! write; the rest of the body (by length, chunked, or to the end) is streamed as it arrives.
//!
//! Anything else (a body, an upgrade, `Expect`, HTTP/1.0, a head the smuggling guard does not
//! pass cleanly, a trusted proxy's forwarding headers to merge, a rate limit answer, or any
//! route but an upstream pool) hands the connection, with every byte read so far, to the
//! general path (hyper) for the rest of its life. Both paths answer alike; this one only does
//! less work for the common case.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use pier_ops::access_log;
use pier_ops::request_id;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::framing;
use crate::gateway::Gateway;
use crate::limit;
use crate::pool::{InFlight, Member, Pool};
use crate::respond;
use crate::routes::Target;

/// Headers parsed per head at most; a head with more goes the general way (which answers 431
/// past its own limit).
const MAX_HEADERS: usize = 96;
/// An upstream response head larger than this is refused (502).
const UPSTREAM_HEAD_MAX: usize = 64 * 1024;
/// Attempts per request at most (each on another member), as on the general path.
const MAX_ATTEMPTS: usize = 3;
/// Bytes asked of a socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// What the connection does after the fast path.
pub(crate) enum Next {
    /// Closed, or to be closed.
    Closed,
    /// The general path takes over, starting with these bytes.
    General(BytesMut),
}

/// A member's idle upstream connections for the fast path.
pub(crate) type RawIdle = crate::h1pool::IdleList<TcpStream>;

/// Serves requests on `stream` while they take the fast path.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    gw: &Gateway,
    stream: &mut S,
    peer: SocketAddr,
    tls: bool,
    mut stop: watch::Receiver<bool>,
) -> Next {
    // HTTPS answers carry HSTS, as on the general path.
    let hsts = if tls { gw.inner.hsts.clone() } else { None };
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut up_buf = BytesMut::with_capacity(READ_CHUNK);
    let ip_text = peer.ip().to_string();
    loop {
        if *stop.borrow() && buf.is_empty() {
            return Next::Closed;
        }
        let settings = gw.inner.settings.load();
        let head_len = match read_head(
            stream,
            &mut buf,
            settings.header_read_timeout,
            settings.max_header_bytes,
            &mut stop,
        )
        .await
        {
            Head::Complete(n) => n,
            Head::Closed => return Next::Closed,
            Head::General => return Next::General(buf),
        };
        let Some(req) = Plain::parse(&buf[..head_len], &settings.rules) else {
            return Next::General(buf);
        };
        if limit::trusted(&settings.trusted_proxies, peer.ip()) {
            return Next::General(buf);
        }
        let table = gw.inner.table.load();
        let host = crate::gateway::host_key(req.host);
        let (path, query) = match req.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (req.target, None),
        };
        let matched = table.route(&host, path);
        let route = matched.route;
        let Target::Pool(pool) = &route.target else {
            return Next::General(buf);
        };
        if !pool.members().iter().all(|m| m.direct.is_some()) {
            return Next::General(buf);
        }
        if let Some(limiter) = &route.limiter {
            let ip = peer.ip();
            if !limit::trusted(&settings.rate_limit_exempt, ip)
                && limiter.check(ip, Instant::now()).is_err()
            {
                // The general path answers the 429.
                return Next::General(buf);
            }
        }

        let timer = gw.inner.metrics.start();
        let generated;
        let id: &[u8] = match req.request_id {
            Some(v) if request_id::is_sane(v) => v,
            _ => {
                generated = gw.inner.ids.next();
                &generated
            }
        };
        out.clear();
        req.write_upstream_head(
            &mut out,
            matched.path.as_ref(),
            query,
            (peer.ip(), &ip_text),
            tls,
            id,
        );
        let sent = exchange(
            pool,
            &out,
            &mut up_buf,
            route.connect_timeout,
            route.response_timeout,
            req.method == "HEAD",
        )
        .await;
        let (status, bytes, keep) = match sent {
            Ok(mut res) => {
                out.clear();
                res.write_client_head(&mut out, id, req.close, hsts.as_ref());
                let status = res.status;
                match relay(stream, &mut out, &mut up_buf, &mut res).await {
                    Ok(bytes) => (status, bytes, !req.close && !res.close_client),
                    Err(bytes) => (status, bytes, false),
                }
            }
            Err(failure) => {
                out.clear();
                write_error(&mut out, failure.status, failure.message, id, req.close);
                if let Some(v) = &hsts {
                    insert_before_blank_line(&mut out, b"strict-transport-security", v.as_bytes());
                }
                let ok = stream.write_all(&out).await.is_ok();
                (failure.status, 0, ok && !req.close)
            }
        };
        let elapsed = timer.finish(req.method, &route.label, status, bytes);
        if settings.log_requests && access_log::enabled() {
            access_log::record(&access_log::Entry {
                request_id: std::str::from_utf8(id).unwrap_or_default(),
                method: req.method,
                route: &route.label,
                path,
                status,
                duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                bytes,
            });
        }
        drop(table);
        buf.advance(head_len);
        if !keep {
            let _ = stream.shutdown().await;
            return Next::Closed;
        }
    }
}

enum Head {
    /// The head ends here.
    Complete(usize),
    /// The client left, or took too long, before a whole head.
    Closed,
    /// Too large for this path.
    General,
}

/// Reads until `buf` holds a whole head.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    timeout: Duration,
    max: usize,
    stop: &mut watch::Receiver<bool>,
) -> Head {
    if let Some(n) = framing::head_end(buf) {
        return Head::Complete(n);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if buf.len() > max {
            return Head::General;
        }
        buf.reserve(READ_CHUNK);
        let idle = buf.is_empty();
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => r,
            // Stopping: an idle connection closes at once.
            _ = stop.changed(), if idle => return Head::Closed,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Head::Closed,
            Ok(Ok(_)) => {
                if let Some(n) = framing::head_end(buf) {
                    return Head::Complete(n);
                }
            }
        }
    }
}

/// A request head the fast path takes, borrowed from the read buffer.
struct Plain<'a> {
    method: &'static str,
    target: &'a str,
    host: &'a str,
    request_id: Option<&'a [u8]>,
    /// The client asked to close after this response.
    close: bool,
    headers: Vec<(&'a str, &'a [u8])>,
    /// Header names `Connection` lists (hop-by-hop for this message).
    named: Vec<&'a str>,
}

impl<'a> Plain<'a> {
    fn parse(head: &'a [u8], rules: &framing::Rules) -> Option<Plain<'a>> {
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
    fn write_upstream_head(
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

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn is_hop_by_hop(name: &str) -> bool {
    crate::proxy::HOP_BY_HOP
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// How an upstream response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// At the end of the connection.
    Close,
}

/// An upstream response whose head has been read.
struct Upstream {
    status: u16,
    /// The head as received (for its headers), up to the end of the head.
    head: BytesMut,
    framing: Framing,
    /// The upstream connection, while it may be kept.
    conn: Option<TcpStream>,
    reusable: bool,
    /// The client connection must close after this response (a body that ends with the
    /// upstream connection).
    close_client: bool,
    slot: InFlight,
}

impl Upstream {
    /// The client's response head: the upstream's status and headers less hop-by-hop ones,
    /// the request id, and the security headers where the upstream did not send them.
    fn write_client_head(
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
const SECURITY: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-xss-protection", "1; mode=block"),
];

struct Failure {
    status: u16,
    message: &'static str,
}

/// Sends `head` to a member of `pool` and reads the response head into `up_buf`, retrying on
/// other members as the general path does.
async fn exchange(
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
async fn attempt(
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
async fn read_response_head(conn: &mut TcpStream, up_buf: &mut BytesMut) -> Result<usize, usize> {
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

/// Status, body framing and whether the upstream keeps the connection, from a response head.
fn response_framing(head: &[u8], head_request: bool) -> Option<(u16, Framing, bool)> {
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

/// Writes `out` (the client head) and the body to the client. Ok with the body's size when
/// both ends are still usable; Err with the bytes sent when either failed.
async fn relay<S: AsyncWrite + Unpin>(
    client: &mut S,
    out: &mut Vec<u8>,
    up_buf: &mut BytesMut,
    res: &mut Upstream,
) -> Result<u64, u64> {
    let Some(mut conn) = res.conn.take() else {
        return Err(0);
    };
    let mut sent: u64 = 0;
    let mut chunks = ChunkTracker::default();
    // What of the body is already here goes out with the head.
    let mut done = match res.framing {
        Framing::Length(n) => {
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(up_buf.len());
            out.extend_from_slice(&up_buf[..take]);
            up_buf.advance(take);
            sent += take as u64;
            sent == n
        }
        Framing::Chunked => {
            let used = chunks.feed(up_buf);
            out.extend_from_slice(&up_buf[..used]);
            up_buf.advance(used);
            sent += used as u64;
            chunks.done()
        }
        Framing::Close => {
            out.extend_from_slice(up_buf);
            sent += up_buf.len() as u64;
            up_buf.clear();
            false
        }
    };
    if client.write_all(out).await.is_err() {
        return Err(sent);
    }
    while !done {
        up_buf.clear();
        up_buf.reserve(READ_CHUNK);
        let n = match conn.read_buf(up_buf).await {
            Ok(0) => {
                if res.framing == Framing::Close {
                    break;
                }
                // The upstream left mid-body: the client cannot be told but by closing.
                return Err(sent);
            }
            Ok(n) => n,
            Err(_) => return Err(sent),
        };
        let take = match res.framing {
            Framing::Length(total) => {
                let left = usize::try_from(total - sent).unwrap_or(usize::MAX);
                let take = n.min(left);
                done = sent + take as u64 == total;
                take
            }
            Framing::Chunked => {
                let used = chunks.feed(up_buf);
                done = chunks.done();
                used
            }
            Framing::Close => n,
        };
        if client.write_all(&up_buf[..take]).await.is_err() {
            return Err(sent);
        }
        sent += take as u64;
        // Anything left past the body's end keeps the connection from being reused.
        up_buf.advance(take);
    }
    if res.reusable && up_buf.is_empty() {
        res.slot.member().raw.push(conn);
    }
    Ok(sent)
}

/// Follows a chunked body's framing to find where it ends (the bytes pass through as they
/// are).
#[derive(Default)]
struct ChunkTracker {
    state: ChunkState,
    /// A size or trailer line not yet whole.
    line: Vec<u8>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    /// The CR LF after a chunk's data.
    DataEnd(u8),
    Trailers,
    Done,
    /// Not chunked after all: treated as ending with the connection.
    Broken,
}

impl ChunkTracker {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes what belongs to the body from the front of `bytes`; returns how much.
    fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                ChunkState::Done => return i,
                ChunkState::Broken => return bytes.len(),
                ChunkState::Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd(0)
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if bytes[i] != want {
                        self.state = ChunkState::Broken;
                        continue;
                    }
                    i += 1;
                    self.state = if seen == 0 {
                        ChunkState::DataEnd(1)
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Size | ChunkState::Trailers => {
                    let b = bytes[i];
                    i += 1;
                    if b != b'\n' {
                        if self.line.len() > 4096 {
                            self.state = ChunkState::Broken;
                        } else {
                            self.line.push(b);
                        }
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if self.state == ChunkState::Trailers {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let digits: &[u8] = line.split(|c| *c == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| u64::from_str_radix(d.trim(), 16).ok());
                    self.state = match size {
                        Some(0) => ChunkState::Trailers,
                        Some(n) => ChunkState::Data(n),
                        None => ChunkState::Broken,
                    };
                }
            }
        }
        i
    }
}

/// Adds a header to a whole response in `out` (a head, its empty line, a body).
fn insert_before_blank_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if let Some(end) = framing::head_end(out) {
        let mut line = Vec::with_capacity(name.len() + value.len() + 4);
        header_line(&mut line, name, value);
        let at = end - 2;
        out.splice(at..at, line);
    }
}

/// PocketBase's JSON error, as a whole response.
fn write_error(out: &mut Vec<u8>, status: u16, message: &str, id: &[u8], close: bool) {
    let body = format!(
        "{{\"data\":{{}},\"message\":{},\"status\":{status}}}",
        respond::json_string(message)
    );
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    header_line(out, b"content-type", b"application/json");
    header_line(out, b"content-length", body.len().to_string().as_bytes());
    for (n, v) in SECURITY {
        header_line(out, n.as_bytes(), v.as_bytes());
    }
    header_line(out, b"x-request-id", id);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// A stream that first yields bytes read from it before (the fast path's, when the general
/// path takes over).
pub(crate) struct Rewind<S> {
    prefix: bytes::Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(prefix: bytes::Bytes, inner: S) -> Rewind<S> {
        Rewind { prefix, inner }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let part = self.prefix.split_to(n);
            buf.put_slice(&part);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_tracking_finds_the_end_in_any_pieces() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for step in 1..body.len() {
            let mut t = ChunkTracker::default();
            let mut used = 0;
            for piece in body.chunks(step) {
                if t.done() {
                    break;
                }
                used += t.feed(piece);
            }
            assert!(t.done(), "step {step}");
            assert_eq!(used, body.len() - 4, "step {step}");
        }
        let mut t = ChunkTracker::default();
        t.feed(b"zz\r\n");
        assert!(!t.done());
        assert_eq!(
            t.feed(b"more"),
            4,
            "a broken body runs to the connection's end"
        );
    }

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
