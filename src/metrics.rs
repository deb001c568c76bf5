//! Prometheus metrics, exposed as text at `GET /metrics`: requests by route
//! template and status, database operations, and the password-hashing queue.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
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

/// One label set's request metrics, as a thread last used them.
struct RequestHandles {
    /// Held so that no other route can take its address (the key).
    _route: Arc<str>,
    count: Counter,
    seconds: Histogram,
}

/// More label sets than a thread keeps handles for: a bound (forgetting
/// them all costs only the lookups again), never reached by the route
/// table's routes, the methods and the statuses the service answers.
const MAX_HANDLES_PER_THREAD: usize = 4096;

thread_local! {
    /// By metrics instance, method label and route address, and status.
    static REQUEST_HANDLES: RefCell<HashMap<(u64, usize, usize, u16), RequestHandles>> =
        RefCell::new(HashMap::new());
}

pub struct Metrics {
    /// Tells this instance's handles apart in [`REQUEST_HANDLES`].
    id: u64,
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
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Self {
            id: INSTANCES.fetch_add(1, Ordering::Relaxed),
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
    /// clients send. Each thread keeps the handles of the label sets it has
    /// seen, so a request takes no lock on the families and hashes no text.
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &Arc<str>,
        status: u16,
        elapsed: Duration,
    ) {
        // By address, with no text hashed: each entry holds its route, so
        // no other route can be at that address while the entry lives.
        let key = (
            self.id,
            method.as_ptr() as usize,
            Arc::as_ptr(route) as *const u8 as usize,
            status,
        );
        let seconds = elapsed.as_secs_f64();
        REQUEST_HANDLES.with_borrow_mut(|handles| {
            if let Some(seen) = handles.get(&key) {
                seen.count.inc();
                seen.seconds.observe(seconds);
                return;
            }
            if handles.len() >= MAX_HANDLES_PER_THREAD {
                handles.clear();
            }
            let labels = RequestLabels {
                method,
                route: route.clone(),
                status,
            };
            let seen = RequestHandles {
                count: self.requests.get_or_create_owned(&labels),
                seconds: self.request_seconds.get_or_create_owned(&labels),
                _route: labels.route,
            };
            seen.count.inc();
            seen.seconds.observe(seconds);
            handles.insert(key, seen);
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `http_requests_total` lines of `metrics`, sorted.
    fn request_counts(metrics: &Metrics) -> Vec<String> {
        let mut lines: Vec<String> = metrics
            .render()
            .lines()
            .filter(|line| line.starts_with("http_requests_total{"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    fn duration_count(metrics: &Metrics, labels: &str) -> String {
        let prefix = format!("http_request_duration_seconds_count{{{labels}}} ");
        let text = metrics.render();
        let line = text.lines().find(|line| line.starts_with(&prefix));
        line.unwrap_or_else(|| panic!("no {prefix} in {text}"))[prefix.len()..].to_owned()
    }

    #[test]
    fn requests_are_counted_by_their_labels_and_by_instance() {
        let first = Metrics::default();
        let second = Metrics::default();
        let user: Arc<str> = "/user/{id}".into();
        // The same text in another allocation is the same route.
        let user_again: Arc<str> = String::from("/user/{id}").into();
        let ping: Arc<str> = "/ping".into();
        let tick = Duration::from_millis(3);
        first.observe_request("GET", &user, 200, tick);
        first.observe_request("GET", &user_again, 200, tick);
        first.observe_request("GET", &user, 404, tick);
        first.observe_request("DELETE", &user, 200, tick);
        first.observe_request("GET", &ping, 200, tick);
        second.observe_request("GET", &ping, 200, tick);
        // Counted again on another thread, into the same series.
        std::thread::scope(|scope| {
            scope.spawn(|| first.observe_request("GET", &ping, 200, tick));
        });
        assert_eq!(
            request_counts(&first),
            [
                r#"http_requests_total{method="DELETE",route="/user/{id}",status="200"} 1"#,
                r#"http_requests_total{method="GET",route="/ping",status="200"} 2"#,
                r#"http_requests_total{method="GET",route="/user/{id}",status="200"} 2"#,
                r#"http_requests_total{method="GET",route="/user/{id}",status="404"} 1"#,
            ]
        );
        assert_eq!(
            duration_count(&first, r#"method="GET",route="/user/{id}",status="200""#),
            "2"
        );
        assert_eq!(
            request_counts(&second),
            [r#"http_requests_total{method="GET",route="/ping",status="200"} 1"#]
        );
    }
}
