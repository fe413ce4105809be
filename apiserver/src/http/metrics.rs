//! The API server's Prometheus metrics, kept with prometheus-client:
//! requests served and refused, request latency by verb, resource and
//! subresource (as kube-apiserver's `apiserver_request_duration_seconds`;
//! watches and task log requests, which can last as long as the client
//! wants, are left out), open watches, the store's revision, and the listener's
//! connections. `/metrics` renders them with whatever else the process
//! registers (the in-process controllers').

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// What a request's latency is counted under.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `get`, `list`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// The resource (plural), "" for a non-resource path.
    pub resource: String,
    /// The subresource, "" when none.
    pub subresource: String,
}

/// The API server's own metrics.
pub struct Metrics {
    /// Requests served.
    pub requests: Counter,
    /// Requests that ended in an error status.
    pub errors: Counter,
    /// Watches currently open.
    pub watches: Gauge,
    /// How long requests took, by verb, resource and subresource.
    pub latency: Family<RequestLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Counter::default(),
            errors: Counter::default(),
            watches: Gauge::default(),
            // From 0.25 ms to about 8 s, doubling.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.00025, 2.0, 16))
            }),
        }
    }
}

/// The figures read from elsewhere when `/metrics` is asked for.
pub struct Snapshot {
    /// The store's current revision.
    pub revision: i64,
    /// Connections being served.
    pub connections: i64,
    /// Connections refused for the connection cap.
    pub refused: u64,
    /// Connections closed for idling.
    pub idle_closed: u64,
}

impl Metrics {
    /// Adds these metrics, and the figures of `now`, to `reg`.
    pub fn register(&self, reg: &mut Registry, now: Snapshot) {
        reg.register(
            "mosaic_apiserver_requests",
            "Requests served.",
            self.requests.clone(),
        );
        reg.register(
            "mosaic_apiserver_request_errors",
            "Requests answered with an error status.",
            self.errors.clone(),
        );
        reg.register(
            "mosaic_apiserver_request_duration_seconds",
            "How long requests took, by verb, resource and subresource (watches and log streams left out).",
            self.latency.clone(),
        );
        reg.register(
            "mosaic_apiserver_watches",
            "Open watches.",
            self.watches.clone(),
        );
        let gauge = |v: i64| {
            let g: Gauge = Gauge::default();
            g.set(v);
            g
        };
        let counter = |v: u64| {
            let c: Counter = Counter::default();
            c.inc_by(v);
            c
        };
        reg.register(
            "mosaic_store_revision",
            "The store's current revision.",
            gauge(now.revision),
        );
        reg.register(
            "mosaic_apiserver_connections",
            "Connections being served.",
            gauge(now.connections),
        );
        reg.register(
            "mosaic_apiserver_connections_refused",
            "Connections refused for the connection cap.",
            counter(now.refused),
        );
        reg.register(
            "mosaic_apiserver_connections_idle_closed",
            "Connections closed for idling.",
            counter(now.idle_closed),
        );
    }
}

/// `reg` in the OpenMetrics text format.
pub fn encode(reg: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, reg).expect("writing to a String");
    out
}

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
