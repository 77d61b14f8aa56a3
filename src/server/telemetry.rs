//! Operational metrics: the HTTP request counter and latency histogram, and
//! whatever the actors record live (circuit breakers, rate-limit hits),
//! through one process-wide Prometheus recorder.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

/// `neonhub_http_requests_total{method,route,status}`.
pub(crate) const HTTP_REQUESTS_TOTAL: &str = "neonhub_http_requests_total";
/// `neonhub_http_request_duration_seconds{route}`.
pub(crate) const HTTP_REQUEST_DURATION_SECONDS: &str = "neonhub_http_request_duration_seconds";
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `neonhub_rate_limit_wait_seconds{connector}` (recorded by the connector
/// actors): from no wait to a minute.
const RATE_LIMIT_WAIT_SECONDS: &str = "neonhub_rate_limit_wait_seconds";
const WAIT_BUCKETS: [f64; 13] = [
    0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static RECORDER: OnceLock<PrometheusRecorder> = OnceLock::new();

/// Forwards the `metrics` macros of the actors to the shared recorder.
struct Forward(&'static PrometheusRecorder);

impl Recorder for Forward {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, metadata)
    }
}

fn recorder() -> &'static PrometheusRecorder {
    RECORDER.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_owned()),
                &BUCKETS,
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(RATE_LIMIT_WAIT_SECONDS.to_owned()),
                    &WAIT_BUCKETS,
                )
            })
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        recorder.describe_counter(
            KeyName::from(HTTP_REQUESTS_TOTAL),
            None,
            SharedString::const_str("HTTP requests answered, by method, route and status."),
        );
        recorder.describe_counter(
            KeyName::from(crate::logging::CLIENT_ERRORS),
            None,
            SharedString::const_str(
                "Connections the HTTP layer ended on a client's error (a request that does not \
                 parse, a head over its limits, a reset).",
            ),
        );
        recorder.describe_histogram(
            KeyName::from(HTTP_REQUEST_DURATION_SECONDS),
            Some(Unit::Seconds),
            SharedString::const_str("HTTP request latency by route, in seconds."),
        );
        recorder
    })
}

/// Installs the shared recorder as the process's `metrics` recorder (once;
/// if another one is installed already, only the HTTP metrics are kept).
pub(crate) fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if metrics::set_global_recorder(Forward(recorder())).is_err() {
            tracing::debug!("a metrics recorder was installed already; actor metrics go there");
        }
        neonhub_actors::describe_connector_metrics();
    });
}

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Counts one answered request and its latency.
pub(crate) fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let recorder = recorder();
    let counter_key = Key::from_parts(
        HTTP_REQUESTS_TOTAL,
        vec![
            Label::new("method", method.to_owned()),
            Label::new("route", route.to_owned()),
            Label::new("status", status.to_string()),
        ],
    );
    recorder
        .register_counter(&counter_key, &METADATA)
        .increment(1);
    let histogram_key = Key::from_parts(
        HTTP_REQUEST_DURATION_SECONDS,
        vec![Label::new("route", route.to_owned())],
    );
    recorder
        .register_histogram(&histogram_key, &METADATA)
        .record(elapsed.as_secs_f64());
}

/// The operational metrics as Prometheus text (the run metrics are the
/// projection's: no family is rendered by both).
pub(crate) fn render() -> String {
    recorder().handle().render()
}
