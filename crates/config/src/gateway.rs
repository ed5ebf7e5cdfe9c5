//! The gateway's settings: the `[gateway]` section and its `[[gateway.routes]]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::load::Layers;
use crate::net::IpNet;

/// Host labels under `PIER_DOMAIN` that a user route may not claim unless
/// `gateway.allow_reserved` names them.
pub const RESERVED_LABELS: &[&str] = &["www", "staging", "test", "backup", "monitoring"];

/// How a pool picks the member for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// Of two members picked at random, the one with fewer requests in flight.
    LeastRequests,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawGateway {
    /// Backend members for `/api/*` (`--upstream`, repeatable): `http://host:port`. A host name
    /// is re-resolved every `dns_refresh_seconds` and every address it returns is a member.
    pub(crate) upstreams: Vec<String>,
    /// `round_robin` or `least_requests` (power of two choices).
    pub(crate) balance: Balance,
    /// A frontend development server (Vite, …) that gets every non-API request, WebSockets too.
    pub(crate) frontend_dev_url: String,
    /// The upstream behind `dev.<domain>`; empty: `dev.` is not routed.
    pub(crate) staging_url: String,
    /// Route `app.<domain>` to the application as the apex is.
    pub(crate) app_subdomain: bool,
    /// Proxies (CIDR) whose `X-Forwarded-*` and `Forwarded` headers are believed.
    pub(crate) trusted_proxies: Vec<String>,
    /// Reserved host labels (www, staging, test, backup, monitoring) user routes may claim.
    pub(crate) allow_reserved: Vec<String>,
    /// A client must send its request head within this time (slowloris).
    pub(crate) header_read_timeout_seconds: u64,
    /// Largest request head, in bytes (431 beyond), as nginx's `large_client_header_buffers`.
    pub(crate) max_header_bytes: u64,
    /// Longest request line or header line, in bytes (431 beyond).
    pub(crate) max_header_line_bytes: u64,
    /// `Upgrade` protocols passed on to upstreams (others are dropped from the request, which
    /// goes on as an ordinary one). `h2c` is never allowed: it would hand the client an HTTP/2
    /// connection past the gateway's routing and limits.
    pub(crate) allowed_upgrades: Vec<String>,
    /// Most request headers (431 beyond).
    pub(crate) max_headers: u64,
    /// Connecting to an upstream member.
    pub(crate) connect_timeout_milliseconds: u64,
    /// Waiting for an upstream's response head.
    pub(crate) response_timeout_seconds: u64,
    /// Idle upstream keep-alive connections are closed after this time.
    pub(crate) idle_timeout_seconds: u64,
    /// Static files larger than this are streamed from disk instead of held in memory.
    pub(crate) static_memory_max_bytes: u64,
    /// How often upstream host names are resolved again.
    pub(crate) dns_refresh_seconds: u64,
    /// Active health checks: the path asked on each member (empty: no active checks).
    pub(crate) health_path: String,
    pub(crate) health_interval_milliseconds: u64,
    pub(crate) health_timeout_milliseconds: u64,
    /// Successive passing checks that bring a member back.
    pub(crate) health_rise: u64,
    /// Successive failing checks that take a member out.
    pub(crate) health_fall: u64,
    /// Passive ejection: successive connect errors or 5xx answers that eject a member.
    pub(crate) eject_after_failures: u64,
    /// First ejection time; doubled on each ejection in a row, up to 16 times.
    pub(crate) eject_milliseconds: u64,
    /// Per-client-IP requests per second on `/api/*` (0: no limit).
    pub(crate) api_rate_limit_per_second: u64,
    /// Burst above the rate (0: the rate).
    pub(crate) api_rate_limit_burst: u64,
    /// Client addresses (CIDR) no rate limit applies to.
    pub(crate) rate_limit_exempt: Vec<String>,
    /// HSTS, TLS and certificates arrive with the TLS settings; routes in config.
    pub(crate) routes: Vec<RawRoute>,
}

impl Default for RawGateway {
    fn default() -> Self {
        RawGateway {
            upstreams: Vec::new(),
            balance: Balance::RoundRobin,
            frontend_dev_url: String::new(),
            staging_url: String::new(),
            app_subdomain: false,
            trusted_proxies: Vec::new(),
            allow_reserved: Vec::new(),
            header_read_timeout_seconds: 10,
            max_header_bytes: 32 * 1024,
            max_header_line_bytes: 8 * 1024,
            allowed_upgrades: vec!["websocket".into()],
            max_headers: 100,
            connect_timeout_milliseconds: 3000,
            response_timeout_seconds: 60,
            idle_timeout_seconds: 90,
            static_memory_max_bytes: 8 * 1024 * 1024,
            dns_refresh_seconds: 30,
            health_path: "/readyz".into(),
            health_interval_milliseconds: 2000,
            health_timeout_milliseconds: 1000,
            health_rise: 2,
            health_fall: 2,
            eject_after_failures: 3,
            eject_milliseconds: 2000,
            api_rate_limit_per_second: 0,
            api_rate_limit_burst: 0,
            rate_limit_exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
            routes: Vec::new(),
        }
    }
}

/// One user route: requests matching `host` and/or `path` go to `to`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRoute {
    /// Exact host (`shop.example.com`) or `*.example.com`; empty: any host.
    pub(crate) host: String,
    /// Path prefix on a segment boundary (`/blog` matches `/blog` and `/blog/x`); empty: `/`.
    pub(crate) path: String,
    /// `frontend`, `api`, `admin`, `docs`, `upstream` or `redirect`.
    pub(crate) to: String,
    /// Members, for `to = "upstream"`.
    pub(crate) upstreams: Vec<String>,
    /// Target URL, for `to = "redirect"`; the rest of the path is appended.
    pub(crate) redirect: String,
    /// Redirect status: 301, 302, 307 or 308 (default 308).
    pub(crate) status: u16,
    /// Remove the route's path prefix before proxying.
    pub(crate) strip_prefix: bool,
    /// Per-client-IP requests per second on this route (0: none).
    pub(crate) rate_limit_per_second: u64,
    pub(crate) rate_limit_burst: u64,
    /// Largest request body on this route (0: `http.body_limit_bytes`).
    pub(crate) body_limit_bytes: u64,
    /// Upstream response-head timeout on this route (0: the gateway's).
    pub(crate) response_timeout_seconds: u64,
    /// Connecting to this route's upstream (0: the gateway's).
    pub(crate) connect_timeout_milliseconds: u64,
    /// Idle keep-alive connections to this route's upstream are closed after this (0: the
    /// gateway's).
    pub(crate) idle_timeout_seconds: u64,
}

/// A token bucket per client address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    fn new(per_second: u64, burst: u64) -> Option<RateLimit> {
        (per_second > 0).then(|| RateLimit {
            per_second: per_second as f64,
            burst: burst.max(per_second) as f64,
        })
    }
}

/// Where a route sends its requests.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteTarget {
    Frontend,
    Api,
    Admin,
    Docs,
    Upstream(Vec<http::Uri>),
    Redirect { to: String, status: u16 },
}

/// A validated user route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Lowercase; a leading `*.` matches any one or more labels.
    pub host: Option<String>,
    /// Starts with `/`, no trailing `/` (except `/` itself).
    pub path: String,
    pub target: RouteTarget,
    pub strip_prefix: bool,
    pub rate_limit: Option<RateLimit>,
    pub body_limit: Option<u64>,
    pub response_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
}

/// Active health checks.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// The validated `[gateway]` section.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub upstreams: Vec<http::Uri>,
    pub balance: Balance,
    pub frontend_dev_url: Option<http::Uri>,
    pub staging_url: Option<http::Uri>,
    pub app_subdomain: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// At most `max_header_bytes`.
    pub max_header_line_bytes: usize,
    /// Lower-case protocol names.
    pub allowed_upgrades: Vec<String>,
    pub max_headers: usize,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub idle_timeout: Duration,
    pub static_memory_max_bytes: u64,
    pub dns_refresh: Duration,
    /// `None`: no active checks.
    pub health: Option<HealthCheck>,
    pub eject_after_failures: u32,
    pub eject_for: Duration,
    pub api_rate_limit: Option<RateLimit>,
    pub rate_limit_exempt: Vec<IpNet>,
    pub routes: Vec<RouteConfig>,
}

pub(crate) fn validate(
    g: &RawGateway,
    domain: Option<&str>,
    layers: &Layers,
) -> Result<GatewayConfig, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: layers.origin(key),
        message,
    };
    let urls = |key: &str, list: &[String]| -> Result<Vec<http::Uri>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, u)| {
                upstream_url(u).map_err(|m| invalid(key, format!("entry {} `{u}`: {m}", i + 1)))
            })
            .collect()
    };
    let optional_url = |key: &str, u: &str| -> Result<Option<http::Uri>, ConfigError> {
        if u.is_empty() {
            return Ok(None);
        }
        upstream_url(u)
            .map(Some)
            .map_err(|m| invalid(key, format!("`{u}`: {m}")))
    };
    let cidrs = |key: &str, list: &[String]| -> Result<Vec<IpNet>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, c)| {
                c.parse::<IpNet>()
                    .map_err(|e| invalid(key, format!("entry {} `{c}`: {e}", i + 1)))
            })
            .collect()
    };
    let at_least_one = |key: &str, v: u64| -> Result<u64, ConfigError> {
        if v == 0 {
            Err(invalid(key, "expected a value greater than 0".into()))
        } else {
            Ok(v)
        }
    };
    let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);

    for (i, label) in g.allow_reserved.iter().enumerate() {
        if !RESERVED_LABELS.contains(&label.as_str()) {
            return Err(invalid(
                "gateway.allow_reserved",
                format!(
                    "entry {} `{label}` is not a reserved name (reserved: {})",
                    i + 1,
                    RESERVED_LABELS.join(", ")
                ),
            ));
        }
    }

    let mut routes = Vec::new();
    for (i, r) in g.routes.iter().enumerate() {
        let key = |field: &str| format!("gateway.routes.{i}.{field}");
        let route_invalid = |field: &str, message: String| ConfigError::Invalid {
            key: key(field),
            origin: layers.origin("gateway.routes"),
            message,
        };
        let host = Some(r.host.trim().to_ascii_lowercase()).filter(|h| !h.is_empty());
        if let Some(h) = &host {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if bare.is_empty()
                || !bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                return Err(route_invalid(
                    "host",
                    format!(
                        "expected a host name such as `shop.example.com` or `*.example.com`, got `{h}`"
                    ),
                ));
            }
            if let Some(domain) = domain
                && let Some(label) = h
                    .strip_suffix(domain)
                    .and_then(|rest| rest.strip_suffix('.'))
                    .and_then(|rest| rest.rsplit('.').next())
                && RESERVED_LABELS.contains(&label)
                && !g.allow_reserved.iter().any(|a| a == label)
            {
                return Err(route_invalid(
                    "host",
                    format!(
                        "`{label}.` is reserved; list it in gateway.allow_reserved to route it"
                    ),
                ));
            }
        }
        let path = normalise_prefix(&r.path).ok_or_else(|| {
            route_invalid(
                "path",
                format!("expected a path starting with `/`, got `{}`", r.path),
            )
        })?;
        if host.is_none() && r.path.is_empty() {
            return Err(route_invalid(
                "host",
                "a route needs a host, a path, or both".into(),
            ));
        }
        let target = match r.to.as_str() {
            "frontend" => RouteTarget::Frontend,
            "api" => RouteTarget::Api,
            "admin" => RouteTarget::Admin,
            "docs" => RouteTarget::Docs,
            "upstream" => {
                if r.upstreams.is_empty() {
                    return Err(route_invalid(
                        "upstreams",
                        "`to = \"upstream\"` needs at least one upstream URL".into(),
                    ));
                }
                let mut members = Vec::new();
                for (j, u) in r.upstreams.iter().enumerate() {
                    members.push(upstream_url(u).map_err(|m| {
                        route_invalid("upstreams", format!("entry {} `{u}`: {m}", j + 1))
                    })?);
                }
                RouteTarget::Upstream(members)
            }
            "redirect" => {
                if !(r.redirect.starts_with("https://")
                    || r.redirect.starts_with("http://")
                    || r.redirect.starts_with('/'))
                    || r.redirect.chars().any(|c| c.is_control() || c == ' ')
                {
                    return Err(route_invalid(
                        "redirect",
                        format!(
                            "expected an absolute URL or a path starting with `/`, got `{}`",
                            r.redirect
                        ),
                    ));
                }
                let status = match r.status {
                    0 => 308,
                    s @ (301 | 302 | 303 | 307 | 308) => s,
                    s => {
                        return Err(route_invalid(
                            "status",
                            format!("expected 301, 302, 303, 307 or 308, got {s}"),
                        ));
                    }
                };
                RouteTarget::Redirect {
                    to: r.redirect.clone(),
                    status,
                }
            }
            other => {
                return Err(route_invalid(
                    "to",
                    format!(
                        "expected one of frontend, api, admin, docs, upstream, redirect, got `{other}`"
                    ),
                ));
            }
        };
        routes.push(RouteConfig {
            host,
            path,
            target,
            strip_prefix: r.strip_prefix,
            rate_limit: RateLimit::new(r.rate_limit_per_second, r.rate_limit_burst),
            body_limit: (r.body_limit_bytes > 0).then_some(r.body_limit_bytes),
            response_timeout: (r.response_timeout_seconds > 0)
                .then(|| Duration::from_secs(r.response_timeout_seconds)),
            connect_timeout: (r.connect_timeout_milliseconds > 0)
                .then(|| Duration::from_millis(r.connect_timeout_milliseconds)),
            idle_timeout: (r.idle_timeout_seconds > 0)
                .then(|| Duration::from_secs(r.idle_timeout_seconds)),
        });
    }

    let health = if g.health_path.is_empty() {
        None
    } else {
        if !g.health_path.starts_with('/') {
            return Err(invalid(
                "gateway.health_path",
                format!("expected a path starting with `/`, got `{}`", g.health_path),
            ));
        }
        Some(HealthCheck {
            path: g.health_path.clone(),
            interval: Duration::from_millis(at_least_one(
                "gateway.health_interval_milliseconds",
                g.health_interval_milliseconds,
            )?),
            timeout: Duration::from_millis(at_least_one(
                "gateway.health_timeout_milliseconds",
                g.health_timeout_milliseconds,
            )?),
            rise: small(at_least_one("gateway.health_rise", g.health_rise)?),
            fall: small(at_least_one("gateway.health_fall", g.health_fall)?),
        })
    };

    let max_header_bytes = usize::try_from(at_least_one(
        "gateway.max_header_bytes",
        g.max_header_bytes,
    )?)
    .unwrap_or(usize::MAX)
    .max(8192);
    if g.max_header_line_bytes < 256 {
        return Err(invalid(
            "gateway.max_header_line_bytes",
            format!(
                "expected at least 256 bytes, got {}",
                g.max_header_line_bytes
            ),
        ));
    }
    let max_header_line_bytes = usize::try_from(g.max_header_line_bytes)
        .unwrap_or(usize::MAX)
        .min(max_header_bytes);
    let mut allowed_upgrades = Vec::new();
    for (i, u) in g.allowed_upgrades.iter().enumerate() {
        let name = u.trim().to_ascii_lowercase();
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
        if !token {
            return Err(invalid(
                "gateway.allowed_upgrades",
                format!("entry {} `{u}` is not a protocol name", i + 1),
            ));
        }
        if name == "h2c" || name.starts_with("h2c/") {
            return Err(invalid(
                "gateway.allowed_upgrades",
                format!(
                    "entry {} `{u}`: h2c upgrades would give clients an HTTP/2 connection past the gateway; name members with h2c:// to speak HTTP/2 to them",
                    i + 1
                ),
            ));
        }
        allowed_upgrades.push(name);
    }

    Ok(GatewayConfig {
        upstreams: urls("gateway.upstreams", &g.upstreams)?,
        balance: g.balance,
        frontend_dev_url: optional_url("gateway.frontend_dev_url", &g.frontend_dev_url)?,
        staging_url: optional_url("gateway.staging_url", &g.staging_url)?,
        app_subdomain: g.app_subdomain,
        trusted_proxies: cidrs("gateway.trusted_proxies", &g.trusted_proxies)?,
        header_read_timeout: Duration::from_secs(at_least_one(
            "gateway.header_read_timeout_seconds",
            g.header_read_timeout_seconds,
        )?),
        max_header_bytes,
        max_header_line_bytes,
        allowed_upgrades,
        max_headers: usize::try_from(at_least_one("gateway.max_headers", g.max_headers)?)
            .unwrap_or(usize::MAX),
        connect_timeout: Duration::from_millis(at_least_one(
            "gateway.connect_timeout_milliseconds",
            g.connect_timeout_milliseconds,
        )?),
        response_timeout: Duration::from_secs(at_least_one(
            "gateway.response_timeout_seconds",
            g.response_timeout_seconds,
        )?),
        idle_timeout: Duration::from_secs(at_least_one(
            "gateway.idle_timeout_seconds",
            g.idle_timeout_seconds,
        )?),
        static_memory_max_bytes: g.static_memory_max_bytes,
        dns_refresh: Duration::from_secs(at_least_one(
            "gateway.dns_refresh_seconds",
            g.dns_refresh_seconds,
        )?),
        health,
        eject_after_failures: small(at_least_one(
            "gateway.eject_after_failures",
            g.eject_after_failures,
        )?),
        eject_for: Duration::from_millis(at_least_one(
            "gateway.eject_milliseconds",
            g.eject_milliseconds,
        )?),
        api_rate_limit: RateLimit::new(g.api_rate_limit_per_second, g.api_rate_limit_burst),
        rate_limit_exempt: cidrs("gateway.rate_limit_exempt", &g.rate_limit_exempt)?,
        routes,
    })
}

/// An upstream member: `http://host:port`, `https://host:port` (HTTP/2 when it offers it), or
/// `h2c://host:port` (HTTP/2 without TLS, by prior knowledge), with no path.
fn upstream_url(s: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = s
        .trim()
        .parse()
        .map_err(|_| "expected a URL such as `http://127.0.0.1:8090`".to_owned())?;
    match uri.scheme_str() {
        Some("http" | "https" | "h2c") => {}
        _ => return Err("expected an http://, https:// or h2c:// URL".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err("an upstream URL takes no path".into());
    }
    Ok(uri)
}

/// `/blog/` → `/blog`; empty → `/`; `None` when it does not start with `/` or holds `..`.
fn normalise_prefix(p: &str) -> Option<String> {
    let p = p.trim();
    if p.is_empty() {
        return Some("/".into());
    }
    if !p.starts_with('/')
        || p.split('/').any(|s| s == ".." || s == ".")
        || p.chars().any(|c| c.is_control() || c == '?' || c == '#')
    {
        return None;
    }
    let t = p.trim_end_matches('/');
    Some(if t.is_empty() {
        "/".into()
    } else {
        t.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalise_prefix("").as_deref(), Some("/"));
        assert_eq!(normalise_prefix("/blog/").as_deref(), Some("/blog"));
        assert_eq!(normalise_prefix("blog"), None);
        assert_eq!(normalise_prefix("/a/../b"), None);
    }

    fn load(toml: &str) -> Result<crate::Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pier.toml");
        std::fs::write(&file, toml).unwrap();
        crate::Config::load(
            crate::LoadOptions {
                role: crate::Role::Gateway,
                config_file: Some(file),
                flags: vec![],
            },
            &crate::Env::default(),
        )
    }

    #[test]
    fn bad_routes_are_refused_naming_the_key() {
        let cases = [
            (
                "[[gateway.routes]]\npath = \"/x\"\nto = \"nowhere\"",
                "gateway.routes.0.to",
            ),
            (
                "[[gateway.routes]]\npath = \"/x\"\nto = \"upstream\"",
                "gateway.routes.0.upstreams",
            ),
            (
                "[[gateway.routes]]\npath = \"x\"\nto = \"api\"",
                "gateway.routes.0.path",
            ),
            ("[[gateway.routes]]\nto = \"api\"", "gateway.routes.0.host"),
            (
                "[[gateway.routes]]\npath = \"/x\"\nto = \"redirect\"\nredirect = \"javascript:x\"",
                "gateway.routes.0.redirect",
            ),
            (
                "[[gateway.routes]]\npath = \"/x\"\nto = \"redirect\"\nredirect = \"/y\"\nstatus = 200",
                "gateway.routes.0.status",
            ),
            (
                "domain = \"example.com\"\n[[gateway.routes]]\nhost = \"www.example.com\"\nto = \"api\"",
                "gateway.routes.0.host",
            ),
            (
                "[gateway]\nupstreams = [\"127.0.0.1:8090\"]",
                "gateway.upstreams",
            ),
            (
                "[gateway]\ntrusted_proxies = [\"10.0.0.0/33\"]",
                "gateway.trusted_proxies",
            ),
            ("[gateway]\nbalance = \"random\"", "gateway.balance"),
            (
                "[gateway]\nallowed_upgrades = [\"h2c\"]",
                "gateway.allowed_upgrades",
            ),
            (
                "[gateway]\nallowed_upgrades = [\"web socket\"]",
                "gateway.allowed_upgrades",
            ),
            (
                "[gateway]\nmax_header_line_bytes = 10",
                "gateway.max_header_line_bytes",
            ),
            (
                "[gateway]\nallow_reserved = [\"shop\"]",
                "gateway.allow_reserved",
            ),
            (
                "[[gateway.routes]]\npath = \"/x\"\nto = \"api\"\nspeed = 1",
                "gateway.routes",
            ),
        ];
        for (toml, key) in cases {
            let err = load(toml)
                .err()
                .unwrap_or_else(|| panic!("accepted: {toml}"));
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
        // Claiming a reserved name works once it is allowed.
        let ok = load(
            "domain = \"example.com\"\n[gateway]\nallow_reserved = [\"www\"]\n[[gateway.routes]]\nhost = \"www.example.com\"\nto = \"api\"",
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn upstream_urls_need_scheme_and_host_and_no_path() {
        assert!(upstream_url("http://127.0.0.1:8090").is_ok());
        assert!(upstream_url("https://backend.internal").is_ok());
        assert!(upstream_url("h2c://127.0.0.1:8090").is_ok());
        assert!(upstream_url("127.0.0.1:8090").is_err());
        assert!(upstream_url("http://127.0.0.1:8090/api").is_err());
        assert!(upstream_url("ftp://x").is_err());
    }
}
