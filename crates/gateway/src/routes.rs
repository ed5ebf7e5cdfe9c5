//! The routing table: compiled once from the configuration, swapped whole on reload.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use pier_config::{Config, RouteTarget};

use crate::limit::RateLimiter;
use crate::pool::{Pool, PoolSettings};

/// Which part of the backend a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Api,
    Admin,
    Docs,
}

/// The gateway's own pages (when no backend runs in the process for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    Livez,
    Readyz,
    Metrics,
    Status,
}

/// An outside API under `/api/ext/<name>/`.
#[derive(Debug)]
pub(crate) struct ExtApi {
    pub(crate) name: String,
    pub(crate) url: Uri,
    /// The key, as the header that carries it; marked sensitive.
    pub(crate) key_header: Option<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The frontend: files from memory, or the frontend development server's pool.
    Frontend,
    /// The backend: in process, or the `api` pool.
    Backend(Part),
    Pool(Arc<Pool>),
    Redirect {
        to: String,
        status: StatusCode,
    },
    /// `www.` → the apex, same path.
    ToApex,
    Ext(Arc<ExtApi>),
    Page(Page),
    /// A subdomain of the domain that nothing serves.
    UnknownHost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com` holds `.example.com`.
    Suffix(String),
}

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            HostMatch::Exact(_) => 2,
            HostMatch::Suffix(_) => 1,
            HostMatch::Any => 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Route {
    /// The route's name in metrics and request logs.
    pub(crate) label: String,
    host: HostMatch,
    prefix: String,
    pub(crate) target: Target,
    pub(crate) strip_prefix: bool,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) body_limit: u64,
    /// The limit of bodies that may carry files (record create and update, `files.upload_limit_bytes`).
    pub(crate) upload_limit: u64,
    pub(crate) response_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl Route {
    /// The body limit of a request: uploads (multipart record writes) get the larger one.
    pub(crate) fn body_limit_for(&self, method: &http::Method, path: &str) -> u64 {
        if is_upload(method, path) {
            self.body_limit.max(self.upload_limit)
        } else {
            self.body_limit
        }
    }

    fn new(label: &str, target: Target, table: &Defaults) -> Route {
        Route {
            label: label.to_owned(),
            host: HostMatch::Any,
            prefix: "/".into(),
            target,
            strip_prefix: false,
            limiter: None,
            body_limit: table.body_limit,
            upload_limit: table.upload_limit,
            response_timeout: table.response_timeout,
            connect_timeout: table.connect_timeout,
        }
    }

    fn matches(&self, host: &str, path: &str) -> bool {
        self.host.matches(host) && prefix_matches(&self.prefix, path)
    }
}

/// `POST /api/collections/{c}/records`, `PATCH /api/collections/{c}/records/{id}` and the
/// resumable uploads' `PATCH /api/files/uploads/{id}`: the requests that may carry files.
fn is_upload(method: &http::Method, path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "collections", _, "records"] => method == http::Method::POST,
        ["api", "collections", _, "records", _] | ["api", "files", "uploads", _] => {
            method == http::Method::PATCH
        }
        _ => false,
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Makes (or takes over) the pool of a name: members, and an idle timeout of its own.
type PoolMaker<'a> = dyn FnMut(&str, &[Uri], Option<Duration>) -> Arc<Pool> + 'a;

struct Defaults {
    body_limit: u64,
    upload_limit: u64,
    response_timeout: Duration,
    connect_timeout: Duration,
}

/// What a request matched, and the path to send on.
pub(crate) struct Matched<'a> {
    pub(crate) route: &'a Route,
    pub(crate) path: Cow<'a, str>,
}

/// Every route, compiled.
#[derive(Debug)]
pub(crate) struct Table {
    user: Vec<Route>,
    ext: HashMap<String, Route>,
    /// `api`, `admin`, `docs`, `frontend`, `www`, `staging`, and the gateway's pages.
    api: Route,
    admin: Route,
    docs: Route,
    frontend: Route,
    to_apex: Route,
    staging: Option<Route>,
    unknown_host: Route,
    pages: Vec<(&'static str, Route)>,
    /// Host routing applies under this domain (`PIER_DOMAIN`, or `localhost` in development).
    domain: Option<String>,
    app_subdomain: bool,
    /// Every pool, for health checks, DNS and the status page.
    pub(crate) pools: Vec<Arc<Pool>>,
}

impl Table {
    /// True when some route goes to a pool of plain-HTTP members at IP addresses: what the
    /// fast path serves.
    pub(crate) fn has_direct_pool(&self) -> bool {
        self.pools
            .iter()
            .any(|p| p.members().iter().any(|m| m.direct.is_some()))
    }

    /// Compiles the table. Pools whose name and members are unchanged are taken over from
    /// `previous`, with their health state.
    pub(crate) fn build(
        config: &Config,
        in_process_backend: bool,
        previous: Option<&Table>,
    ) -> Table {
        let g = &config.gateway;
        let defaults = Defaults {
            body_limit: config.http.body_limit as u64,
            upload_limit: config.files.upload_limit,
            response_timeout: g.response_timeout,
            connect_timeout: g.connect_timeout,
        };
        let settings = PoolSettings {
            balance: g.balance,
            health: g.health.clone(),
            eject_after: g.eject_after_failures,
            eject_for: g.eject_for,
            idle_timeout: g.idle_timeout,
        };
        let mut pools: Vec<Arc<Pool>> = Vec::new();
        let mut pool_with = |name: &str, urls: &[Uri], idle: Option<Duration>| -> Arc<Pool> {
            if let Some(p) = pools.iter().find(|p| p.name == name) {
                return p.clone();
            }
            let reused = previous.and_then(|t| {
                t.pools
                    .iter()
                    .find(|p| p.name == name && p.urls() == urls)
                    .cloned()
            });
            let mut s = settings.clone();
            if let Some(idle) = idle {
                s.idle_timeout = idle;
            }
            let p = reused.unwrap_or_else(|| Arc::new(Pool::new(name.to_owned(), urls, s)));
            pools.push(p.clone());
            p
        };

        let backend = |part: Part, p: &mut PoolMaker<'_>| {
            if in_process_backend || g.upstreams.is_empty() {
                Target::Backend(part)
            } else {
                Target::Pool(p("api", &g.upstreams, None))
            }
        };
        let mut api = Route::new("gateway:api", backend(Part::Api, &mut pool_with), &defaults);
        api.limiter = g.api_rate_limit.map(|l| Arc::new(RateLimiter::new(l)));
        let admin = Route::new(
            "gateway:admin",
            backend(Part::Admin, &mut pool_with),
            &defaults,
        );
        let docs = Route::new(
            "gateway:docs",
            backend(Part::Docs, &mut pool_with),
            &defaults,
        );
        let frontend_target = match &g.frontend_dev_url {
            Some(u) => Target::Pool(pool_with("frontend-dev", std::slice::from_ref(u), None)),
            None => Target::Frontend,
        };
        let frontend = Route::new("gateway:frontend", frontend_target, &defaults);
        let staging = g.staging_url.as_ref().map(|u| {
            Route::new(
                "gateway:staging",
                Target::Pool(pool_with("staging", std::slice::from_ref(u), None)),
                &defaults,
            )
        });

        let mut user = Vec::new();
        for (i, r) in g.routes.iter().enumerate() {
            let target = match &r.target {
                RouteTarget::Frontend => frontend.target.clone(),
                RouteTarget::Api => api.target.clone(),
                RouteTarget::Admin => admin.target.clone(),
                RouteTarget::Docs => docs.target.clone(),
                RouteTarget::Upstream(urls) => {
                    Target::Pool(pool_with(&format!("route-{i}"), urls, r.idle_timeout))
                }
                RouteTarget::Redirect { to, status } => Target::Redirect {
                    to: to.clone(),
                    status: StatusCode::from_u16(*status).unwrap_or(StatusCode::PERMANENT_REDIRECT),
                },
            };
            let host = match &r.host {
                None => HostMatch::Any,
                Some(h) => match h.strip_prefix("*") {
                    Some(suffix) => HostMatch::Suffix(suffix.to_owned()),
                    None => HostMatch::Exact(h.clone()),
                },
            };
            user.push(Route {
                label: format!("gateway:route-{i}"),
                host,
                prefix: r.path.clone(),
                target,
                strip_prefix: r.strip_prefix,
                limiter: r.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
                body_limit: r.body_limit.unwrap_or(defaults.body_limit),
                // A route's own limit holds for uploads too.
                upload_limit: r.body_limit.unwrap_or(defaults.upload_limit),
                response_timeout: r.response_timeout.unwrap_or(defaults.response_timeout),
                connect_timeout: r.connect_timeout.unwrap_or(defaults.connect_timeout),
            });
        }
        // Most specific first: exact host, then wildcard, then any; longer prefixes first.
        user.sort_by(|a, b| {
            b.host
                .rank()
                .cmp(&a.host.rank())
                .then(b.prefix.len().cmp(&a.prefix.len()))
        });

        let mut ext = HashMap::new();
        for a in &config.apis {
            let key_header = a.key.as_ref().and_then(|k| {
                let secret = pier_config::expose(k);
                let (name, value) = if a.header == "authorization" {
                    (http::header::AUTHORIZATION, format!("Bearer {secret}"))
                } else {
                    (
                        HeaderName::from_bytes(a.header.as_bytes()).ok()?,
                        secret.to_owned(),
                    )
                };
                let mut v = HeaderValue::from_str(&value).ok()?;
                v.set_sensitive(true);
                Some((name, v))
            });
            let api_def = Arc::new(ExtApi {
                name: a.name.clone(),
                url: a.url.clone(),
                key_header,
            });
            let mut route = Route::new(
                &format!("gateway:ext-{}", a.name),
                Target::Ext(api_def),
                &defaults,
            );
            route.prefix = format!("/api/ext/{}", a.name);
            route.strip_prefix = true;
            ext.insert(a.name.clone(), route);
        }

        let mut pages = vec![(
            "/_pier/status",
            Route::new("gateway:status", Target::Page(Page::Status), &defaults),
        )];
        // Health and metrics: the backend's own when it runs here (it knows the database),
        // else the gateway's.
        for (path, page) in [
            ("/livez", Page::Livez),
            ("/readyz", Page::Readyz),
            ("/metrics", Page::Metrics),
        ] {
            let target = if in_process_backend {
                Target::Backend(Part::Api)
            } else {
                Target::Page(page)
            };
            pages.push((path, Route::new(path, target, &defaults)));
        }

        let domain = config
            .domain
            .clone()
            .or_else(|| (!config.is_production()).then(|| "localhost".to_owned()));
        Table {
            user,
            ext,
            api,
            admin,
            docs,
            frontend,
            to_apex: Route::new("gateway:www", Target::ToApex, &defaults),
            staging,
            unknown_host: Route::new("gateway:unknown-host", Target::UnknownHost, &defaults),
            pages,
            domain,
            app_subdomain: g.app_subdomain,
            pools,
        }
    }

    pub(crate) fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Routes a request by its host (lowercase, without port) and path.
    pub(crate) fn route<'a>(&'a self, host: &str, path: &'a str) -> Matched<'a> {
        let plain = |route: &'a Route| Matched {
            route,
            path: Cow::Borrowed(path),
        };
        for r in &self.user {
            if r.matches(host, path) {
                let p = if r.strip_prefix && r.prefix != "/" {
                    let rest = &path[r.prefix.len()..];
                    if rest.is_empty() {
                        Cow::Borrowed("/")
                    } else {
                        Cow::Borrowed(rest)
                    }
                } else {
                    Cow::Borrowed(path)
                };
                return Matched { route: r, path: p };
            }
        }
        if let Some(rest) = path.strip_prefix("/api/ext/") {
            let name = rest.split('/').next().unwrap_or("");
            if let Some(r) = self.ext.get(name) {
                let tail = &rest[name.len()..];
                return Matched {
                    route: r,
                    path: Cow::Borrowed(if tail.is_empty() { "/" } else { tail }),
                };
            }
        }
        for (p, r) in &self.pages {
            if path == *p {
                return plain(r);
            }
        }
        if let Some(domain) = &self.domain {
            let label = if host == domain {
                Some("")
            } else {
                host.strip_suffix(domain.as_str())
                    .and_then(|h| h.strip_suffix('.'))
            };
            match label {
                Some("www") => return plain(&self.to_apex),
                Some("api") => return plain(&self.api),
                Some("admin" | "docs") if is_api(path) => return plain(&self.api),
                Some("admin") => {
                    return Matched {
                        route: &self.admin,
                        path: under("/_", path),
                    };
                }
                Some("docs") => {
                    return Matched {
                        route: &self.docs,
                        path: under("/docs", path),
                    };
                }
                Some("dev") if self.staging.is_some() => {
                    if let Some(s) = &self.staging {
                        return plain(s);
                    }
                }
                Some("") => {}
                Some("app") if self.app_subdomain => {}
                Some(_) => return plain(&self.unknown_host),
                None => {}
            }
        }
        if is_api(path) {
            plain(&self.api)
        } else if path == "/_" || path.starts_with("/_/") {
            plain(&self.admin)
        } else if prefix_matches("/docs", path) {
            plain(&self.docs)
        } else {
            plain(&self.frontend)
        }
    }
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// `admin.example.com/x` → `/_/x`, unless the path already is under the prefix.
fn under<'a>(prefix: &str, path: &'a str) -> Cow<'a, str> {
    if prefix_matches(prefix, path) {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("{prefix}{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_config::{Flag, Role};

    fn config(flags: &[(&'static str, &str)]) -> Config {
        Config::from_flags(
            Role::Gateway,
            flags
                .iter()
                .map(|(k, v)| Flag {
                    key: k,
                    value: (*v).to_owned(),
                    name: "--test",
                })
                .collect(),
        )
        .unwrap()
    }

    fn label(t: &Table, host: &str, path: &str) -> (String, String) {
        let m = t.route(host, path);
        (m.route.label.clone(), m.path.into_owned())
    }

    #[test]
    fn without_a_domain_paths_decide() {
        let c = config(&[
            ("app_env", "production"),
            ("gateway.upstreams", "http://127.0.0.1:1"),
        ]);
        let t = Table::build(&c, false, None);
        assert_eq!(label(&t, "1.2.3.4", "/api/collections").0, "gateway:api");
        assert_eq!(label(&t, "1.2.3.4", "/api").0, "gateway:api");
        assert_eq!(label(&t, "1.2.3.4", "/apiary").0, "gateway:frontend");
        assert_eq!(label(&t, "1.2.3.4", "/_/").0, "gateway:admin");
        assert_eq!(label(&t, "1.2.3.4", "/docs/x").0, "gateway:docs");
        assert_eq!(label(&t, "1.2.3.4", "/docsy").0, "gateway:frontend");
        assert_eq!(label(&t, "1.2.3.4", "/").0, "gateway:frontend");
        assert_eq!(label(&t, "1.2.3.4", "/livez").0, "/livez");
    }

    #[test]
    fn with_a_domain_hosts_decide() {
        let c = config(&[
            ("domain", "example.com"),
            ("gateway.upstreams", "http://127.0.0.1:1"),
        ]);
        let t = Table::build(&c, false, None);
        assert_eq!(label(&t, "example.com", "/").0, "gateway:frontend");
        assert_eq!(label(&t, "api.example.com", "/api/health").0, "gateway:api");
        assert_eq!(label(&t, "www.example.com", "/a").0, "gateway:www");
        assert_eq!(
            label(&t, "admin.example.com", "/"),
            ("gateway:admin".into(), "/_/".into())
        );
        assert_eq!(label(&t, "admin.example.com", "/api/x").0, "gateway:api");
        assert_eq!(
            label(&t, "docs.example.com", "/openapi.json"),
            ("gateway:docs".into(), "/docs/openapi.json".into())
        );
        // dev. without a staging upstream, app. unless configured: nothing serves them.
        assert_eq!(label(&t, "dev.example.com", "/").0, "gateway:unknown-host");
        assert_eq!(label(&t, "app.example.com", "/").0, "gateway:unknown-host");
        // Other names (an IP, another domain) route by path.
        assert_eq!(label(&t, "10.0.0.1", "/api/x").0, "gateway:api");
    }

    #[test]
    fn localhost_subdomains_work_in_development() {
        let c = config(&[]);
        let t = Table::build(&c, true, None);
        assert_eq!(label(&t, "api.localhost", "/x").0, "gateway:api");
        assert_eq!(label(&t, "admin.localhost", "/").1, "/_/");
        assert!(matches!(
            t.route("localhost", "/api/x").route.target,
            Target::Backend(Part::Api)
        ));
    }

    #[test]
    fn user_routes_come_first_most_specific_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pier.toml");
        std::fs::write(
            &file,
            r#"
[[gateway.routes]]
path = "/blog"
to = "upstream"
upstreams = ["http://127.0.0.1:9001"]
strip_prefix = true

[[gateway.routes]]
host = "shop.example.com"
path = "/blog"
to = "redirect"
redirect = "https://blog.example.com"

[[gateway.routes]]
host = "*.example.org"
to = "api"
"#,
        )
        .unwrap();
        let c = Config::load(
            pier_config::LoadOptions {
                role: Role::Gateway,
                config_file: Some(file),
                flags: vec![],
            },
            &pier_config::Env::default(),
        )
        .unwrap();
        let t = Table::build(&c, true, None);
        assert_eq!(
            label(&t, "x.com", "/blog/post"),
            ("gateway:route-0".into(), "/post".into())
        );
        assert_eq!(
            label(&t, "x.com", "/blog"),
            ("gateway:route-0".into(), "/".into())
        );
        assert_eq!(label(&t, "x.com", "/blogger").0, "gateway:frontend");
        assert_eq!(
            label(&t, "shop.example.com", "/blog/a").0,
            "gateway:route-1"
        );
        assert_eq!(label(&t, "a.example.org", "/").0, "gateway:route-2");
        assert_eq!(label(&t, "example.org", "/").0, "gateway:frontend");
    }
}
