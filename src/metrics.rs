//! The process's Prometheus metrics: what it counts as it serves (HTTP requests,
//! agent check-ins, job outcomes, requests to the cloud). What lives in the
//! database (machines by state, the queue) is read at scrape time instead, by
//! `GET /metrics` (`api::metrics`), so it always equals what the API shows.
//!
//! Each `Application` has its own [`Metrics`] (tests run many apps in one process);
//! its worker and its clients toward the cloud record into the same one.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::http::Method;
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::connectors::{RequestObserver, RequestOutcome};

/// The `route` label of a request that matched no route (a 404 or 405).
pub const UNMATCHED: &str = "unmatched";

/// Statuses the service answers, each with a series resolved once per route.
const STATUSES: [u16; 21] = [
    200, 201, 202, 204, 206, 304, 400, 401, 403, 404, 405, 406, 409, 412, 413, 415, 422, 428, 429,
    500, 503,
];

pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    /// `GET /agent/v1/instructions` answered 200 and 304.
    check_ins: [IntCounter; 2],
    job_outcomes: IntCounterVec,
    job_duration: HistogramVec,
    target_requests: IntCounterVec,
    target_duration: HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// `routes`: every documented route pattern and method, resolved ahead so that a
    /// request costs a map look-up and atomic increments.
    pub fn new(
        routes: impl IntoIterator<Item = (String, Method)>,
    ) -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "mp_http_requests_total",
                "HTTP requests answered, by matched route pattern, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "mp_http_request_duration_seconds",
                "Time to answer HTTP requests, by matched route pattern and method.",
            ),
            &["route", "method"],
        )?;
        let check_ins = IntCounterVec::new(
            Opts::new(
                "mp_agent_check_ins_total",
                "Agent check-ins (GET /agent/v1/instructions) answered: 200 with instructions, 304 unchanged.",
            ),
            &["status"],
        )?;
        let job_outcomes = IntCounterVec::new(
            Opts::new(
                "mp_job_outcomes_total",
                "Job attempts that ended, by kind and outcome: succeeded, retried, failed (discarded), snoozed, released (given back at shutdown), lost (cancelled or taken over meanwhile).",
            ),
            &["kind", "outcome"],
        )?;
        let job_duration = HistogramVec::new(
            HistogramOpts::new(
                "mp_job_duration_seconds",
                "Time a job attempt ran, by kind.",
            )
            .buckets(prometheus::exponential_buckets(0.01, 4.0, 9)?),
            &["kind"],
        )?;
        let target_requests = IntCounterVec::new(
            Opts::new(
                "mp_target_requests_total",
                "HTTP requests to the cloud (retries included), by operation and outcome.",
            ),
            &["operation", "outcome"],
        )?;
        let target_duration = HistogramVec::new(
            HistogramOpts::new(
                "mp_target_request_duration_seconds",
                "Time the cloud took to answer a request, by operation.",
            ),
            &["operation"],
        )?;
        let build_info = IntGauge::with_opts(
            Opts::new(
                "mp_build_info",
                "Always 1; the version of the running build.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )?;
        build_info.set(1);
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(check_ins.clone()))?;
        registry.register(Box::new(job_outcomes.clone()))?;
        registry.register(Box::new(job_duration.clone()))?;
        registry.register(Box::new(target_requests.clone()))?;
        registry.register(Box::new(target_duration.clone()))?;
        registry.register(Box::new(build_info))?;
        let routes = routes
            .into_iter()
            .map(|(route, method)| ((route, method_label(&method)), RouteSeries::default()))
            .collect();
        Ok(Arc::new(Self {
            registry,
            http: HttpMetrics {
                requests,
                duration,
                routes,
            },
            check_ins: [
                check_ins.with_label_values(&["200"]),
                check_ins.with_label_values(&["304"]),
            ],
            job_outcomes,
            job_duration,
            target_requests,
            target_duration,
        }))
    }

    /// One answered HTTP request; `route` is the matched pattern, `None` when none matched.
    pub fn http_request(
        &self,
        route: Option<String>,
        method: &Method,
        status: u16,
        elapsed: Duration,
    ) {
        self.http.observe(route, method, status, elapsed);
    }

    /// One agent check-in answered, with instructions (200) or unchanged (304).
    pub fn check_in(&self, not_modified: bool) {
        self.check_ins[usize::from(not_modified)].inc();
    }

    /// One job attempt ended with `outcome` after running `elapsed`.
    pub fn job_outcome(&self, kind: &str, outcome: &'static str, elapsed: Duration) {
        self.job_outcomes.with_label_values(&[kind, outcome]).inc();
        self.job_duration
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
    }

    /// Everything counted so far.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, operation: &'static str, outcome: RequestOutcome, elapsed: Duration) {
        self.target_requests
            .with_label_values(&[operation, outcome.as_str()])
            .inc();
        self.target_duration
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }
}

struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    routes: HashMap<(String, &'static str), RouteSeries>,
}

/// The series of one route and method, each made on first use (no empty series
/// for routes never called) and then reached without the registry's lock.
#[derive(Default)]
struct RouteSeries {
    duration: OnceLock<Histogram>,
    by_status: [OnceLock<IntCounter>; STATUSES.len()],
}

impl HttpMetrics {
    fn observe(&self, route: Option<String>, method: &Method, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let key = (
            route.unwrap_or_else(|| UNMATCHED.to_string()),
            method_label(method),
        );
        let (route, method) = (key.0.as_str(), key.1);
        let count = || {
            self.requests
                .with_label_values(&[route, method, status.to_string().as_str()])
        };
        let Some(series) = self.routes.get(&key) else {
            count().inc();
            self.duration
                .with_label_values(&[route, method])
                .observe(seconds);
            return;
        };
        series
            .duration
            .get_or_init(|| self.duration.with_label_values(&[route, method]))
            .observe(seconds);
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => series.by_status[i].get_or_init(count).inc(),
            None => count().inc(),
        }
    }
}

/// Methods outside the standard ones are one label value: a client cannot make new series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    fn text(metrics: &Metrics) -> String {
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&metrics.gather(), &mut out)
            .expect("encode");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn requests_are_counted_by_route_pattern_method_and_status_and_odd_methods_share_one_label() {
        let metrics =
            Metrics::new([("/api/v1/workspaces/{id}".to_string(), Method::GET)]).expect("metrics");
        let cases: [(Option<&str>, Method, u16); 6] = [
            (Some("/api/v1/workspaces/{id}"), Method::GET, 200),
            (Some("/api/v1/workspaces/{id}"), Method::GET, 200),
            (Some("/api/v1/workspaces/{id}"), Method::GET, 299),
            (Some("/swagger-ui/{_:.*}"), Method::GET, 200),
            (None, Method::from_bytes(b"BREW").expect("method"), 404),
            (None, Method::from_bytes(b"PROPFIND").expect("method"), 404),
        ];
        for (route, method, status) in cases {
            metrics.http_request(
                route.map(str::to_string),
                &method,
                status,
                Duration::from_millis(3),
            );
        }
        let text = text(&metrics);
        for line in [
            r#"mp_http_requests_total{method="GET",route="/api/v1/workspaces/{id}",status="200"} 2"#,
            r#"mp_http_requests_total{method="GET",route="/api/v1/workspaces/{id}",status="299"} 1"#,
            r#"mp_http_requests_total{method="GET",route="/swagger-ui/{_:.*}",status="200"} 1"#,
            r#"mp_http_requests_total{method="other",route="unmatched",status="404"} 2"#,
            r#"mp_http_request_duration_seconds_count{method="GET",route="/api/v1/workspaces/{id}"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn check_ins_jobs_and_target_requests_land_in_their_series() {
        let metrics = Metrics::new([]).expect("metrics");
        metrics.check_in(false);
        metrics.check_in(true);
        metrics.check_in(true);
        metrics.job_outcome("sync", "succeeded", Duration::from_secs(2));
        metrics.observe(
            "create_tenant",
            RequestOutcome::RateLimited,
            Duration::from_millis(40),
        );
        let text = text(&metrics);
        for line in [
            r#"mp_agent_check_ins_total{status="200"} 1"#,
            r#"mp_agent_check_ins_total{status="304"} 2"#,
            r#"mp_job_outcomes_total{kind="sync",outcome="succeeded"} 1"#,
            r#"mp_job_duration_seconds_count{kind="sync"} 1"#,
            r#"mp_target_requests_total{operation="create_tenant",outcome="rate_limited"} 1"#,
            r#"mp_target_request_duration_seconds_count{operation="create_tenant"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        let build = format!(
            r#"mp_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == build), "{build} in\n{text}");
    }
}
