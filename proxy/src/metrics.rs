//! The proxy's counters, and the admin listener that serves them with
//! liveness and readiness, apart from client traffic:
//!
//! - `GET /healthz`: the process serves;
//! - `GET /readyz`: every upstream has a server its health check passes;
//! - `GET /metrics`: Prometheus' text format.
//!
//! Labels have bounded values only: a route is its configured prefix, never
//! a client's path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::lb::LoadBalancer;
use pingora::lb::selection::RoundRobin;
use pingora::protocols::http::ServerSession;

use crate::connections::ConnectionRegistry;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct ProxyMetrics {
    /// Answers by route and status.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Time to the end of the answer, by route.
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Tokens refused, by reason (`missing`, `invalid`, `unknown_key`).
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests a rate limit refused, by limit.
    rate_limited: Mutex<BTreeMap<String, u64>>,
    /// Requests tried again on another server, by upstream.
    retries: Mutex<BTreeMap<String, u64>>,
}

/// The route label of a request no route took.
pub const NO_ROUTE: &str = "none";

impl ProxyMetrics {
    pub fn answered(&self, route: &str, status: u16, elapsed: Duration) {
        *lock(&self.requests).entry((route.to_owned(), status)).or_default() += 1;
        let mut latency = lock(&self.latency);
        let histogram = latency.entry(route.to_owned()).or_default();
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    pub fn auth_failed(&self, reason: &'static str) {
        *lock(&self.auth_failures).entry(reason).or_default() += 1;
    }

    pub fn retried(&self, upstream: &str) {
        *lock(&self.retries).entry(upstream.to_owned()).or_default() += 1;
    }

    pub fn rate_limited(&self, limit: &str) {
        *lock(&self.rate_limited).entry(limit.to_owned()).or_default() += 1;
    }

    /// The text exposition format, with the connections open and each
    /// upstream server's health.
    pub fn render(
        &self,
        open_connections: usize,
        upstreams: &BTreeMap<String, Arc<LoadBalancer<RoundRobin>>>,
    ) -> String {
        let mut out = String::new();
        header(&mut out, "gatehouse_proxy_requests_total", "counter", "Answers by route and status.");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "gatehouse_proxy_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        header(
            &mut out,
            "gatehouse_proxy_request_seconds",
            "histogram",
            "Time from a request to the end of its answer.",
        );
        for (route, h) in lock(&self.latency).iter() {
            for (n, bound) in h.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(out, "gatehouse_proxy_request_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}");
            }
            let _ =
                writeln!(out, "gatehouse_proxy_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "gatehouse_proxy_request_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "gatehouse_proxy_request_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        header(&mut out, "gatehouse_proxy_auth_failures_total", "counter", "Bearer tokens refused, by reason.");
        for (reason, n) in lock(&self.auth_failures).iter() {
            let _ = writeln!(out, "gatehouse_proxy_auth_failures_total{{reason=\"{reason}\"}} {n}");
        }
        header(&mut out, "gatehouse_proxy_rate_limited_total", "counter", "Requests refused by a rate limit.");
        for (limit, n) in lock(&self.rate_limited).iter() {
            let _ = writeln!(out, "gatehouse_proxy_rate_limited_total{{limit=\"{limit}\"}} {n}");
        }
        header(
            &mut out,
            "gatehouse_proxy_upstream_retries_total",
            "counter",
            "Requests tried again on another server.",
        );
        for (upstream, n) in lock(&self.retries).iter() {
            let _ = writeln!(out, "gatehouse_proxy_upstream_retries_total{{upstream=\"{upstream}\"}} {n}");
        }
        header(&mut out, "gatehouse_proxy_open_connections", "gauge", "Client connections open.");
        let _ = writeln!(out, "gatehouse_proxy_open_connections {open_connections}");
        header(
            &mut out,
            "gatehouse_proxy_upstream_healthy",
            "gauge",
            "1 if an upstream server passes its health check.",
        );
        for (name, lb) in upstreams {
            for backend in lb.backends().get_backend().iter() {
                let healthy = u8::from(lb.backends().ready(backend));
                let _ = writeln!(
                    out,
                    "gatehouse_proxy_upstream_healthy{{upstream=\"{name}\",address=\"{}\"}} {healthy}",
                    backend.addr
                );
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The admin listener's answers.
pub struct AdminApp {
    pub metrics: Arc<ProxyMetrics>,
    pub upstreams: BTreeMap<String, Arc<LoadBalancer<RoundRobin>>>,
    pub connections: Arc<ConnectionRegistry>,
}

impl AdminApp {
    /// Ready when every upstream has a server that passes its checks.
    fn ready(&self) -> Result<(), String> {
        for (name, lb) in &self.upstreams {
            let backends = lb.backends();
            if !backends.get_backend().iter().any(|b| backends.ready(b)) {
                return Err(format!("upstream `{name}` has no healthy server"));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let (status, content_type, body) = match session.req_header().uri.path() {
            "/healthz" => (200, "text/plain", "ok\n".to_owned()),
            "/readyz" => match self.ready() {
                Ok(()) => (200, "text/plain", "ready\n".to_owned()),
                Err(why) => (503, "application/json", serde_json::json!({ "detail": why }).to_string()),
            },
            "/metrics" => (
                200,
                "text/plain; version=0.0.4",
                self.metrics.render(self.connections.open_connections(), &self.upstreams),
            ),
            _ => (404, "application/json", serde_json::json!({ "detail": "Not Found" }).to_string()),
        };
        http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .body(body.into_bytes())
            .expect("a valid response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_in_prometheus_text() {
        let m = ProxyMetrics::default();
        m.answered("/items", 200, Duration::from_millis(3));
        m.answered("/items", 200, Duration::from_millis(30));
        m.answered(NO_ROUTE, 404, Duration::from_micros(100));
        m.auth_failed("missing");
        m.rate_limited("login_ip");
        let text = m.render(1, &BTreeMap::new());
        for line in [
            r#"gatehouse_proxy_requests_total{route="/items",status="200"} 2"#,
            r#"gatehouse_proxy_requests_total{route="none",status="404"} 1"#,
            r#"gatehouse_proxy_request_seconds_bucket{route="/items",le="0.005"} 1"#,
            r#"gatehouse_proxy_request_seconds_bucket{route="/items",le="+Inf"} 2"#,
            r#"gatehouse_proxy_auth_failures_total{reason="missing"} 1"#,
            r#"gatehouse_proxy_rate_limited_total{limit="login_ip"} 1"#,
            "gatehouse_proxy_open_connections 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
