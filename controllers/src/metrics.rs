//! The controllers' Prometheus metrics: allocation cycles and their duration,
//! placements, offers made, declined and rescinded, pending tasks, and whether
//! this replica leads. Counters are process-wide atomics; [`text`] renders
//! them in the Prometheus text format for whatever serves `/metrics`
//! (`mosaic server`'s API endpoint, or `mosaic controllers --metrics-listen`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Allocation cycles run.
pub static CYCLES: AtomicU64 = AtomicU64::new(0);
/// Their total duration, in microseconds.
pub static CYCLE_MICROS: AtomicU64 = AtomicU64::new(0);
/// The last one's duration, in microseconds.
pub static LAST_CYCLE_MICROS: AtomicU64 = AtomicU64::new(0);
/// Time spent deciding (the allocator's own work, no API calls), in microseconds.
pub static ALLOCATE_MICROS: AtomicU64 = AtomicU64::new(0);
/// Tasks bound to agents.
pub static PLACEMENTS: AtomicU64 = AtomicU64::new(0);
/// Per-task writes (binds and others) in flight, at the last cycle.
pub static BINDS_IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
/// Offer objects made.
pub static OFFERS_MADE: AtomicU64 = AtomicU64::new(0);
/// Offers declined by their framework.
pub static OFFERS_DECLINED: AtomicU64 = AtomicU64::new(0);
/// Offers rescinded by the controller.
pub static OFFERS_RESCINDED: AtomicU64 = AtomicU64::new(0);
/// Tasks waiting to be placed, at the last cycle.
pub static PENDING: AtomicU64 = AtomicU64::new(0);
/// 1 while this replica holds the leader Lease.
pub static LEADER: AtomicU64 = AtomicU64::new(0);

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The metrics in the Prometheus text format.
pub fn text() -> String {
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let rows: [(&str, &str, &str, String); 10] = [
        (
            "mosaic_scheduler_cycles_total",
            "counter",
            "Allocation cycles run.",
            g(&CYCLES).to_string(),
        ),
        (
            "mosaic_scheduler_cycle_seconds_total",
            "counter",
            "Time spent in allocation cycles.",
            format!("{:.6}", g(&CYCLE_MICROS) as f64 / 1e6),
        ),
        (
            "mosaic_scheduler_last_cycle_seconds",
            "gauge",
            "Duration of the last allocation cycle.",
            format!("{:.6}", g(&LAST_CYCLE_MICROS) as f64 / 1e6),
        ),
        (
            "mosaic_scheduler_allocate_seconds_total",
            "counter",
            "Time the allocator spent deciding (no API calls).",
            format!("{:.6}", g(&ALLOCATE_MICROS) as f64 / 1e6),
        ),
        (
            "mosaic_scheduler_placements_total",
            "counter",
            "Tasks bound to agents.",
            g(&PLACEMENTS).to_string(),
        ),
        (
            "mosaic_scheduler_writes_in_flight",
            "gauge",
            "Binds and other per-task writes under way.",
            g(&BINDS_IN_FLIGHT).to_string(),
        ),
        (
            "mosaic_scheduler_pending_tasks",
            "gauge",
            "Tasks waiting to be placed.",
            g(&PENDING).to_string(),
        ),
        (
            "mosaic_scheduler_offers_made_total",
            "counter",
            "Offers made to External frameworks.",
            g(&OFFERS_MADE).to_string(),
        ),
        (
            "mosaic_scheduler_offers_declined_total",
            "counter",
            "Offers declined by their framework.",
            g(&OFFERS_DECLINED).to_string(),
        ),
        (
            "mosaic_scheduler_offers_rescinded_total",
            "counter",
            "Offers rescinded by the controller.",
            g(&OFFERS_RESCINDED).to_string(),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP mosaic_controllers_leader 1 while this replica holds the leader Lease.\n# TYPE mosaic_controllers_leader gauge\nmosaic_controllers_leader {}\n",
        g(&LEADER)
    ));
    out
}
