//! The metric registry and the Prometheus text exposition.
//!
//! Request metrics are recorded with atomics behind a read-mostly map keyed by (method, route);
//! the write lock is taken only the first time a route is seen. Everything else (database,
//! process) is read at scrape time, so it costs nothing between scrapes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use pier_storage::StoreStats;

use crate::ProcessStats;

/// Every metric name pier exports. Raw strings are not used anywhere else.
pub mod names {
    pub const HTTP_REQUESTS: &str = "pier_http_requests_total";
    pub const HTTP_DURATION: &str = "pier_http_request_duration_seconds";
    pub const HTTP_IN_FLIGHT: &str = "pier_http_requests_in_flight";
    pub const HTTP_RESPONSE_BYTES: &str = "pier_http_response_bytes_total";
    pub const DB_QUEUE: &str = "pier_db_queue_length";
    pub const DB_CONNECTIONS: &str = "pier_db_connections";
    pub const DB_WAITING: &str = "pier_db_waiting_requests";
    pub const DB_WAL: &str = "pier_db_wal_size_bytes";
    pub const DB_COMMITS: &str = "pier_db_commits_total";
    pub const DB_COMMITTED_WRITES: &str = "pier_db_committed_writes_total";
    pub const DB_UP: &str = "pier_db_up";
    pub const READY: &str = "pier_ready";
    pub const BUILD_INFO: &str = "pier_build_info";
    pub const BACKUP_LAST_SUCCESS: &str = "pier_backup_last_success_timestamp_seconds";
    pub const BACKUP_LAST_DURATION: &str = "pier_backup_last_duration_seconds";
    pub const BACKUP_LAST_SIZE: &str = "pier_backup_last_size_bytes";
    pub const BACKUP_FAILURES: &str = "pier_backup_failures_total";
    pub const PROCESS_RSS: &str = "process_resident_memory_bytes";
    pub const PROCESS_VSZ: &str = "process_virtual_memory_bytes";
    pub const PROCESS_CPU: &str = "process_cpu_seconds_total";
    pub const PROCESS_FDS: &str = "process_open_fds";
    pub const PROCESS_MAX_FDS: &str = "process_max_fds";
    pub const PROCESS_START: &str = "process_start_time_seconds";
    pub const GATEWAY_MEMBER_UP: &str = "pier_gateway_upstream_up";
    pub const GATEWAY_MEMBER_IN_FLIGHT: &str = "pier_gateway_upstream_in_flight";
    pub const GATEWAY_MEMBER_REQUESTS: &str = "pier_gateway_upstream_requests_total";
    pub const GATEWAY_MEMBER_FAILURES: &str = "pier_gateway_upstream_failures_total";
    pub const GATEWAY_STATIC_FILES: &str = "pier_gateway_static_files";
    pub const GATEWAY_STATIC_BYTES: &str = "pier_gateway_static_memory_bytes";
    pub const TLS_EXPIRY_DAYS: &str = "pier_tls_certificate_expiry_days";
    pub const TLS_RENEWAL_FAILURES: &str = "pier_tls_renewal_failures_total";
}

/// Something that adds its own series to every scrape (the gateway's pools, …).
pub type Collector = Arc<dyn Fn(&mut Exposition) + Send + Sync>;

/// The text being rendered, for collectors: each helper writes a family's HELP and TYPE once.
pub struct Exposition<'a> {
    out: &'a mut String,
}

impl Exposition<'_> {
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        header(self.out, name, kind, help);
    }

    /// One sample with labels (values escaped here).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let mut l = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                l.push(',');
            }
            let _ = write!(l, "{k}=\"{}\"", escape(v));
        }
        if l.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{l}}} {value}");
        }
    }
}

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct RouteStats {
    /// Non-cumulative bucket counts; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
    bytes: AtomicU64,
    by_status: RwLock<Vec<(u16, Arc<AtomicU64>)>>,
}

impl RouteStats {
    fn status_counter(&self, status: u16) -> Arc<AtomicU64> {
        if let Ok(list) = self.by_status.read()
            && let Some((_, c)) = list.iter().find(|(s, _)| *s == status)
        {
            return c.clone();
        }
        let mut list = match self.by_status.write() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if let Some((_, c)) = list.iter().find(|(s, _)| *s == status) {
            return c.clone();
        }
        let c = Arc::new(AtomicU64::new(0));
        list.push((status, c.clone()));
        c
    }
}

type RouteKey = (&'static str, Arc<str>);

/// Per route, the stats of each method seen on it.
type RouteMap = HashMap<Arc<str>, Vec<(&'static str, Arc<RouteStats>)>>;

/// The process-wide registry.
pub struct Metrics {
    routes: RwLock<RouteMap>,
    in_flight: AtomicI64,
    collectors: RwLock<Vec<Collector>>,
    backups: Arc<crate::backup::BackupMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Started when a request arrives; [`RequestTimer::finish`] records it.
pub struct RequestTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
    done: bool,
}

impl RequestTimer<'_> {
    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records the finished request.
    pub fn finish(mut self, method: &str, route: &str, status: u16, bytes: u64) -> Duration {
        let elapsed = self.start.elapsed();
        self.metrics.record(method, route, status, bytes, elapsed);
        self.done = true;
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        elapsed
    }
}

impl Drop for RequestTimer<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The request future was dropped (client went away): still not in flight.
            self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A method name as a static string, so keys never allocate for the method.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics {
            routes: RwLock::new(HashMap::new()),
            in_flight: AtomicI64::new(0),
            collectors: RwLock::new(Vec::new()),
            backups: Arc::default(),
        }
    }

    /// Adds series of another component to every scrape.
    pub fn register(&self, collector: Collector) {
        match self.collectors.write() {
            Ok(mut l) => l.push(collector),
            Err(p) => p.into_inner().push(collector),
        }
    }

    /// The backup gauges and counters, shared with [`crate::backup::Backups`].
    pub fn backups(&self) -> Arc<crate::backup::BackupMetrics> {
        self.backups.clone()
    }

    /// Marks a request as in flight and starts its clock.
    pub fn start(&self) -> RequestTimer<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestTimer {
            metrics: self,
            start: Instant::now(),
            done: false,
        }
    }

    fn route(&self, method: &str, route: &str) -> Arc<RouteStats> {
        let method = method_label(method);
        let find = |map: &RouteMap| {
            map.get(route)
                .and_then(|l| l.iter().find(|(m, _)| *m == method))
                .map(|(_, r)| r.clone())
        };
        if let Ok(map) = self.routes.read()
            && let Some(r) = find(&map)
        {
            return r.clone();
        }
        let mut map = match self.routes.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(r) = find(&map) {
            return r;
        }
        let r = Arc::new(RouteStats::default());
        map.entry(Arc::from(route))
            .or_default()
            .push((method, r.clone()));
        r
    }

    fn record(&self, method: &str, route: &str, status: u16, bytes: u64, elapsed: Duration) {
        let r = self.route(method, route);
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        r.buckets[slot].fetch_add(1, Ordering::Relaxed);
        r.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        r.count.fetch_add(1, Ordering::Relaxed);
        r.bytes.fetch_add(bytes, Ordering::Relaxed);
        r.status_counter(status).fetch_add(1, Ordering::Relaxed);
    }

    /// Requests now in flight.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4) of everything.
    pub fn render(&self, db: Option<&StoreStats>, ready: bool) -> String {
        let mut out = String::with_capacity(8192);
        let mut routes: Vec<(RouteKey, Arc<RouteStats>)> = match self.routes.read() {
            Ok(m) => m
                .iter()
                .flat_map(|(route, l)| {
                    l.iter()
                        .map(|(method, r)| ((*method, route.clone()), r.clone()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        routes.sort_by(|a, b| (a.0.1.as_ref(), a.0.0).cmp(&(b.0.1.as_ref(), b.0.0)));

        header(
            &mut out,
            names::HTTP_REQUESTS,
            "counter",
            "HTTP requests by method, matched route and status.",
        );
        for ((method, route), r) in &routes {
            let mut statuses: Vec<(u16, u64)> = match r.by_status.read() {
                Ok(l) => l
                    .iter()
                    .map(|(s, c)| (*s, c.load(Ordering::Relaxed)))
                    .collect(),
                Err(_) => Vec::new(),
            };
            statuses.sort_unstable();
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "{}{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    names::HTTP_REQUESTS,
                    escape(route)
                );
            }
        }

        header(
            &mut out,
            names::HTTP_DURATION,
            "histogram",
            "HTTP request latency by method and matched route.",
        );
        for ((method, route), r) in &routes {
            let route = escape(route);
            let mut cumulative = 0u64;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += r.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{}_bucket{{method=\"{method}\",route=\"{route}\",le=\"{bound}\"}} {cumulative}",
                    names::HTTP_DURATION
                );
            }
            cumulative += r.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let count = r.count.load(Ordering::Relaxed).max(cumulative);
            let _ = writeln!(
                out,
                "{}_bucket{{method=\"{method}\",route=\"{route}\",le=\"+Inf\"}} {count}",
                names::HTTP_DURATION
            );
            #[allow(clippy::cast_precision_loss)]
            let sum = r.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "{}_sum{{method=\"{method}\",route=\"{route}\"}} {sum}",
                names::HTTP_DURATION
            );
            let _ = writeln!(
                out,
                "{}_count{{method=\"{method}\",route=\"{route}\"}} {count}",
                names::HTTP_DURATION
            );
        }

        header(
            &mut out,
            names::HTTP_RESPONSE_BYTES,
            "counter",
            "Response body bytes sent, by method and matched route.",
        );
        for ((method, route), r) in &routes {
            let _ = writeln!(
                out,
                "{}{{method=\"{method}\",route=\"{}\"}} {}",
                names::HTTP_RESPONSE_BYTES,
                escape(route),
                r.bytes.load(Ordering::Relaxed)
            );
        }

        gauge(
            &mut out,
            names::HTTP_IN_FLIGHT,
            "HTTP requests being served now.",
            self.in_flight().max(0),
        );
        gauge(
            &mut out,
            names::READY,
            "1 when /readyz answers 200.",
            i64::from(ready),
        );
        gauge(
            &mut out,
            names::BACKUP_LAST_SUCCESS,
            "Unix time of the last successful backup (0: none since start).",
            self.backups.last_success_unix(),
        );
        gauge(
            &mut out,
            names::BACKUP_LAST_DURATION,
            "Duration of the last successful backup.",
            self.backups.last_duration().as_secs_f64(),
        );
        gauge(
            &mut out,
            names::BACKUP_LAST_SIZE,
            "Size of the last successful backup archive.",
            self.backups.last_size_bytes(),
        );
        counter(
            &mut out,
            names::BACKUP_FAILURES,
            "Backups that failed since start.",
            self.backups.failures(),
        );

        header(
            &mut out,
            names::DB_UP,
            "gauge",
            "1 when the database engine is open, by engine.",
        );
        match db {
            Some(s) => {
                let _ = writeln!(out, "{}{{engine=\"{}\"}} 1", names::DB_UP, s.engine);
                header(
                    &mut out,
                    names::DB_QUEUE,
                    "gauge",
                    "Database operations waiting for a connection or thread.",
                );
                let _ = writeln!(
                    out,
                    "{}{{kind=\"write\"}} {}",
                    names::DB_QUEUE,
                    s.write_queue
                );
                let _ = writeln!(
                    out,
                    "{}{{kind=\"read\"}} {}",
                    names::DB_QUEUE,
                    s.read_queue + s.waiting
                );
                header(
                    &mut out,
                    names::DB_CONNECTIONS,
                    "gauge",
                    "Database connections by state.",
                );
                let _ = writeln!(
                    out,
                    "{}{{state=\"open\"}} {}",
                    names::DB_CONNECTIONS,
                    s.connections
                );
                let _ = writeln!(
                    out,
                    "{}{{state=\"idle\"}} {}",
                    names::DB_CONNECTIONS,
                    s.idle_connections
                );
                let _ = writeln!(
                    out,
                    "{}{{state=\"max\"}} {}",
                    names::DB_CONNECTIONS,
                    s.max_connections
                );
                gauge(
                    &mut out,
                    names::DB_WAITING,
                    "Callers waiting for a pooled database connection.",
                    s.waiting,
                );
                gauge(
                    &mut out,
                    names::DB_WAL,
                    "Size of the SQLite write-ahead log.",
                    s.wal_bytes,
                );
                counter(
                    &mut out,
                    names::DB_COMMITS,
                    "Transactions committed by the SQLite writer.",
                    s.commits,
                );
                counter(
                    &mut out,
                    names::DB_COMMITTED_WRITES,
                    "Writes committed by the SQLite writer (several may share a commit).",
                    s.committed_writes,
                );
            }
            None => {
                let _ = writeln!(out, "{}{{engine=\"none\"}} 0", names::DB_UP);
            }
        }

        let p = ProcessStats::read();
        gauge(
            &mut out,
            names::PROCESS_RSS,
            "Resident memory size in bytes.",
            p.resident_bytes,
        );
        gauge(
            &mut out,
            names::PROCESS_VSZ,
            "Virtual memory size in bytes.",
            p.virtual_bytes,
        );
        counter(
            &mut out,
            names::PROCESS_CPU,
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        );
        gauge(
            &mut out,
            names::PROCESS_FDS,
            "Number of open file descriptors.",
            p.open_fds,
        );
        gauge(
            &mut out,
            names::PROCESS_MAX_FDS,
            "Maximum number of open file descriptors.",
            p.max_fds,
        );
        gauge(
            &mut out,
            names::PROCESS_START,
            "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds,
        );

        header(
            &mut out,
            names::BUILD_INFO,
            "gauge",
            "pier's version; always 1.",
        );
        let _ = writeln!(
            out,
            "{}{{version=\"{}\"}} 1",
            names::BUILD_INFO,
            pier_core::VERSION
        );
        let collectors: Vec<Collector> = match self.collectors.read() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for c in collectors {
            c(&mut Exposition { out: &mut out });
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let m = Metrics::new();
        for status in [200, 200, 404] {
            let t = m.start();
            assert_eq!(m.in_flight(), 1);
            t.finish("GET", "/api/health", status, 10);
        }
        let t = m.start();
        drop(t);
        assert_eq!(m.in_flight(), 0);
        let text = m.render(None, true);
        assert!(
            text.contains(
                r#"pier_http_requests_total{method="GET",route="/api/health",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"pier_http_requests_total{method="GET",route="/api/health",status="404"} 1"#
        ));
        assert!(text.contains(
            r#"pier_http_request_duration_seconds_count{method="GET",route="/api/health"} 3"#
        ));
        assert!(text.contains(r#"le="+Inf"} 3"#));
        assert!(
            text.contains(r#"pier_http_response_bytes_total{method="GET",route="/api/health"} 30"#)
        );
        assert!(text.contains("pier_ready 1"));
    }

    #[test]
    fn label_values_are_escaped_and_methods_bounded() {
        let m = Metrics::new();
        m.start().finish("BREW", "a\"b\\c", 200, 0);
        let text = m.render(None, false);
        assert!(text.contains(r#"method="OTHER",route="a\"b\\c""#), "{text}");
    }

    #[test]
    fn buckets_are_cumulative() {
        let m = Metrics::new();
        m.record("GET", "/x", 200, 0, Duration::from_micros(50));
        m.record("GET", "/x", 200, 0, Duration::from_millis(3));
        m.record("GET", "/x", 200, 0, Duration::from_secs(10));
        let text = m.render(None, false);
        assert!(text.contains(r#"le="0.0001"} 1"#));
        assert!(text.contains(r#"le="0.005"} 2"#));
        assert!(text.contains(r#"le="5"} 2"#));
        assert!(text.contains(r#"le="+Inf"} 3"#));
    }
}
