//! pier-outbound: the one HTTP client for requests pier makes to other servers (OpenID Connect
//! discovery and keys, OAuth2 token and user-info calls, avatar downloads).
//!
//! Each request has a whole-request timeout and a body size limit, and is refused before any
//! byte is sent when its host is, or resolves to, an address that is not public: loopback,
//! private (RFC 1918, unique-local), link-local (where cloud metadata services live),
//! carrier-grade NAT, unspecified, multicast, broadcast, documentation and benchmark ranges,
//! and IPv4 inside IPv6. The check happens where the connection resolves the name (a custom
//! resolver), so a name that changes its answer between check and connect gains nothing.
//! Redirects are followed by hand, at most five, and each hop is checked again. Hosts named in
//! `outbound.allow` skip the address check (an identity provider on the same network, a test
//! server on 127.0.0.1).
//!
//! Built on reqwest (hyper and rustls underneath); only the guard is pier's own.
#![deny(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
pub use pier_config::OutboundConfig;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
pub use reqwest::{Method, Url};

/// Hops followed after the first request.
const MAX_REDIRECTS: usize = 5;

/// Why an outgoing request did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The URL is not `http(s)://host…`.
    #[error("invalid URL: {0}")]
    BadUrl(String),
    /// The host is or resolves to an address pier does not call.
    #[error("{0} is an internal address; add the host to outbound.allow to reach it")]
    Refused(String),
    /// No answer within the time limit.
    #[error("{0} did not answer in time")]
    Timeout(String),
    /// The answer is larger than `outbound.max_bytes`.
    #[error("{host} answered with more than {limit} bytes")]
    TooLarge { host: String, limit: u64 },
    /// More redirects than allowed.
    #[error("{0} redirected too many times")]
    TooManyRedirects(String),
    /// Connection, TLS or protocol failure.
    #[error("request to {host} failed: {reason}")]
    Failed { host: String, reason: String },
}

/// An answer: status, content type and the whole (bounded) body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// One outgoing request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// A form body (`application/x-www-form-urlencoded`).
    pub form: Option<Vec<(String, String)>>,
    /// HTTP basic credentials.
    pub basic: Option<(String, String)>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: &str) -> Request {
        Request {
            method: Method::GET,
            url: url.to_owned(),
            headers: Vec::new(),
            form: None,
            basic: None,
        }
    }

    /// A POST of a form to `url`.
    pub fn post_form(url: &str, form: Vec<(String, String)>) -> Request {
        Request {
            method: Method::POST,
            form: Some(form),
            ..Request::get(url)
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// True for an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, fd00:ec2::254 among them
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (embeds IPv4)
                || (s[0] == 0x2002) // 6to4 (embeds IPv4)
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15, benchmarking
        || o[0] >= 240) // reserved
}

/// The resolver the client connects through: a name not in `allow` whose addresses are not all
/// public is refused.
struct Guard {
    allow: Arc<Vec<String>>,
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allow.contains(&host);
            if !allowed && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(Box::new(OutboundError::Refused(host)) as _);
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow: Arc<Vec<String>>,
    max_bytes: u64,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow", &self.allow)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

fn host_of(url: &Url) -> String {
    url.host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl Outbound {
    /// A client with the configured limits.
    ///
    /// # Errors
    /// When the TLS stack cannot be set up.
    pub fn new(config: &OutboundConfig) -> Result<Outbound, OutboundError> {
        let allow = Arc::new(config.allow.clone());
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Guard {
                allow: allow.clone(),
            }))
            .user_agent(concat!("pier/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build()
            .map_err(|e| OutboundError::Failed {
                host: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Outbound {
            client,
            allow,
            max_bytes: config.max_bytes,
        })
    }

    /// Checks a URL before anything is sent: scheme, and an address literal against the guard
    /// (names are checked when they resolve).
    fn check(&self, url: &Url) -> Result<(), OutboundError> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(OutboundError::BadUrl(url.as_str().to_owned()));
        }
        let host = host_of(url);
        if let Ok(ip) = host.parse::<IpAddr>()
            && !is_public(ip)
            && !self.allow.contains(&host)
        {
            return Err(OutboundError::Refused(host));
        }
        Ok(())
    }

    /// Sends `req`, following redirects (each checked again), and reads the body up to the
    /// size limit.
    ///
    /// # Errors
    /// [`OutboundError`], naming the host, never the query string (it may carry secrets).
    pub async fn send(&self, req: Request) -> Result<Reply, OutboundError> {
        let mut url = Url::parse(&req.url).map_err(|_| OutboundError::BadUrl(req.url.clone()))?;
        let mut method = req.method.clone();
        let mut form = req.form.clone();
        for _ in 0..=MAX_REDIRECTS {
            self.check(&url)?;
            let host = host_of(&url);
            let mut r = self.client.request(method.clone(), url.clone());
            for (k, v) in &req.headers {
                r = r.header(k, v);
            }
            if let Some((user, pass)) = &req.basic {
                r = r.basic_auth(user, Some(pass));
            }
            if let Some(f) = &form {
                r = r.form(f);
            }
            let res = r.send().await.map_err(|e| failure(&host, e))?;
            let status = res.status();
            if status.is_redirection()
                && let Some(to) = res
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
            {
                url = url
                    .join(to)
                    .map_err(|_| OutboundError::BadUrl(to.to_owned()))?;
                // 301/302/303 turn a POST into a GET, as browsers do; 307/308 keep it.
                if !matches!(status.as_u16(), 307 | 308) {
                    method = Method::GET;
                    form = None;
                }
                continue;
            }
            return self.read(host, res).await;
        }
        Err(OutboundError::TooManyRedirects(host_of(&url)))
    }

    async fn read(&self, host: String, mut res: reqwest::Response) -> Result<Reply, OutboundError> {
        let too_large = || OutboundError::TooLarge {
            host: host.clone(),
            limit: self.max_bytes,
        };
        if res.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err(too_large());
        }
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut body = BytesMut::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| failure(&host, e))? {
            if (body.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            content_type,
            body: body.freeze(),
        })
    }
}

fn failure(host: &str, e: reqwest::Error) -> OutboundError {
    if e.is_timeout() {
        return OutboundError::Timeout(host.to_owned());
    }
    // The guard's refusal comes back wrapped in the connect error.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(OutboundError::Refused(h)) = s.downcast_ref::<OutboundError>() {
            return OutboundError::Refused(h.clone());
        }
        source = s.source();
    }
    let reason = if e.is_connect() {
        "could not connect".to_owned()
    } else {
        // Without the URL: its query may carry a secret.
        e.without_url().to_string()
    };
    OutboundError::Failed {
        host: host.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    fn client(allow: &[&str], max_bytes: u64) -> Outbound {
        Outbound::new(&OutboundConfig {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            timeout: std::time::Duration::from_secs(2),
            max_bytes,
        })
        .unwrap()
    }

    /// A one-shot HTTP server on 127.0.0.1 that answers every connection with `reply`.
    async fn serve(reply: Vec<u8>) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(&reply).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed_by_name() {
        let port = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi".to_vec()).await;
        let url = format!("http://127.0.0.1:{port}/");
        let e = client(&[], 1024)
            .send(Request::get(&url))
            .await
            .unwrap_err();
        assert!(matches!(e, OutboundError::Refused(_)), "{e}");
        let e = client(&[], 1024)
            .send(Request::get(&format!("http://localhost:{port}/")))
            .await
            .unwrap_err();
        assert!(
            matches!(e, OutboundError::Refused(_)),
            "names are checked once resolved: {e}"
        );
        let r = client(&["127.0.0.1"], 1024)
            .send(Request::get(&url))
            .await
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"hi"[..]));
        let e = client(&[], 1024)
            .send(Request::get("file:///etc/passwd"))
            .await
            .unwrap_err();
        assert!(matches!(e, OutboundError::BadUrl(_)));
    }

    #[tokio::test]
    async fn redirects_are_checked_again_and_bodies_are_bounded() {
        // An allowed host redirecting to the metadata address is refused at the second hop.
        let port = serve(
            b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/meta-data/\r\ncontent-length: 0\r\n\r\n"
                .to_vec(),
        )
        .await;
        let e = client(&["127.0.0.1"], 1024)
            .send(Request::get(&format!("http://127.0.0.1:{port}/")))
            .await
            .unwrap_err();
        assert!(
            matches!(e, OutboundError::Refused(ref h) if h == "169.254.169.254"),
            "{e}"
        );
        // A body over the limit is refused, declared or not.
        let big = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n".to_vec()).await;
        let e = client(&["127.0.0.1"], 1024)
            .send(Request::get(&format!("http://127.0.0.1:{big}/")))
            .await
            .unwrap_err();
        assert!(matches!(e, OutboundError::TooLarge { .. }), "{e}");
        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..10 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&[b'x'; 0x200]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let p = serve(chunked).await;
        let e = client(&["127.0.0.1"], 1024)
            .send(Request::get(&format!("http://127.0.0.1:{p}/")))
            .await
            .unwrap_err();
        assert!(matches!(e, OutboundError::TooLarge { .. }), "{e}");
        // A server that never answers runs into the timeout.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hang = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let e = client(&["127.0.0.1"], 1024)
            .send(Request::get(&format!("http://127.0.0.1:{hang}/")))
            .await
            .unwrap_err();
        assert!(matches!(e, OutboundError::Timeout(_)), "{e}");
    }
}
