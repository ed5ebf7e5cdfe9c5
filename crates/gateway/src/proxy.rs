//! Forwarding one request to an upstream: header hygiene, forwarding headers, retries over a
//! pool, WebSocket tunnels, streamed bodies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::pool::Pool;
use crate::respond;

/// The client every pool and outside API shares: HTTP/1.1 keep-alive (HTTP/2 when an https
/// upstream offers it by ALPN), TLS with the web's roots.
pub(crate) type Client =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// Bodies up to this size with a known length are buffered so a failed attempt can be replayed.
const REPLAYABLE_MAX: u64 = 1024 * 1024;
/// Attempts per request at most (each on another member).
const MAX_ATTEMPTS: usize = 3;

fn client(connect_timeout: Duration, idle_timeout: Duration, h2c: bool) -> Client {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle_timeout)
        .pool_max_idle_per_host(256)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .http2_only(h2c)
        .build(https)
}

/// The gateway's clients: HTTP/1.1 (HTTP/2 where an https upstream offers it by ALPN), and
/// HTTP/2 by prior knowledge for `h2c://` members.
pub(crate) struct Clients {
    pub(crate) any: Client,
    pub(crate) h2c: Client,
}

impl Clients {
    pub(crate) fn new(connect_timeout: Duration, idle_timeout: Duration) -> Clients {
        Clients {
            any: client(connect_timeout, idle_timeout, false),
            h2c: client(connect_timeout, idle_timeout, true),
        }
    }

    /// The client that speaks `m`'s protocol.
    pub(crate) fn for_member(&self, m: &crate::pool::Member) -> &Client {
        if m.h2c { &self.h2c } else { &self.any }
    }
}

/// How the gateway received the request, for the forwarding headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// The peer is a trusted proxy: its forwarding headers are kept and extended.
    pub(crate) trusted: bool,
    pub(crate) tls: bool,
}

/// What a proxied route asks of the forwarding.
pub(crate) struct Forward<'a> {
    pub(crate) pool: &'a Pool,
    /// Path and query to send (the route may have stripped its prefix).
    pub(crate) path_and_query: String,
    pub(crate) response_timeout: Duration,
    pub(crate) body_limit: u64,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_id: Option<&'a HeaderValue>,
    /// Which upgrades are passed on.
    pub(crate) rules: &'a crate::framing::Rules,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), removed in both directions; `HTTP2-Settings` only
/// means something on an h2c upgrade, which is never passed on.
pub(crate) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "http2-settings",
];

/// Headers that name the client's address, protocol or host, or rewrite the target, as
/// proxies and CDNs set them; from anyone but a trusted proxy they are lies, so they are
/// removed (and the gateway's own forwarding headers set). Every `X-Forwarded-*` counts.
const CLIENT_IDENTITY: [&str; 16] = [
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-original-host",
    "x-original-url",
    "x-rewrite-url",
];

/// Removes every header that names the client.
pub(crate) fn drop_client_identity(h: &mut HeaderMap) {
    // An empty Vec does not allocate: honest requests cost one pass over their names.
    let lies: Vec<HeaderName> = h
        .keys()
        .filter(|k| names_the_client(k.as_str()))
        .cloned()
        .collect();
    for name in lies {
        h.remove(name);
    }
}

/// Whether a header names the client (see `CLIENT_IDENTITY`).
pub(crate) fn names_the_client(name: &str) -> bool {
    let prefix = "x-forwarded-";
    (name.len() > prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix))
        || name.eq_ignore_ascii_case("x-host")
        || CLIENT_IDENTITY.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Removes hop-by-hop headers, and the ones `Connection` names.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

/// The `Upgrade` to pass on: asked for with `Connection: upgrade`, and of a protocol the
/// rules allow. Any other is dropped with the hop-by-hop headers.
fn is_upgrade(h: &HeaderMap, rules: &crate::framing::Rules) -> Option<HeaderValue> {
    let connection_upgrade = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if connection_upgrade {
        h.get(header::UPGRADE)
            .filter(|v| rules.allows_upgrade(v.as_bytes()))
            .cloned()
    } else {
        None
    }
}

/// Sets `X-Forwarded-For/Proto/Host`, `Forwarded` and `X-Real-IP`; a trusted peer's values
/// are extended or kept, anyone else's removed with every other header that names the client.
pub(crate) fn set_forwarding(h: &mut HeaderMap, peer: &Peer, host: Option<&HeaderValue>) {
    let ip = peer.addr.ip();
    if !peer.trusted {
        drop_client_identity(h);
    }
    let proto = if peer.tls { "https" } else { "http" };
    let ip_text = match ip {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => v.to_string(),
    };
    let xff = if peer.trusted {
        let prior: Vec<&str> = h
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if prior.is_empty() {
            ip_text.clone()
        } else {
            format!("{}, {ip_text}", prior.join(", "))
        }
    } else {
        ip_text.clone()
    };
    let forwarded_for = match ip {
        IpAddr::V4(_) => ip_text.clone(),
        IpAddr::V6(_) => format!("\"[{ip_text}]\""),
    };
    let host_text = host.and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut element = format!("for={forwarded_for};proto={proto}");
    if !host_text.is_empty() && host_text.bytes().all(|c| c.is_ascii_graphic() && c != b'"') {
        element.push_str(&format!(";host=\"{host_text}\""));
    }
    let forwarded = match (
        peer.trusted,
        h.get(header::FORWARDED).and_then(|v| v.to_str().ok()),
    ) {
        (true, Some(prior)) => format!("{prior}, {element}"),
        _ => element,
    };
    let keep = |h: &HeaderMap, name: &str| peer.trusted && h.contains_key(name);
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    if !keep(h, "x-forwarded-proto") {
        h.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    }
    if !keep(h, "x-forwarded-host") {
        match host {
            Some(v) => {
                h.insert("x-forwarded-host", v.clone());
            }
            None => {
                h.remove("x-forwarded-host");
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        h.insert(header::FORWARDED, v);
    }
    if !keep(h, "x-real-ip")
        && let Ok(v) = HeaderValue::from_str(&ip_text)
    {
        h.insert("x-real-ip", v);
    }
}

enum Outbound {
    /// No body, or a small one held in memory: can be sent again.
    Replayable(Bytes),
    /// Streamed: only the first attempt can carry it.
    Stream(Option<Body>),
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Sends `req` to a member of the pool, retrying on another member when the request was never
/// sent, or when it is idempotent and its body can be replayed.
pub(crate) async fn forward(
    clients: &Clients,
    fwd: Forward<'_>,
    req: Request<Body>,
    peer: &Peer,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let upgrade = is_upgrade(&parts.headers, fwd.rules);
    // The client side of a tunnel, which hyper completes once the 101 is sent.
    let client_upgrade = if upgrade.is_some() {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };

    // Set when the client's streamed body fails: then the fault is the client's (400, or 413
    // past the limit), not the upstream's, and the upstream never got a whole request.
    let client_body = Arc::new(AtomicU8::new(BODY_OK));
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > fwd.body_limit) {
        return respond::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.",
        );
    }
    let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
    let mut outbound = if upgrade.is_some() || (declared.unwrap_or(0) == 0 && !chunked) {
        Outbound::Replayable(Bytes::new())
    } else if declared.is_some_and(|n| n <= REPLAYABLE_MAX) {
        match http_body_util::Limited::new(
            body,
            usize::try_from(fwd.body_limit).unwrap_or(usize::MAX),
        )
        .collect()
        .await
        {
            Ok(c) => Outbound::Replayable(c.to_bytes()),
            Err(_) => {
                return respond::error(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read.",
                );
            }
        }
    } else {
        let limit = usize::try_from(fwd.body_limit).unwrap_or(usize::MAX);
        Outbound::Stream(Some(Body::new(Watched {
            inner: http_body_util::Limited::new(body, limit),
            broken: client_body.clone(),
        })))
    };

    let host = parts.headers.get(header::HOST).cloned();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    set_forwarding(&mut headers, peer, host.as_ref());
    if let Some(id) = fwd.request_id {
        headers.insert("x-request-id", id.clone());
    }
    if let Some(u) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, u.clone());
    }

    let may_retry_after_send = idempotent(&parts.method);
    // A realtime client lives on the backend its stream is open on, and the subscribe request
    // may reach another: each answers 404 for a client it does not hold, so the next member is
    // asked, until one holds it (setting a client's topics twice is harmless).
    let subscribe = parts.method == Method::POST
        && fwd.path_and_query.split('?').next() == Some("/api/realtime");
    let attempts = if subscribe {
        fwd.pool.members().len().max(MAX_ATTEMPTS)
    } else {
        MAX_ATTEMPTS
    };
    let mut tried = Vec::new();
    let mut last_error = (
        StatusCode::BAD_GATEWAY,
        "The upstream server is unavailable.",
    );
    for _ in 0..attempts {
        let Some(slot) = fwd.pool.pick(&tried) else {
            break;
        };
        let member = slot.member().clone();
        tried.push(member.clone());
        let uri: Uri = match format!(
            "{}{}",
            member.base.to_string().trim_end_matches('/'),
            fwd.path_and_query
        )
        .parse()
        {
            Ok(u) => u,
            Err(_) => return respond::error(StatusCode::BAD_REQUEST, "Invalid request target."),
        };
        let body = match &mut outbound {
            Outbound::Replayable(b) => Body::from(b.clone()),
            Outbound::Stream(b) => match b.take() {
                Some(b) => b,
                None => break,
            },
        };
        let mut up = Request::new(body);
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = uri;
        *up.headers_mut() = headers.clone();
        // HTTP/2 clients have no Host header; the upstream gets the authority they asked for.
        if !up.headers().contains_key(header::HOST)
            && let Some(a) = parts.uri.authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            up.headers_mut().insert(header::HOST, v);
        }

        let result = tokio::time::timeout(
            fwd.response_timeout,
            send(
                clients.for_member(&member),
                &member,
                fwd.connect_timeout,
                fwd.pool.settings().idle_timeout,
                up,
            ),
        )
        .await;
        match result {
            Ok(Ok((mut res, sender))) => {
                let status = res.status();
                if status.is_server_error() {
                    fwd.pool.failed(&member);
                    let replayable = matches!(outbound, Outbound::Replayable(_));
                    if matches!(status.as_u16(), 502..=504) && may_retry_after_send && replayable {
                        last_error = (status, "The upstream server failed.");
                        // Answer with this response if no other member is left.
                        if fwd.pool.members().len() > tried.len() {
                            continue;
                        }
                    }
                } else {
                    fwd.pool.succeeded(&member);
                }
                if res.headers_mut().remove(crate::DRAINING_HEADER).is_some() {
                    fwd.pool.draining(&member);
                }
                if subscribe
                    && status == StatusCode::NOT_FOUND
                    && matches!(outbound, Outbound::Replayable(_))
                    && fwd.pool.members().len() > tried.len()
                {
                    // Answered as the backend did, if no member is left to ask.
                    last_error = (StatusCode::NOT_FOUND, "Missing or invalid client id.");
                    continue;
                }
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    return tunnel(res, client_upgrade, slot).await;
                }
                strip_hop_by_hop(res.headers_mut());
                respond::security_headers(res.headers_mut());
                let (p, b) = res.into_parts();
                // The member stays counted in flight until the body is sent; then its
                // connection is free for the next request.
                let mut counted = Counted {
                    inner: b,
                    slot,
                    recycle: sender,
                };
                counted.recycle_if_done();
                return Response::from_parts(p, Body::new(counted));
            }
            Ok(Err(e)) => {
                if let Some(res) = client_fault(&client_body) {
                    return res;
                }
                fwd.pool.failed(&member);
                let never_sent = e.never_sent;
                tracing::warn!(pool = %fwd.pool.name, member = %member.label, error = %e.message, connect = never_sent, "upstream request failed");
                last_error = (
                    StatusCode::BAD_GATEWAY,
                    "The upstream server is unavailable.",
                );
                let replayable = matches!(outbound, Outbound::Replayable(_));
                if replayable && (never_sent || may_retry_after_send) {
                    continue;
                }
                break;
            }
            Err(_) => {
                if let Some(res) = client_fault(&client_body) {
                    return res;
                }
                fwd.pool.failed(&member);
                tracing::warn!(pool = %fwd.pool.name, member = %member.label, "upstream response timed out");
                last_error = (
                    StatusCode::GATEWAY_TIMEOUT,
                    "The upstream server took too long to respond.",
                );
                if may_retry_after_send && matches!(outbound, Outbound::Replayable(_)) {
                    continue;
                }
                break;
            }
        }
    }
    if tried.is_empty() {
        return respond::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "No upstream server is available.",
        );
    }
    respond::error(last_error.0, last_error.1)
}

const BODY_OK: u8 = 0;
const BODY_BROKEN: u8 = 1;
const BODY_TOO_LARGE: u8 = 2;

/// A client's request body on its way upstream, noting whether it failed and why.
struct Watched {
    inner: http_body_util::Limited<Body>,
    broken: Arc<AtomicU8>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Err(e))) = &polled {
            let why = if e.is::<http_body_util::LengthLimitError>() {
                BODY_TOO_LARGE
            } else {
                BODY_BROKEN
            };
            self.broken.store(why, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The answer when the request failed because of the client's own body.
fn client_fault(broken: &AtomicU8) -> Option<Response<Body>> {
    let (status, message) = match broken.load(Ordering::Relaxed) {
        BODY_BROKEN => (
            StatusCode::BAD_REQUEST,
            "The request body is malformed (its chunked framing is broken) or ended early.",
        ),
        BODY_TOO_LARGE => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.",
        ),
        _ => return None,
    };
    let mut res = respond::error(status, message);
    // The rest of the body cannot be framed: the connection ends with this answer.
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(res)
}

/// Joins the client's and the upstream's upgraded connections once the upstream said 101.
async fn tunnel(
    mut res: Response<hyper::body::Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    slot: crate::pool::InFlight,
) -> Response<Body> {
    let Some(client_side) = client_upgrade else {
        return respond::error(
            StatusCode::BAD_GATEWAY,
            "The upstream switched protocols unasked.",
        );
    };
    let upstream_side = hyper::upgrade::on(&mut res);
    tokio::spawn(async move {
        let _slot = slot;
        match tokio::join!(client_side, upstream_side) {
            (Ok(c), Ok(u)) => {
                let mut c = TokioIo::new(c);
                let mut u = TokioIo::new(u);
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                    tracing::debug!(error = %e, "tunnel closed");
                }
            }
            (c, u) => {
                tracing::debug!(
                    client = c.is_ok(),
                    upstream = u.is_ok(),
                    "upgrade did not complete"
                );
            }
        }
    });
    let (mut p, _) = res.into_parts();
    // Keep Connection/Upgrade: they are the point of a 101.
    let upgrade = p.headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut p.headers);
    p.headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(u) = upgrade {
        p.headers.insert(header::UPGRADE, u);
    }
    Response::from_parts(p, Body::empty())
}

/// Sends on the member's own connections when it is a plain-HTTP address, else through the
/// shared client (names, TLS).
async fn send(
    client: &Client,
    member: &crate::pool::Member,
    connect_timeout: Duration,
    idle_timeout: Duration,
    mut up: Request<Body>,
) -> Result<
    (
        Response<hyper::body::Incoming>,
        Option<hyper::client::conn::http1::SendRequest<Body>>,
    ),
    crate::h1pool::SendFailure,
> {
    if let Some(addr) = member.direct {
        // Origin-form target on a direct connection.
        let pq = up
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        if let Ok(u) = pq.parse() {
            *up.uri_mut() = u;
        }
        return crate::h1pool::send(&member.idle, addr, connect_timeout, idle_timeout, up)
            .await
            .map(|(res, s)| (res, Some(s)));
    }
    client
        .request(up)
        .await
        .map(|res| (res, None))
        .map_err(|e| crate::h1pool::SendFailure {
            never_sent: e.is_connect(),
            message: e.to_string(),
        })
}

/// A response body that keeps its member counted in flight until it is done, then gives the
/// connection back to the member's idle list.
struct Counted {
    inner: hyper::body::Incoming,
    slot: crate::pool::InFlight,
    recycle: Option<hyper::client::conn::http1::SendRequest<Body>>,
}

impl Counted {
    fn recycle_if_done(&mut self) {
        if http_body::Body::is_end_stream(&self.inner)
            && let Some(s) = self.recycle.take()
        {
            self.slot.member().idle.put(s);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(None) => {
                if let Some(s) = self.recycle.take() {
                    self.slot.member().idle.put(s);
                }
            }
            std::task::Poll::Ready(Some(Ok(_))) => self.recycle_if_done(),
            // An error: the connection is not reused.
            std::task::Poll::Ready(Some(Err(_))) => self.recycle = None,
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// An outside API call: the key is added here and never leaves the server otherwise.
pub(crate) async fn outside(
    client: &Client,
    api: &crate::routes::ExtApi,
    rest: &str,
    req: Request<Body>,
    timeout: Duration,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let base = api.url.to_string();
    let uri: Uri = match format!(
        "{}/{}",
        base.trim_end_matches('/'),
        rest.trim_start_matches('/')
    )
    .parse()
    {
        Ok(u) => u,
        Err(_) => return respond::error(StatusCode::BAD_REQUEST, "Invalid request target."),
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // pier's own credentials and cookies are not the outside API's business.
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::COOKIE);
    headers.remove(header::HOST);
    drop_client_identity(&mut headers);
    if let Some((name, value)) = &api.key_header {
        headers.insert(name.clone(), value.clone());
    }
    let mut up = Request::new(body);
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    *up.headers_mut() = headers;
    match tokio::time::timeout(timeout, client.request(up)).await {
        Ok(Ok(res)) => {
            let (mut p, b) = res.into_parts();
            strip_hop_by_hop(&mut p.headers);
            respond::security_headers(&mut p.headers);
            Response::from_parts(p, Body::new(b))
        }
        Ok(Err(e)) => {
            // The error names no URL or key.
            tracing::warn!(api = %api.name, connect = e.is_connect(), "outside API request failed");
            respond::error(StatusCode::BAD_GATEWAY, "The outside API is unavailable.")
        }
        Err(_) => respond::error(
            StatusCode::GATEWAY_TIMEOUT,
            "The outside API took too long to respond.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_including_the_ones_connection_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarding_headers_are_replaced_unless_the_peer_is_trusted() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("forwarded", "for=6.6.6.6".parse().unwrap());
        h.insert("x-real-ip", "6.6.6.6".parse().unwrap());
        h.insert("true-client-ip", "6.6.6.6".parse().unwrap());
        h.insert("x-forwarded-port", "1".parse().unwrap());
        h.insert("x-original-url", "/admin".parse().unwrap());
        let host: HeaderValue = "example.com".parse().unwrap();
        let stranger = Peer {
            addr: "1.2.3.4:5".parse().unwrap(),
            trusted: false,
            tls: false,
        };
        let mut a = h.clone();
        set_forwarding(&mut a, &stranger, Some(&host));
        assert_eq!(a["x-forwarded-for"], "1.2.3.4");
        assert_eq!(a["x-forwarded-proto"], "http");
        assert_eq!(a["x-forwarded-host"], "example.com");
        assert_eq!(
            a["forwarded"],
            "for=1.2.3.4;proto=http;host=\"example.com\""
        );
        assert_eq!(a["x-real-ip"], "1.2.3.4");
        for gone in ["true-client-ip", "x-forwarded-port", "x-original-url"] {
            assert!(!a.contains_key(gone), "{gone}");
        }
        let proxy = Peer {
            trusted: true,
            ..stranger
        };
        let mut b = h.clone();
        set_forwarding(&mut b, &proxy, Some(&host));
        assert_eq!(b["x-forwarded-for"], "6.6.6.6, 1.2.3.4");
        assert_eq!(b["x-forwarded-proto"], "https");
        assert!(
            b["forwarded"]
                .to_str()
                .unwrap()
                .starts_with("for=6.6.6.6, for=1.2.3.4")
        );
        assert_eq!(b["x-real-ip"], "6.6.6.6");
        assert_eq!(b["true-client-ip"], "6.6.6.6");
    }
}
