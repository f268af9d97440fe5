//! What the host counts per component, exposed in Prometheus' text format
//! on the admin listener: requests by status, time to the response head,
//! and how guests ended when they did not answer cleanly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::executor::Priority;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// How a guest ended without a clean answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    Trap,
    Timeout,
    ErrorCode,
    /// It trapped or timed out after its response head had gone.
    AfterHead,
    /// Its response was larger than it may send.
    ResponseTooLarge,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Trap => "trap",
            Failure::Timeout => "timeout",
            Failure::ErrorCode => "error_code",
            Failure::AfterHead => "after_head",
            Failure::ResponseTooLarge => "response_too_large",
        }
    }
}

#[derive(Default)]
struct ComponentMetrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    failures: Mutex<BTreeMap<Failure, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    instantiations: AtomicU64,
}

/// One database pool's connections, for the gauges.
pub struct PoolGauge {
    pub database: String,
    pub priority: Priority,
    pub size: u32,
    pub idle: usize,
}

/// Every component's counters, made once at start-up.
#[derive(Default)]
pub struct Metrics {
    components: BTreeMap<String, ComponentMetrics>,
    unrouted: AtomicU64,
}

impl Metrics {
    pub fn new<'a>(components: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            components: components.into_iter().map(|c| (c.to_owned(), ComponentMetrics::default())).collect(),
            unrouted: AtomicU64::new(0),
        }
    }

    /// A request a component answered (or the host for it), with the time
    /// its response head took.
    pub fn observe(&self, component: &str, status: u16, elapsed: Duration) {
        let Some(m) = self.components.get(component) else { return };
        *m.by_status.lock().unwrap_or_else(|e| e.into_inner()).entry(status).or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in m.buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        m.count.fetch_add(1, Ordering::Relaxed);
        m.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn failed(&self, component: &str, failure: Failure) {
        if let Some(m) = self.components.get(component) {
            *m.failures.lock().unwrap_or_else(|e| e.into_inner()).entry(failure).or_default() += 1;
        }
    }

    /// A new instance of `component` was made.
    pub fn instantiated(&self, component: &str) {
        if let Some(m) = self.components.get(component) {
            m.instantiations.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn unrouted(&self) {
        self.unrouted.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format; `pools` adds each database pool's
    /// connections in use and idle.
    pub fn render(&self, pools: &[PoolGauge]) -> String {
        let mut out = String::new();
        out.push_str("# HELP gatehouse_requests_total Requests by component and response status.\n");
        out.push_str("# TYPE gatehouse_requests_total counter\n");
        for (name, m) in &self.components {
            for (status, n) in m.by_status.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = writeln!(out, "gatehouse_requests_total{{component=\"{name}\",status=\"{status}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP gatehouse_unrouted_requests_total Requests no component's route matched.\n\
             # TYPE gatehouse_unrouted_requests_total counter\ngatehouse_unrouted_requests_total {}",
            self.unrouted.load(Ordering::Relaxed)
        );
        out.push_str("# HELP gatehouse_guest_failures_total Guests that trapped, ran out of time or answered with an error code.\n");
        out.push_str("# TYPE gatehouse_guest_failures_total counter\n");
        for (name, m) in &self.components {
            for (failure, n) in m.failures.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = writeln!(
                    out,
                    "gatehouse_guest_failures_total{{component=\"{name}\",kind=\"{}\"}} {n}",
                    failure.label()
                );
            }
        }
        out.push_str(
            "# HELP gatehouse_instantiations_total Instances made (WASIp3 instances may serve several requests).\n",
        );
        out.push_str("# TYPE gatehouse_instantiations_total counter\n");
        for (name, m) in &self.components {
            let n = m.instantiations.load(Ordering::Relaxed);
            let _ = writeln!(out, "gatehouse_instantiations_total{{component=\"{name}\"}} {n}");
        }
        out.push_str("# HELP gatehouse_response_head_seconds Time from a request's arrival to its response head.\n");
        out.push_str("# TYPE gatehouse_response_head_seconds histogram\n");
        for (name, m) in &self.components {
            for (bucket, bound) in m.buckets.iter().zip(BUCKETS) {
                let n = bucket.load(Ordering::Relaxed);
                let _ =
                    writeln!(out, "gatehouse_response_head_seconds_bucket{{component=\"{name}\",le=\"{bound}\"}} {n}");
            }
            let count = m.count.load(Ordering::Relaxed);
            let sum = m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "gatehouse_response_head_seconds_bucket{{component=\"{name}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "gatehouse_response_head_seconds_sum{{component=\"{name}\"}} {sum}");
            let _ = writeln!(out, "gatehouse_response_head_seconds_count{{component=\"{name}\"}} {count}");
        }
        out.push_str("# HELP gatehouse_db_pool_connections Pooled database connections by state.\n");
        out.push_str("# TYPE gatehouse_db_pool_connections gauge\n");
        for PoolGauge { database, priority, size, idle } in pools {
            // The low-priority guests' own pools are told apart by a label
            // of their own; the others' lines are as they always were.
            let labels = match priority {
                Priority::Normal => format!("database=\"{database}\""),
                Priority::Low => format!("database=\"{database}\",priority=\"low\""),
            };
            let in_use = (*size as usize).saturating_sub(*idle);
            let _ = writeln!(out, "gatehouse_db_pool_connections{{{labels},state=\"in_use\"}} {in_use}");
            let _ = writeln!(out, "gatehouse_db_pool_connections{{{labels},state=\"idle\"}} {idle}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_in_prometheus_text() {
        let m = Metrics::new(["items"]);
        m.observe("items", 200, Duration::from_millis(3));
        m.observe("items", 200, Duration::from_millis(30));
        m.observe("items", 404, Duration::from_micros(100));
        m.failed("items", Failure::Trap);
        m.observe("unknown", 200, Duration::ZERO);
        m.unrouted();
        let text = m.render(&[
            PoolGauge { database: "app".into(), priority: Priority::Normal, size: 3, idle: 1 },
            PoolGauge { database: "app".into(), priority: Priority::Low, size: 1, idle: 1 },
        ]);
        for line in [
            "gatehouse_requests_total{component=\"items\",status=\"200\"} 2",
            "gatehouse_requests_total{component=\"items\",status=\"404\"} 1",
            "gatehouse_guest_failures_total{component=\"items\",kind=\"trap\"} 1",
            "gatehouse_response_head_seconds_bucket{component=\"items\",le=\"0.005\"} 2",
            "gatehouse_response_head_seconds_bucket{component=\"items\",le=\"+Inf\"} 3",
            "gatehouse_response_head_seconds_count{component=\"items\"} 3",
            "gatehouse_unrouted_requests_total 1",
            "gatehouse_db_pool_connections{database=\"app\",state=\"in_use\"} 2",
            "gatehouse_db_pool_connections{database=\"app\",priority=\"low\",state=\"in_use\"} 0",
            "gatehouse_db_pool_connections{database=\"app\",priority=\"low\",state=\"idle\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("unknown"));
    }
}
