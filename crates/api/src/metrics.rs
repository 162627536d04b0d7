//! Prometheus metrics. Each application owns its registry (no global recorder), so several instances in one
//! test process never mix their numbers. Requests are labelled by route template, never by raw path, so an
//! attacker cannot blow up the number of series.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use dashtam_domain::ports::PoolStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The label for requests no route matched.
const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RateLimitDecisionLabels {
    rule: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ViolationLabels {
    outcome: &'static str,
}

/// The application's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram>,
    db_pool_connections: Family<PoolLabels, Gauge>,
    rate_limit_decisions: Family<RateLimitDecisionLabels, Counter>,
    rate_limit_backend_failures: Family<BackendLabels, Counter>,
    rate_limit_violations: Family<ViolationLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~8 s in doublings: fine resolution where API latencies live.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Metrics {
    /// An empty registry with every series this crate records.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("dashtam");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route template and status", requests.clone());
        let request_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            request_duration.clone(),
        );
        let db_pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections (open, idle, max)",
            db_pool_connections.clone(),
        );
        let rate_limit_decisions = Family::<RateLimitDecisionLabels, Counter>::default();
        registry.register(
            "rate_limit_decisions",
            "Rate-limit checks by rule and outcome (admitted, denied)",
            rate_limit_decisions.clone(),
        );
        let rate_limit_backend_failures = Family::<BackendLabels, Counter>::default();
        registry.register(
            "rate_limit_backend_failures",
            "Rate-limit checks the backend could not answer (the failure policy decided)",
            rate_limit_backend_failures.clone(),
        );
        let rate_limit_violations = Family::<ViolationLabels, Counter>::default();
        registry.register(
            "rate_limit_violations",
            "Refused requests by what became of their record (recorded, dropped)",
            rate_limit_violations.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            request_duration,
            db_pool_connections,
            rate_limit_decisions,
            rate_limit_backend_failures,
            rate_limit_violations,
        })
    }

    /// The (admitted, denied) counters of one rate-limit rule, taken once so checks need no label lookup.
    pub(crate) fn rate_limit_decision_counters(&self, rule: &str) -> (Counter, Counter) {
        let counter = |outcome| {
            self.rate_limit_decisions.get_or_create(&RateLimitDecisionLabels { rule: rule.to_owned(), outcome }).clone()
        };
        (counter("admitted"), counter("denied"))
    }

    /// The counter of checks a rate-limit backend failed.
    pub(crate) fn rate_limit_backend_failures(&self, backend: &'static str) -> Counter {
        self.rate_limit_backend_failures.get_or_create(&BackendLabels { backend }).clone()
    }

    /// Counts violation records written.
    pub(crate) fn rate_limit_violation_recorded(&self, count: u64) {
        self.rate_limit_violations.get_or_create(&ViolationLabels { outcome: "recorded" }).inc_by(count);
    }

    /// Counts violation records dropped (queue full, or the write failed).
    pub(crate) fn rate_limit_violation_dropped(&self, count: u64) {
        self.rate_limit_violations.get_or_create(&ViolationLabels { outcome: "dropped" }).inc_by(count);
    }

    /// Records one finished request.
    fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { method: method.to_owned(), route: route.to_owned(), status })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { method: method.to_owned(), route: route.to_owned() })
            .observe(seconds);
    }

    /// Renders the text exposition, sampling the pool first so the gauges are current.
    pub fn render(&self, pool: PoolStats) -> String {
        for (state, value) in [("open", pool.open), ("idle", pool.idle), ("max", pool.max)] {
            self.db_pool_connections.get_or_create(&PoolLabels { state }).set(i64::from(value));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Counts and times every request under its route template.
pub async fn track_requests(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |matched| matched.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe_request(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_by_template_and_pool_gauges() {
        let metrics = Metrics::new();
        metrics.observe_request("GET", "/api/v1/accounts/{id}", 200, 0.002);
        let text = metrics.render(PoolStats { open: 3, idle: 2, max: 10 });
        assert!(
            text.contains(r#"dashtam_http_requests_total{method="GET",route="/api/v1/accounts/{id}",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("dashtam_http_request_duration_seconds_bucket"), "{text}");
        assert!(text.contains(r#"dashtam_db_pool_connections{state="max"} 10"#), "{text}");
    }
}
