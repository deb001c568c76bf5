//! Prometheus metrics, exposed as text at `GET /metrics`: requests by route
//! template and status, database operations, and the password-hashing queue.

use std::{
    sync::{atomic::AtomicU64, Arc},
    time::Duration,
};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
        MetricType,
    },
    registry::Registry,
};

use crate::telemetry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatabaseLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatLabels {
    format: &'static str,
}

/// Log lines the service could not write (see `telemetry::LogBuffer`),
/// read when the metrics are rendered.
#[derive(Debug)]
struct DroppedLogLines;

impl EncodeMetric for DroppedLogLines {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        encoder.encode_counter::<NoLabelSet, _, u64>(&telemetry::dropped_lines(), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RequestLabels>,
    database_errors: Family<DatabaseLabels, Counter>,
    database_seconds: HistogramFamily<DatabaseLabels>,
    hash_queue_depth: Gauge,
    hash_wait_seconds: Histogram,
    password_verifications: Family<FormatLabels, Counter>,
    verify_floor_seconds: Gauge<f64, AtomicU64>,
}

/// From 0.5 ms to about 16 s: covers a cached read and a saturated queue.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds =
            HistogramFamily::<RequestLabels>::new_with_constructor(latency_histogram);
        let database_errors = Family::<DatabaseLabels, Counter>::default();
        let database_seconds =
            HistogramFamily::<DatabaseLabels>::new_with_constructor(latency_histogram);
        let hash_queue_depth = Gauge::default();
        let hash_wait_seconds = latency_histogram();
        let password_verifications = Family::<FormatLabels, Counter>::default();
        let verify_floor_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by method, route template and status",
            request_seconds.clone(),
        );
        registry.register(
            "db_operation_errors",
            "MongoDB operations that failed, by operation",
            database_errors.clone(),
        );
        registry.register(
            "db_operation_duration_seconds",
            "Time MongoDB operations took, failed ones included, by operation",
            database_seconds.clone(),
        );
        registry.register(
            "password_hash_queue_depth",
            "bcrypt jobs waiting for a free slot",
            hash_queue_depth.clone(),
        );
        registry.register(
            "password_hash_wait_seconds",
            "Time bcrypt jobs waited for a free slot",
            hash_wait_seconds.clone(),
        );
        registry.register(
            "password_verifications",
            "Password checks run, by stored hash format (`dummy` for unknown emails)",
            password_verifications.clone(),
        );
        registry.register(
            "password_verify_floor_seconds",
            "The least time a failed password check takes",
            verify_floor_seconds.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because standard output could not keep up or failed",
            DroppedLogLines,
        );
        Self {
            registry,
            requests,
            request_seconds,
            database_errors,
            database_seconds,
            hash_queue_depth,
            hash_wait_seconds,
            password_verifications,
            verify_floor_seconds,
        }
    }
}

impl Metrics {
    /// `method` comes from a fixed set, so labels never grow with what
    /// clients send.
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &Arc<str>,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            method,
            route: route.clone(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_database(&self, operation: &'static str, failed: bool, elapsed: Duration) {
        let labels = DatabaseLabels { operation };
        if failed {
            self.database_errors.get_or_create(&labels).inc();
        }
        self.database_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn set_hash_queue_depth(&self, depth: usize) {
        self.hash_queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn observe_hash_wait(&self, waited: Duration) {
        self.hash_wait_seconds.observe(waited.as_secs_f64());
    }

    pub fn count_password_verification(&self, format: &'static str) {
        self.password_verifications
            .get_or_create(&FormatLabels { format })
            .inc();
    }

    pub fn set_verify_floor(&self, floor: Duration) {
        self.verify_floor_seconds.set(floor.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
