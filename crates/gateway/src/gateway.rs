//! The gateway: one service in front of everything. It routes each request by host and path
//! to the frontend (from memory), the backend (in the process, or a pool of `pier backend`s),
//! a user route's pool, an outside API, or a redirect.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use pier_config::{Config, IpNet, MetricsConfig};
use pier_ops::request_id::{self, RequestIds};
use pier_ops::{Exposition, Metrics, access_log, metrics::names};
use tower::ServiceExt;

use crate::limit::{self, RateLimiter};
use crate::proxy::{self, Forward, Peer};
use crate::respond;
use crate::routes::{Page, Part, Table, Target};
use crate::site::{Site, SiteError};

/// The backend when it runs in this process (`pier serve`): a service taking every request
/// for the API, the admin interface and the docs.
pub type Backend = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("failed to load the public folder `{path}`")]
    Site {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "no backend to send /api/* to: give `pier gateway` at least one --upstream (or gateway.upstreams)"
    )]
    NoUpstream,
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

pub(crate) struct Inner {
    pub(crate) table: ArcSwap<Table>,
    pub(crate) site: ArcSwap<Site>,
    pub(crate) settings: ArcSwap<Settings>,
    pub(crate) clients: crate::proxy::Clients,
    pub(crate) tls: Option<Arc<crate::tls::Tls>>,
    /// `Strict-Transport-Security` for HTTPS responses.
    pub(crate) hsts: Option<HeaderValue>,
    backend: Option<Backend>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ids: RequestIds,
    started: Instant,
}

/// The parts of the configuration read on every request, swapped on reload.
pub(crate) struct Settings {
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) rate_limit_exempt: Vec<IpNet>,
    pub(crate) metrics_access: MetricsConfig,
    pub(crate) production: bool,
    pub(crate) log_requests: bool,
    pub(crate) public_dir: PathBuf,
    pub(crate) static_memory_max: u64,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    /// What the HTTP/1 guard refuses and passes on.
    pub(crate) rules: Arc<crate::framing::Rules>,
    pub(crate) dns_refresh: Duration,
    pub(crate) health_interval: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) redirect_addr: Option<SocketAddr>,
}

impl Settings {
    /// `marker` proves the guard's refusals (kept across reloads).
    fn from(config: &Config, marker: String) -> Settings {
        let g = &config.gateway;
        Settings {
            rules: Arc::new(crate::framing::Rules {
                head_max: g.max_header_bytes,
                line_max: g.max_header_line_bytes,
                upgrades: g.allowed_upgrades.clone(),
                marker,
            }),
            trusted_proxies: g.trusted_proxies.clone(),
            rate_limit_exempt: g.rate_limit_exempt.clone(),
            metrics_access: config.metrics.clone(),
            production: config.is_production(),
            log_requests: config.log.requests,
            public_dir: config.paths.public_dir.clone(),
            static_memory_max: g.static_memory_max_bytes,
            shutdown_timeout: config.http.shutdown_timeout,
            header_read_timeout: g.header_read_timeout,
            max_header_bytes: g.max_header_bytes,
            max_headers: g.max_headers,
            dns_refresh: g.dns_refresh,
            health_interval: g.health.as_ref().map(|h| h.interval),
            handshake_timeout: config.tls.handshake_timeout,
            redirect_addr: config.tls.redirect_addr,
        }
    }
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl Gateway {
    /// Loads the public folder and compiles the routes. `backend` is the in-process backend
    /// (`pier serve`); without one, `/api/*` goes to `gateway.upstreams`.
    ///
    /// # Errors
    /// The public folder cannot be read, or there is no backend at all.
    pub fn new(
        config: &Config,
        backend: Option<Backend>,
        metrics: Arc<Metrics>,
    ) -> Result<Gateway, GatewayError> {
        if backend.is_none() && config.gateway.upstreams.is_empty() {
            return Err(GatewayError::NoUpstream);
        }
        let marker: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
                .collect()
        };
        let settings = Settings::from(config, marker);
        let site = load_site(&settings)?;
        let table = Table::build(config, backend.is_some(), None);
        let g = &config.gateway;
        let tls = crate::tls::Tls::load(
            &config.tls,
            &config.paths.certs_dir,
            &config.dev_certificate_names(),
        )?
        .map(Arc::new);
        // Not for the development certificate: a browser would then insist on HTTPS for
        // localhost, for every project on the machine, for as long as max-age says.
        let hsts = (tls.is_some()
            && config.tls.mode != pier_config::TlsMode::Dev
            && !config.tls.hsts_max_age.is_zero())
        .then(|| {
            let mut v = format!("max-age={}", config.tls.hsts_max_age.as_secs());
            if config.tls.hsts_preload {
                v.push_str("; includeSubDomains; preload");
            }
            HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("max-age=63072000"))
        });
        let inner = Arc::new(Inner {
            tls,
            hsts,
            table: ArcSwap::from_pointee(table),
            site: ArcSwap::from_pointee(site),
            settings: ArcSwap::from_pointee(settings),
            clients: proxy::Clients::new(g.connect_timeout, g.idle_timeout),
            backend,
            metrics: metrics.clone(),
            ids: RequestIds::new(),
            started: Instant::now(),
        });
        let weak = Arc::downgrade(&inner);
        metrics.register(Arc::new(move |e: &mut Exposition| {
            if let Some(inner) = weak.upgrade() {
                export(&inner, e);
            }
        }));
        Ok(Gateway { inner })
    }

    /// Swaps in routes, members and limits from a new configuration; in-flight requests finish
    /// on the table they started with. Pools whose members are unchanged keep their state.
    ///
    /// # Errors
    /// The public folder of the new configuration cannot be read (nothing is swapped then).
    pub fn reload(&self, config: &Config) -> Result<(), GatewayError> {
        let marker = self.inner.settings.load().rules.marker.clone();
        let settings = Settings::from(config, marker);
        let site = load_site(&settings)?;
        let old = self.inner.table.load_full();
        let table = Table::build(config, self.inner.backend.is_some(), Some(&old));
        self.inner.site.store(Arc::new(site));
        self.inner.table.store(Arc::new(table));
        self.inner.settings.store(Arc::new(settings));
        // A new `.localhost` route needs its name in the development certificate; the
        // listener picks the re-issued files up as it does any replaced certificate.
        if self.inner.tls.is_some()
            && config.tls.mode == pier_config::TlsMode::Dev
            && let Err(error) = crate::devcert::ensure_logged(
                &config.paths.certs_dir,
                &config.dev_certificate_names(),
            )
        {
            tracing::error!(%error, "development certificate not re-issued");
        }
        tracing::info!("gateway configuration reloaded");
        Ok(())
    }

    /// `https` when the listener terminates TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.inner.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Loads the public folder again.
    ///
    /// # Errors
    /// The folder cannot be read; the last good copy keeps serving.
    pub fn reload_site(&self) -> Result<(), GatewayError> {
        let settings = self.inner.settings.load();
        let site = load_site(&settings)?;
        tracing::info!(
            files = site.file_count(),
            bytes = site.bytes_in_memory(),
            "public folder reloaded"
        );
        self.inner.site.store(Arc::new(site));
        Ok(())
    }

    /// Handles one request from `peer`; `tls` when it came over HTTPS.
    pub async fn handle(
        &self,
        mut req: Request<Body>,
        peer: SocketAddr,
        tls: bool,
    ) -> Response<Body> {
        let settings = self.inner.settings.load();
        let mut res = match crate::message::check(&mut req, &settings.rules) {
            Some(res) => res,
            None => self.route(req, peer, tls, &settings).await,
        };
        if tls && let Some(h) = &self.inner.hsts {
            res.headers_mut()
                .entry(header::STRICT_TRANSPORT_SECURITY)
                .or_insert(h.clone());
        }
        res
    }

    async fn route(
        &self,
        req: Request<Body>,
        peer: SocketAddr,
        tls: bool,
        settings: &Settings,
    ) -> Response<Body> {
        let inner = &self.inner;
        let table = inner.table.load();
        let host = host_of(&req);
        let path = req.uri().path().to_owned();
        let matched = table.route(&host, &path);
        let route = matched.route;

        if let Some(limiter) = &route.limiter
            && let Err(res) = rate_limit(limiter, peer, &req, settings)
        {
            return *res;
        }

        // The in-process backend observes its own requests (ids, metrics, logs).
        if let (Target::Backend(part), Some(backend)) = (&route.target, &inner.backend) {
            let mut req = req;
            if part != &Part::Api && matched.path != path {
                let rewritten = with_path(req.uri(), &matched.path);
                if let Some(u) = rewritten {
                    *req.uri_mut() = u;
                }
            }
            req.extensions_mut().insert(ConnectInfo(peer));
            // What a client says of its own address is not believed here either.
            if !limit::trusted(&settings.trusted_proxies, peer.ip()) {
                proxy::drop_client_identity(req.headers_mut());
            }
            return match backend.clone().oneshot(req).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
        }

        let timer = inner.metrics.start();
        let mut req = req;
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(v) if request_id::is_sane(v.as_bytes()) => v.clone(),
            _ => {
                let v = HeaderValue::from_bytes(&inner.ids.next())
                    .unwrap_or(HeaderValue::from_static("0"));
                req.headers_mut().insert(X_REQUEST_ID.clone(), v.clone());
                v
            }
        };
        let method = req.method().clone();
        let log_path = (settings.log_requests && access_log::enabled()).then(|| path.clone());
        let peer_info = Peer {
            addr: peer,
            trusted: limit::trusted(&settings.trusted_proxies, peer.ip()),
            tls,
        };

        let path_and_query = match req.uri().query() {
            Some(q) => format!("{}?{q}", matched.path),
            None => matched.path.to_string(),
        };
        let forward_to = |pool, path_and_query| Forward {
            pool,
            path_and_query,
            response_timeout: route.response_timeout,
            body_limit: route.body_limit_for(&method, &matched.path),
            connect_timeout: route.connect_timeout,
            request_id: Some(&id),
            rules: &settings.rules,
        };
        let mut res = match &route.target {
            Target::Frontend => {
                let site = inner.site.load_full();
                let (parts, _) = req.into_parts();
                site.serve(&parts.method, &path, &parts.headers).await
            }
            Target::Pool(pool) => {
                let fwd = forward_to(pool, path_and_query);
                proxy::forward(&inner.clients, fwd, req, &peer_info).await
            }
            Target::Backend(_) => {
                // No in-process backend and no pool: Gateway::new refuses this.
                respond::error(StatusCode::SERVICE_UNAVAILABLE, "No backend is configured.")
            }
            Target::Redirect { to, status } => {
                redirect(to, *status, &matched.path, req.uri().query())
            }
            Target::ToApex => match table.domain() {
                Some(d) => {
                    let scheme = if tls { "https" } else { "http" };
                    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                    let port = req
                        .headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .and_then(|h| h.rsplit_once(':'))
                        .map(|(_, p)| format!(":{p}"))
                        .unwrap_or_default();
                    location(
                        StatusCode::MOVED_PERMANENTLY,
                        &format!("{scheme}://{d}{port}{pq}"),
                    )
                }
                None => respond::not_found(),
            },
            Target::Ext(api) => {
                proxy::outside(
                    &inner.clients.any,
                    api,
                    &path_and_query,
                    req,
                    route.response_timeout,
                )
                .await
            }
            Target::Page(page) => {
                let (parts, _) = req.into_parts();
                self.page(*page, peer, &parts.headers, &table)
            }
            Target::UnknownHost => respond::error(
                StatusCode::NOT_FOUND,
                "No site is served at this host name.",
            ),
        };

        let headers = res.headers_mut();
        headers.insert(X_REQUEST_ID.clone(), id.clone());
        respond::security_headers(headers);
        let status = res.status().as_u16();
        let hint = res.body().size_hint();
        let bytes = hint.exact().unwrap_or(hint.lower());
        let elapsed = timer.finish(method.as_str(), &route.label, status, bytes);
        if let Some(path) = log_path {
            access_log::record(&access_log::Entry {
                request_id: id.to_str().unwrap_or_default(),
                method: method.as_str(),
                route: &route.label,
                path: &path,
                status,
                duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                bytes,
            });
        }
        res
    }

    fn page(
        &self,
        page: Page,
        peer: SocketAddr,
        headers: &http::HeaderMap,
        table: &Table,
    ) -> Response<Body> {
        let settings = self.inner.settings.load();
        let json = |status: StatusCode, body: String| {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
        match page {
            Page::Livez => json(StatusCode::OK, r#"{"status":"alive"}"#.into()),
            Page::Readyz => {
                // Ready when every pool behind the API has a member that can take requests.
                let api_ok = table
                    .pools
                    .iter()
                    .filter(|p| p.name == "api")
                    .all(|p| p.available_count() > 0);
                if api_ok {
                    json(
                        StatusCode::OK,
                        r#"{"status":"ready","checks":{"upstreams":"ok"}}"#.into(),
                    )
                } else {
                    json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"status":"unavailable","checks":{"upstreams":"no healthy member"}}"#
                            .into(),
                    )
                }
            }
            Page::Metrics | Page::Status => {
                if !allowed(&settings, peer, headers) {
                    return respond::error(
                        StatusCode::FORBIDDEN,
                        "This endpoint is not open to this client.",
                    );
                }
                if page == Page::Metrics {
                    let ready = table
                        .pools
                        .iter()
                        .filter(|p| p.name == "api")
                        .all(|p| p.available_count() > 0);
                    let mut r = Response::new(Body::from(self.inner.metrics.render(None, ready)));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    r
                } else {
                    json(StatusCode::OK, self.status_json(table))
                }
            }
        }
    }

    /// The pools and members, as JSON.
    fn status_json(&self, table: &Table) -> String {
        let site = self.inner.site.load();
        let mut pools = Vec::new();
        for p in &table.pools {
            let members: Vec<String> = p
                .members()
                .iter()
                .map(|m| {
                    format!(
                        "{{\"address\":{},\"healthy\":{},\"ejected\":{},\"inFlight\":{},\"requests\":{},\"failures\":{}}}",
                        respond::json_string(&m.label),
                        m.is_up(),
                        p.ejected(m),
                        m.in_flight(),
                        m.requests.load(std::sync::atomic::Ordering::Relaxed),
                        m.errors.load(std::sync::atomic::Ordering::Relaxed),
                    )
                })
                .collect();
            pools.push(format!(
                "{{\"name\":{},\"balance\":\"{}\",\"available\":{},\"members\":[{}]}}",
                respond::json_string(&p.name),
                match p.settings().balance {
                    pier_config::Balance::RoundRobin => "round_robin",
                    pier_config::Balance::LeastRequests => "least_requests",
                },
                p.available_count(),
                members.join(",")
            ));
        }
        format!(
            "{{\"uptimeSeconds\":{},\"static\":{{\"files\":{},\"memoryBytes\":{}}},\"pools\":[{}]}}",
            self.inner.started.elapsed().as_secs(),
            site.file_count(),
            site.bytes_in_memory(),
            pools.join(",")
        )
    }
}

fn load_site(settings: &Settings) -> Result<Site, GatewayError> {
    Site::load(&settings.public_dir, settings.static_memory_max).map_err(|e: SiteError| {
        GatewayError::Site {
            path: settings.public_dir.clone(),
            source: Box::new(e),
        }
    })
}

/// Development: open. Production: an allowed address or the bearer token (as `/metrics`).
fn allowed(settings: &Settings, peer: SocketAddr, headers: &http::HeaderMap) -> bool {
    let access = &settings.metrics_access;
    if access.open || !settings.production {
        return true;
    }
    if access.allow.iter().any(|n| n.contains(peer.ip())) {
        return true;
    }
    let Some(token) = &access.token else {
        return false;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(presented.as_bytes(), pier_config::expose(token).as_bytes())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn rate_limit(
    limiter: &RateLimiter,
    peer: SocketAddr,
    req: &Request<Body>,
    settings: &Settings,
) -> Result<(), Box<Response<Body>>> {
    let client = limit::client_ip(peer.ip(), req.headers(), &settings.trusted_proxies);
    if limit::trusted(&settings.rate_limit_exempt, client) {
        return Ok(());
    }
    limiter.check(client, Instant::now()).map_err(|wait| {
        let mut r = respond::error(StatusCode::TOO_MANY_REQUESTS, "Too many requests.");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        respond::security_headers(r.headers_mut());
        Box::new(r)
    })
}

/// The request's host, lowercase, without the port: `Host`, else the URI's authority
/// (HTTP/2). An absolute-form target never overrides `Host` in HTTP/1.1 (hyper checks they
/// agree), so it cannot steer a request to another route.
fn host_of(req: &Request<Body>) -> String {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(http::uri::Authority::as_str))
        .unwrap_or("");
    host_key(raw)
}

/// A `Host` value as routes match it: lowercase, without the port or a final dot.
pub(crate) fn host_key(raw: &str) -> String {
    let host = if raw.starts_with('[') {
        raw.split(']').next().map_or(raw, |h| h).to_owned() + "]"
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h).to_owned()
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn with_path(uri: &http::Uri, path: &str) -> Option<http::Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    http::Uri::builder().path_and_query(pq).build().ok()
}

fn location(status: StatusCode, to: &str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A redirect route: the rest of the path (and the query) is appended to the target.
fn redirect(to: &str, status: StatusCode, rest: &str, query: Option<&str>) -> Response<Body> {
    let mut target = to.trim_end_matches('/').to_owned();
    if rest != "/" || to.ends_with('/') {
        target.push_str(rest);
    }
    if target.is_empty() {
        target.push('/');
    }
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    location(status, &target)
}

fn export(inner: &Inner, e: &mut Exposition) {
    let table = inner.table.load();
    let site = inner.site.load();
    e.family(
        names::GATEWAY_STATIC_FILES,
        "gauge",
        "Files of the public folder being served.",
    );
    e.sample(names::GATEWAY_STATIC_FILES, &[], site.file_count());
    e.family(
        names::GATEWAY_STATIC_BYTES,
        "gauge",
        "Bytes of the public folder held in memory, compressed variants included.",
    );
    e.sample(names::GATEWAY_STATIC_BYTES, &[], site.bytes_in_memory());
    if let Some(acme) = inner.tls.as_ref().and_then(|t| t.acme.as_ref()) {
        let expires = acme.expires_at.load(std::sync::atomic::Ordering::Relaxed);
        let days = if expires == 0 {
            0.0
        } else {
            (expires as f64 - crate::tls::now_unix() as f64) / 86_400.0
        };
        e.family(
            names::TLS_EXPIRY_DAYS,
            "gauge",
            "Days until the ordered certificate expires, per name (0: none yet).",
        );
        for n in acme.names() {
            e.sample(names::TLS_EXPIRY_DAYS, &[("name", n)], format!("{days:.2}"));
        }
        e.family(
            names::TLS_RENEWAL_FAILURES,
            "counter",
            "Certificate orders or renewals that failed.",
        );
        e.sample(
            names::TLS_RENEWAL_FAILURES,
            &[],
            acme.failures.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    if table.pools.is_empty() {
        return;
    }
    let all: Vec<_> = table
        .pools
        .iter()
        .flat_map(|p| {
            p.members()
                .iter()
                .map(|m| (p.clone(), m.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    e.family(
        names::GATEWAY_MEMBER_UP,
        "gauge",
        "1 when the upstream member takes requests (healthy and not ejected).",
    );
    for (p, m) in &all {
        let up = u8::from(m.is_up() && !p.ejected(m));
        e.sample(
            names::GATEWAY_MEMBER_UP,
            &[("pool", &p.name), ("member", &m.label)],
            up,
        );
    }
    e.family(
        names::GATEWAY_MEMBER_IN_FLIGHT,
        "gauge",
        "Requests in flight on the upstream member.",
    );
    for (p, m) in &all {
        e.sample(
            names::GATEWAY_MEMBER_IN_FLIGHT,
            &[("pool", &p.name), ("member", &m.label)],
            m.in_flight(),
        );
    }
    e.family(
        names::GATEWAY_MEMBER_REQUESTS,
        "counter",
        "Requests sent to the upstream member.",
    );
    for (p, m) in &all {
        e.sample(
            names::GATEWAY_MEMBER_REQUESTS,
            &[("pool", &p.name), ("member", &m.label)],
            m.requests.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    e.family(
        names::GATEWAY_MEMBER_FAILURES,
        "counter",
        "Connect errors, timeouts and 5xx answers of the upstream member.",
    );
    for (p, m) in &all {
        e.sample(
            names::GATEWAY_MEMBER_FAILURES,
            &[("pool", &p.name), ("member", &m.label)],
            m.errors.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_append_the_rest() {
        let r = redirect(
            "https://b.example.com",
            StatusCode::PERMANENT_REDIRECT,
            "/x/y",
            Some("a=1"),
        );
        assert_eq!(r.headers()["location"], "https://b.example.com/x/y?a=1");
        let r = redirect("https://b.example.com/", StatusCode::FOUND, "/", None);
        assert_eq!(r.headers()["location"], "https://b.example.com/");
    }

    #[test]
    fn hosts_lose_ports_and_case() {
        let req = |h: &str| {
            Request::builder()
                .uri("/")
                .header("host", h)
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(host_of(&req("Example.COM:8080")), "example.com");
        assert_eq!(host_of(&req("[::1]:80")), "[::1]");
        assert_eq!(host_of(&req("example.com.")), "example.com");
    }
}
