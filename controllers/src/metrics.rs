//! The controllers' Prometheus metrics, kept with prometheus-client:
//! allocation cycles and their duration, placements and how long each bind
//! took, offers made, declined and rescinded, pending tasks, every
//! controller's reconcile durations (a histogram per controller), and
//! whether this replica leads. [`register`] adds them to a process's
//! registry (`mosaic server` serves them beside the API server's at
//! `/metrics`); [`text`] renders them alone (`mosaic controllers
//! --metrics-listen`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// The controller a reconcile duration is of (`scheduler` for a cycle).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// Its name, as the logs call it.
    pub controller: String,
}

/// Every metric of the controllers.
pub struct Metrics {
    /// Allocation cycles run.
    pub cycles: Counter,
    /// Their total duration.
    pub cycle_seconds: Counter<f64, AtomicU64>,
    /// The last one's duration.
    pub last_cycle_seconds: Gauge<f64, AtomicU64>,
    /// Time the allocator spent deciding (no API calls).
    pub allocate_seconds: Counter<f64, AtomicU64>,
    /// Tasks bound to agents.
    pub placements: Counter,
    /// How long each bind's writes took.
    pub bind_seconds: Histogram,
    /// Per-task writes (binds and others) in flight, at the last cycle.
    pub writes_in_flight: Gauge,
    /// Tasks waiting to be placed, at the last cycle.
    pub pending: Gauge,
    /// Offer objects made.
    pub offers_made: Counter,
    /// Offers declined by their framework.
    pub offers_declined: Counter,
    /// Offers rescinded by the controller.
    pub offers_rescinded: Counter,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    /// How long each reconcile (a scheduler cycle, an App's) took, by controller.
    pub reconcile_seconds: Family<ControllerLabel, Histogram>,
}

/// Buckets from 0.5 ms to about 16 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The controllers' metrics (one set per process).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    cycles: Counter::default(),
    cycle_seconds: Counter::default(),
    last_cycle_seconds: Gauge::default(),
    allocate_seconds: Counter::default(),
    placements: Counter::default(),
    bind_seconds: latency(),
    writes_in_flight: Gauge::default(),
    pending: Gauge::default(),
    offers_made: Counter::default(),
    offers_declined: Counter::default(),
    offers_rescinded: Counter::default(),
    leader: Gauge::default(),
    reconcile_seconds: Family::new_with_constructor(latency),
});

/// Records how long a reconcile of `controller` took since `started`.
pub fn reconciled(controller: &str, started: Instant) {
    METRICS
        .reconcile_seconds
        .get_or_create(&ControllerLabel {
            controller: controller.into(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Adds the controllers' metrics to `reg`.
pub fn register(reg: &mut Registry) {
    let m = &*METRICS;
    reg.register(
        "mosaic_scheduler_cycles",
        "Allocation cycles run.",
        m.cycles.clone(),
    );
    reg.register(
        "mosaic_scheduler_cycle_seconds",
        "Time spent in allocation cycles.",
        m.cycle_seconds.clone(),
    );
    reg.register(
        "mosaic_scheduler_last_cycle_seconds",
        "Duration of the last allocation cycle.",
        m.last_cycle_seconds.clone(),
    );
    reg.register(
        "mosaic_scheduler_allocate_seconds",
        "Time the allocator spent deciding (no API calls).",
        m.allocate_seconds.clone(),
    );
    reg.register(
        "mosaic_scheduler_placements",
        "Tasks bound to agents.",
        m.placements.clone(),
    );
    reg.register(
        "mosaic_scheduler_bind_duration_seconds",
        "How long binding a task to its agent took (its writes).",
        m.bind_seconds.clone(),
    );
    reg.register(
        "mosaic_scheduler_writes_in_flight",
        "Binds and other per-task writes under way.",
        m.writes_in_flight.clone(),
    );
    reg.register(
        "mosaic_scheduler_pending_tasks",
        "Tasks waiting to be placed.",
        m.pending.clone(),
    );
    reg.register(
        "mosaic_scheduler_offers_made",
        "Offers made to External frameworks.",
        m.offers_made.clone(),
    );
    reg.register(
        "mosaic_scheduler_offers_declined",
        "Offers declined by their framework.",
        m.offers_declined.clone(),
    );
    reg.register(
        "mosaic_scheduler_offers_rescinded",
        "Offers rescinded by the controller.",
        m.offers_rescinded.clone(),
    );
    reg.register(
        "mosaic_controllers_leader",
        "1 while this replica holds the leader Lease.",
        m.leader.clone(),
    );
    reg.register(
        "mosaic_controller_reconcile_duration_seconds",
        "How long each reconcile took (a scheduler cycle, an App's), by controller.",
        m.reconcile_seconds.clone(),
    );
}

/// The controllers' metrics alone, in the OpenMetrics text format.
pub fn text() -> String {
    let mut reg = Registry::default();
    register(&mut reg);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).expect("writing to a String");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_keep_their_names_and_histograms_have_buckets() {
        METRICS.cycles.inc();
        METRICS.cycle_seconds.inc_by(0.25);
        reconciled("apps", Instant::now());
        let t = text();
        for line in [
            "mosaic_scheduler_cycles_total ",
            "mosaic_scheduler_cycle_seconds_total ",
            "mosaic_scheduler_allocate_seconds_total ",
            "mosaic_scheduler_placements_total ",
            "mosaic_controllers_leader ",
            "mosaic_controller_reconcile_duration_seconds_bucket{le=\"0.0005\",controller=\"apps\"} ",
            "mosaic_scheduler_bind_duration_seconds_count ",
        ] {
            assert!(t.contains(line), "{line:?} missing from:\n{t}");
        }
        assert!(t.ends_with("# EOF\n"));
    }
}
