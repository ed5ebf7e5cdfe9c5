//! Upstream pools: members, load balancing, active health checks and passive ejection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use http::Uri;
use pier_config::{Balance, HealthCheck};
use rand::Rng;

use crate::proxy::Client;

/// One upstream address.
#[derive(Debug)]
pub(crate) struct Member {
    /// `scheme://host:port`, what requests are sent to.
    pub(crate) base: Uri,
    /// How it shows in metrics and the status page.
    pub(crate) label: String,
    in_flight: AtomicU32,
    /// Active checks say it is up (optimistic until the first check).
    up: AtomicBool,
    check_passes: AtomicU32,
    check_fails: AtomicU32,
    /// Consecutive connect errors or 5xx answers.
    failures: AtomicU32,
    /// Ejections in a row, for the backoff.
    ejections: AtomicU32,
    /// Milliseconds since the pool's epoch until which the member is ejected.
    ejected_until: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// A plain-HTTP member at an IP address is reached directly, over these connections.
    pub(crate) direct: Option<SocketAddr>,
    pub(crate) idle: crate::h1pool::Idle,
    /// Its idle connections for the fast path.
    pub(crate) raw: crate::fast::RawIdle,
    /// Spoken to in HTTP/2 without TLS (`h2c://`).
    pub(crate) h2c: bool,
}

/// An `h2c://` URL as the `http://` one requests go to, and whether it was one.
fn plain_base(uri: &Uri) -> (Uri, bool) {
    if uri.scheme_str() == Some("h2c")
        && let Some(a) = uri.authority()
        && let Ok(plain) = format!("http://{a}").parse::<Uri>()
    {
        return (plain, true);
    }
    (uri.clone(), false)
}

impl Member {
    fn new(configured: Uri) -> Member {
        let label = configured
            .authority()
            .map_or_else(|| configured.to_string(), ToString::to_string);
        let (base, h2c) = plain_base(&configured);
        let direct = (base.scheme_str() == Some("http"))
            .then(|| {
                let host = base.host()?.trim_matches(['[', ']']);
                let ip: std::net::IpAddr = host.parse().ok()?;
                Some(SocketAddr::new(ip, base.port_u16().unwrap_or(80)))
            })
            .flatten();
        Member {
            // h2c members go through the HTTP/2 client, never the HTTP/1.1 connections.
            direct: direct.filter(|_| !h2c),
            h2c,
            idle: crate::h1pool::Idle::default(),
            raw: crate::fast::RawIdle::default(),
            base,
            label,
            in_flight: AtomicU32::new(0),
            up: AtomicBool::new(true),
            check_passes: AtomicU32::new(0),
            check_fails: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

/// Counts a request in flight on a member until dropped.
pub(crate) struct InFlight(Arc<Member>);

impl InFlight {
    pub(crate) fn member(&self) -> &Arc<Member> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a pool's members come from.
#[derive(Debug, Clone)]
enum Source {
    /// An IP address, or an https name (kept as a name for TLS).
    Fixed(Uri),
    /// A host name resolved again every `dns_refresh`; every address is a member.
    Dns {
        scheme: String,
        host: String,
        port: u16,
    },
}

/// Settings a pool takes from the gateway's configuration.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) balance: Balance,
    pub(crate) health: Option<HealthCheck>,
    pub(crate) eject_after: u32,
    pub(crate) eject_for: Duration,
    /// Idle keep-alive connections to a member are closed after this.
    pub(crate) idle_timeout: Duration,
}

/// A set of members behind one route.
pub(crate) struct Pool {
    pub(crate) name: String,
    urls: Vec<Uri>,
    sources: Vec<Source>,
    members: ArcSwap<Vec<Arc<Member>>>,
    settings: PoolSettings,
    next: AtomicUsize,
    epoch: Instant,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(name: String, urls: &[Uri], settings: PoolSettings) -> Pool {
        let mut sources = Vec::new();
        let mut members = Vec::new();
        for u in urls {
            let scheme = u.scheme_str().unwrap_or("http").to_owned();
            let host = u.host().unwrap_or("").trim_matches(['[', ']']).to_owned();
            let port = u
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 });
            if host.parse::<std::net::IpAddr>().is_ok() || scheme == "https" {
                members.push(Arc::new(Member::new(u.clone())));
                sources.push(Source::Fixed(u.clone()));
            } else {
                // Until the first resolution, the name itself is the member.
                members.push(Arc::new(Member::new(u.clone())));
                sources.push(Source::Dns { scheme, host, port });
            }
        }
        Pool {
            name,
            urls: urls.to_vec(),
            sources,
            members: ArcSwap::from_pointee(members),
            settings,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    /// The members as configured.
    pub(crate) fn urls(&self) -> &[Uri] {
        &self.urls
    }

    pub(crate) fn members(&self) -> Arc<Vec<Arc<Member>>> {
        self.members.load_full()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn available(&self, m: &Member, now: u64) -> bool {
        m.is_up() && m.ejected_until.load(Ordering::Relaxed) <= now
    }

    /// Picks a member not in `tried`. Healthy members first; when none is, any member (the
    /// health information may be stale, and trying beats refusing).
    pub(crate) fn pick(&self, tried: &[Arc<Member>]) -> Option<InFlight> {
        let members = self.members.load();
        let now = self.now_ms();
        let n = members.len();
        let fresh = |m: &Arc<Member>| !tried.iter().any(|t| Arc::ptr_eq(t, m));
        let usable = |m: &Arc<Member>| fresh(m) && self.available(m, now);
        let chosen = match self.settings.balance {
            Balance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &members[(start + i) % n])
                    .find(|m| usable(m))
            }
            Balance::LeastRequests => {
                // Two random members that can take the request; the less busy one.
                let mut rng = rand::rng();
                let ia = rng.random_range(0..n.max(1));
                let ib = if n > 1 {
                    let j = rng.random_range(0..n - 1);
                    Some(if j >= ia { j + 1 } else { j })
                } else {
                    None
                };
                let a = members.get(ia).filter(|m| usable(m));
                let b = ib.and_then(|i| members.get(i)).filter(|m| usable(m));
                match (a, b) {
                    (Some(a), Some(b)) => Some(if b.in_flight() < a.in_flight() { b } else { a }),
                    (Some(x), None) | (None, Some(x)) => Some(x),
                    (None, None) => {
                        let start = rng.random_range(0..n.max(1));
                        (0..n)
                            .map(|i| &members[(start + i) % n])
                            .find(|m| usable(m))
                    }
                }
            }
        };
        // None can take it: any fresh member, on the first attempt (the health information
        // may be stale, and trying beats refusing).
        let chosen = match chosen {
            Some(m) => m,
            None if tried.is_empty() => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &members[(start + i) % n])
                    .find(|m| fresh(m))?
            }
            None => return None,
        };
        chosen.in_flight.fetch_add(1, Ordering::Relaxed);
        chosen.requests.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(chosen.clone()))
    }

    /// A request on `m` succeeded.
    pub(crate) fn succeeded(&self, m: &Member) {
        if m.failures.load(Ordering::Relaxed) != 0 {
            m.failures.store(0, Ordering::Relaxed);
        }
        if m.ejections.load(Ordering::Relaxed) != 0
            && m.ejected_until.load(Ordering::Relaxed) <= self.now_ms()
        {
            m.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// A request on `m` failed to connect or got a 5xx: after enough in a row, eject it for a
    /// while, longer each time.
    pub(crate) fn failed(&self, m: &Member) {
        m.errors.fetch_add(1, Ordering::Relaxed);
        let n = m.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.settings.eject_after {
            m.failures.store(0, Ordering::Relaxed);
            let k = m.ejections.fetch_add(1, Ordering::Relaxed).min(4);
            let d = self.settings.eject_for * 2u32.pow(k);
            let until = self.now_ms() + u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            m.ejected_until.store(until, Ordering::Relaxed);
            tracing::warn!(pool = %self.name, member = %m.label, eject_ms = d.as_millis() as u64, "upstream member ejected after failures");
        }
    }

    /// `m` said it is shutting down: no new requests go to it until its health check passes
    /// again (or, without health checks, for the ejection time).
    pub(crate) fn draining(&self, m: &Member) {
        if self.settings.health.is_some() {
            if m.up.swap(false, Ordering::Relaxed) {
                m.check_passes.store(0, Ordering::Relaxed);
                tracing::info!(pool = %self.name, member = %m.label, "upstream member is draining; taken out of the pool");
            }
        } else {
            let until = self.now_ms()
                + u64::try_from(self.settings.eject_for.as_millis()).unwrap_or(u64::MAX);
            m.ejected_until.store(until, Ordering::Relaxed);
        }
    }

    pub(crate) fn ejected(&self, m: &Member) -> bool {
        m.ejected_until.load(Ordering::Relaxed) > self.now_ms()
    }

    /// Members that can take requests now.
    pub(crate) fn available_count(&self) -> usize {
        let now = self.now_ms();
        self.members
            .load()
            .iter()
            .filter(|m| self.available(m, now))
            .count()
    }

    /// Resolves the DNS sources again; keeps the state of members whose address stays.
    pub(crate) async fn refresh_dns(&self) {
        if !self.sources.iter().any(|s| matches!(s, Source::Dns { .. })) {
            return;
        }
        let old = self.members.load_full();
        let mut next: Vec<Arc<Member>> = Vec::new();
        for s in &self.sources {
            match s {
                Source::Fixed(u) => {
                    if let Some(m) = old.iter().find(|m| &m.base == u) {
                        next.push(m.clone());
                    }
                }
                Source::Dns { scheme, host, port } => {
                    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((
                        host.as_str(),
                        *port,
                    ))
                    .await
                    {
                        Ok(a) => a.collect(),
                        Err(e) => {
                            tracing::warn!(pool = %self.name, host = %host, error = %e, "upstream name did not resolve; keeping the last members");
                            old.iter()
                                .filter(|m| {
                                    m.base.host().is_some_and(|h| {
                                        h.trim_matches(['[', ']'])
                                            .parse::<std::net::IpAddr>()
                                            .is_ok()
                                    }) || m.base.host() == Some(host.as_str())
                                })
                                .for_each(|m| next.push(m.clone()));
                            continue;
                        }
                    };
                    for a in addrs {
                        let Ok(uri) = format!("{scheme}://{a}").parse::<Uri>() else {
                            continue;
                        };
                        let base = plain_base(&uri).0;
                        if next.iter().any(|m| m.base == base) {
                            continue;
                        }
                        match old.iter().find(|m| m.base == base) {
                            Some(m) => next.push(m.clone()),
                            None => next.push(Arc::new(Member::new(uri))),
                        }
                    }
                }
            }
        }
        if !next.is_empty() {
            let changed = next.len() != old.len()
                || next.iter().zip(old.iter()).any(|(a, b)| !Arc::ptr_eq(a, b));
            if changed {
                tracing::info!(pool = %self.name, members = next.len(), "upstream members changed");
            }
            self.members.store(Arc::new(next));
        }
    }

    /// One round of active health checks.
    pub(crate) async fn check_all(&self, clients: &crate::proxy::Clients) {
        let Some(hc) = &self.settings.health else {
            return;
        };
        let members = self.members.load_full();
        let checks = members.iter().map(|m| async move {
            let ok = probe(clients.for_member(m), m, hc).await;
            (m, ok)
        });
        for (m, ok) in futures_util::future::join_all(checks).await {
            if ok {
                m.check_fails.store(0, Ordering::Relaxed);
                let n = m.check_passes.fetch_add(1, Ordering::Relaxed) + 1;
                if !m.is_up() && n >= hc.rise {
                    m.up.store(true, Ordering::Relaxed);
                    tracing::info!(pool = %self.name, member = %m.label, "upstream member is healthy again");
                }
            } else {
                m.check_passes.store(0, Ordering::Relaxed);
                let n = m.check_fails.fetch_add(1, Ordering::Relaxed) + 1;
                if m.is_up() && n >= hc.fall {
                    m.up.store(false, Ordering::Relaxed);
                    tracing::warn!(pool = %self.name, member = %m.label, "upstream member failed its health checks");
                }
            }
        }
    }

    pub(crate) fn settings(&self) -> &PoolSettings {
        &self.settings
    }
}

async fn probe(client: &Client, m: &Member, hc: &HealthCheck) -> bool {
    let Ok(uri) = format!("{}{}", m.base.to_string().trim_end_matches('/'), hc.path).parse::<Uri>()
    else {
        return false;
    };
    let Ok(req) = http::Request::get(uri)
        .header(http::header::USER_AGENT, "pier-health-check")
        .body(Body::empty())
    else {
        return false;
    };
    match tokio::time::timeout(hc.timeout, client.request(req)).await {
        Ok(Ok(res)) => res.status().is_success(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(balance: Balance) -> PoolSettings {
        PoolSettings {
            balance,
            health: None,
            eject_after: 2,
            eject_for: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(90),
        }
    }

    fn uris(n: u16) -> Vec<Uri> {
        (0..n)
            .map(|i| format!("http://127.0.0.1:{}", 9000 + i).parse().unwrap())
            .collect()
    }

    #[test]
    fn round_robin_takes_turns() {
        let p = Pool::new("api".into(), &uris(3), settings(Balance::RoundRobin));
        let picks: Vec<String> = (0..6)
            .map(|_| p.pick(&[]).unwrap().member().label.clone())
            .collect();
        assert_eq!(picks[0..3], picks[3..6]);
        assert_ne!(picks[0], picks[1]);
        assert_ne!(picks[1], picks[2]);
    }

    #[test]
    fn least_requests_avoids_the_busy_member() {
        let p = Pool::new("api".into(), &uris(2), settings(Balance::LeastRequests));
        let busy = p.pick(&[]).unwrap();
        let busy_label = busy.member().label.clone();
        for _ in 0..20 {
            let other = p.pick(&[]).unwrap();
            assert_ne!(other.member().label, busy_label);
        }
    }

    #[test]
    fn failures_eject_and_retries_skip_tried_members() {
        let p = Pool::new("api".into(), &uris(2), settings(Balance::RoundRobin));
        let first = p.pick(&[]).unwrap().member().clone();
        p.failed(&first);
        p.failed(&first);
        assert!(p.ejected(&first));
        assert_eq!(p.available_count(), 1);
        for _ in 0..5 {
            assert!(!Arc::ptr_eq(p.pick(&[]).unwrap().member(), &first));
        }
        let second = p.pick(&[]).unwrap().member().clone();
        assert!(p.pick(std::slice::from_ref(&second)).is_none());
    }
}
