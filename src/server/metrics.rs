//! A small Prometheus registry: exactly the series `/metrics` exposes, rendered in the text
//! exposition format. Hand-written rather than a metrics crate to keep the dependency tree
//! lean; every update is one short mutex hold or an atomic, far below a request's cost.
//!
//! Series: `medlink_requests_total{route,status}`, `medlink_request_duration_seconds{route}`
//! (histogram), `medlink_batch_size` and `medlink_batch_duration_seconds` (histograms of the
//! encoder workers' merged batches), `medlink_queue_depth` (mentions admitted and not yet
//! answered), `medlink_requests_in_flight`, `medlink_rejected_total{reason}`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[slot] += 1;
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// The server's metrics. Shared by the HTTP layer and the encoder workers.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    batch_size: Mutex<Histogram>,
    batch_seconds: Mutex<Histogram>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    queue_depth: AtomicI64,
    in_flight: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            batch_size: Mutex::new(Histogram::new(BATCH_BUCKETS)),
            batch_seconds: Mutex::new(Histogram::new(LATENCY_BUCKETS)),
            rejected: Mutex::default(),
            queue_depth: AtomicI64::new(0),
            in_flight: AtomicI64::new(0),
        }
    }
}

/// Locks a metrics mutex; a poisoned one (a panic elsewhere while holding it) still holds
/// consistent counters, so it is used as is rather than propagating the panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// One finished request. `route` is the matched route template, never the raw path (which
    /// could carry ids or typos and explode the label set).
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        *lock(&self.requests)
            .entry((route.to_string(), status))
            .or_default() += 1;
        lock(&self.latency)
            .entry(route.to_string())
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
    }

    /// One batch run by an encoder worker.
    pub fn observe_batch(&self, mentions: usize, seconds: f64) {
        lock(&self.batch_size).observe(mentions as f64);
        lock(&self.batch_seconds).observe(seconds);
    }

    pub fn reject(&self, reason: &'static str) {
        *lock(&self.rejected).entry(reason).or_default() += 1;
    }

    pub fn queue_add(&self, mentions: i64) {
        self.queue_depth.fetch_add(mentions, Ordering::Relaxed);
    }

    pub fn in_flight_add(&self, requests: i64) {
        self.in_flight.fetch_add(requests, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP medlink_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE medlink_requests_total counter\n");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "medlink_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP medlink_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE medlink_request_duration_seconds histogram\n");
        for (route, h) in lock(&self.latency).iter() {
            h.render(
                &mut out,
                "medlink_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out.push_str("# HELP medlink_batch_size Mentions per encoder batch (merged requests).\n");
        out.push_str("# TYPE medlink_batch_size histogram\n");
        lock(&self.batch_size).render(&mut out, "medlink_batch_size", "");
        out.push_str("# HELP medlink_batch_duration_seconds Encoder time per batch.\n");
        out.push_str("# TYPE medlink_batch_duration_seconds histogram\n");
        lock(&self.batch_seconds).render(&mut out, "medlink_batch_duration_seconds", "");
        out.push_str("# HELP medlink_queue_depth Mentions admitted and not yet answered.\n");
        out.push_str("# TYPE medlink_queue_depth gauge\n");
        let _ = writeln!(
            out,
            "medlink_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out.push_str("# HELP medlink_requests_in_flight Requests being answered.\n");
        out.push_str("# TYPE medlink_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "medlink_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str("# HELP medlink_rejected_total Requests refused by a limit, by reason.\n");
        out.push_str("# TYPE medlink_rejected_total counter\n");
        for (reason, n) in lock(&self.rejected).iter() {
            let _ = writeln!(out, "medlink_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_request("/v1/link", 200, 0.004);
        m.observe_request("/v1/link", 200, 0.02);
        m.observe_request("/v1/link", 422, 20.0);
        let text = m.render();
        assert!(text.contains("medlink_requests_total{route=\"/v1/link\",status=\"200\"} 2"));
        assert!(text.contains(
            "medlink_request_duration_seconds_bucket{route=\"/v1/link\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "medlink_request_duration_seconds_bucket{route=\"/v1/link\",le=\"0.025\"} 2"
        ));
        assert!(text
            .contains("medlink_request_duration_seconds_bucket{route=\"/v1/link\",le=\"+Inf\"} 3"));
        assert!(text.contains("medlink_batch_size_count 0"));
    }
}
