//! Prometheus metrics a process records about its own work. One `Metrics` is created
//! by the binary and handed to each component it starts (no global registry), so
//! `jobcenter all` exposes everything on the API's `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets (seconds) from 1 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    /// Runs a worker of this process started, by job kind.
    pub runs_started: IntCounterVec,
    /// Runs a worker of this process finished, by final state and job kind.
    pub runs_finished: IntCounterVec,
    /// Seconds from a run being queued to a worker claiming it.
    pub claim_latency: Histogram,
    /// Seconds from a tick's scheduled instant to its run being queued.
    pub schedule_lag: Histogram,
    /// HTTP request durations by method, route pattern and status.
    pub http_requests: HistogramVec,
    /// Gauges read from the database at scrape time (the same on every API node).
    pub queue_depth: IntGaugeVec,
    pub queue_oldest_age_seconds: IntGaugeVec,
    pub workers_alive: IntGaugeVec,
    pub leader: IntGaugeVec,
    /// 1 when the artifact store answered this API process's last probe (`/readyz`,
    /// `/metrics`), else 0.
    pub artifact_store_up: IntGauge,
    /// Access-token users resolved by the API, by where from (`cache` or `database`).
    pub auth_lookups: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("jobcenter".into()), None)
            .expect("the prefix is a valid metric name");
        let latency = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
                .expect("valid histogram")
        };
        let metrics = Metrics {
            runs_started: IntCounterVec::new(
                Opts::new(
                    "runs_started_total",
                    "Runs started by this process, by job kind",
                ),
                &["kind"],
            )
            .expect("valid counter"),
            runs_finished: IntCounterVec::new(
                Opts::new(
                    "runs_finished_total",
                    "Runs finished by this process, by state and job kind",
                ),
                &["state", "kind"],
            )
            .expect("valid counter"),
            claim_latency: latency("claim_latency_seconds", "Seconds from queued to claimed"),
            schedule_lag: latency(
                "schedule_lag_seconds",
                "Seconds from a tick's instant to its run being queued",
            ),
            http_requests: HistogramVec::new(
                HistogramOpts::new("http_request_duration_seconds", "HTTP request durations")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["method", "route", "status"],
            )
            .expect("valid histogram"),
            queue_depth: IntGaugeVec::new(
                Opts::new("queue_depth", "Queued runs per worker group"),
                &["worker_group"],
            )
            .expect("valid gauge"),
            queue_oldest_age_seconds: IntGaugeVec::new(
                Opts::new(
                    "queue_oldest_age_seconds",
                    "Age of the oldest queued run per worker group",
                ),
                &["worker_group"],
            )
            .expect("valid gauge"),
            workers_alive: IntGaugeVec::new(
                Opts::new(
                    "workers_alive",
                    "Workers with a recent heartbeat per worker group",
                ),
                &["worker_group"],
            )
            .expect("valid gauge"),
            leader: IntGaugeVec::new(
                Opts::new("scheduler_leader", "1 for the scheduler currently leading"),
                &["leader"],
            )
            .expect("valid gauge"),
            artifact_store_up: IntGauge::new(
                "artifact_store_up",
                "1 when the artifact store answered the last probe, else 0",
            )
            .expect("valid gauge"),
            auth_lookups: IntCounterVec::new(
                Opts::new(
                    "auth_lookups_total",
                    "Access-token users resolved, by source (cache or database)",
                ),
                &["source"],
            )
            .expect("valid counter"),
            registry,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 11] = [
            Box::new(self.runs_started.clone()),
            Box::new(self.runs_finished.clone()),
            Box::new(self.claim_latency.clone()),
            Box::new(self.schedule_lag.clone()),
            Box::new(self.http_requests.clone()),
            Box::new(self.queue_depth.clone()),
            Box::new(self.queue_oldest_age_seconds.clone()),
            Box::new(self.workers_alive.clone()),
            Box::new(self.leader.clone()),
            Box::new(self.artifact_store_up.clone()),
            Box::new(self.auth_lookups.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_values_with_the_prefix() {
        let metrics = Metrics::new();
        metrics
            .runs_finished
            .with_label_values(&["succeeded", "command"])
            .inc();
        metrics.claim_latency.observe(0.003);
        let text = metrics.render();
        assert!(
            text.contains(r#"jobcenter_runs_finished_total{kind="command",state="succeeded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("jobcenter_claim_latency_seconds_count 1"),
            "{text}"
        );
    }
}
