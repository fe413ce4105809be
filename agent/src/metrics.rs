//! The agent's Prometheus metrics, kept with prometheus-client and served
//! at its endpoint's `/metrics`: runs under way, started, adopted after a
//! restart, ended (by phase), and how long each launch took from handing
//! the run to its executor to reporting it Running.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The phase a run ended in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// `Finished`, `Failed` or `Killed`.
    pub phase: String,
}

/// One agent's metrics.
pub struct Metrics {
    /// Task runs under way.
    pub running: Gauge,
    /// Task runs started.
    pub launched: Counter,
    /// Task runs adopted after an agent restart.
    pub adopted: Counter,
    /// Task runs that ended, by phase.
    pub ended: Family<PhaseLabel, Counter>,
    /// How long launches took, to the Running report.
    pub launch_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            running: Gauge::default(),
            launched: Counter::default(),
            adopted: Counter::default(),
            ended: Family::default(),
            // From 1 ms to about 33 s, doubling.
            launch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        };
        // Every phase shows from the start, at 0.
        for phase in ["Finished", "Failed", "Killed"] {
            drop(m.ended.get_or_create(&PhaseLabel {
                phase: phase.into(),
            }));
        }
        m
    }
}

impl Metrics {
    /// A run ended in `phase`.
    pub fn ended(&self, phase: &str) {
        self.ended
            .get_or_create(&PhaseLabel {
                phase: phase.into(),
            })
            .inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn text(&self) -> String {
        let mut reg = Registry::default();
        reg.register(
            "mosaic_agent_tasks_running",
            "Task runs under way on this agent.",
            self.running.clone(),
        );
        reg.register(
            "mosaic_agent_launches",
            "Task runs started.",
            self.launched.clone(),
        );
        reg.register(
            "mosaic_agent_adopted",
            "Task runs adopted after an agent restart.",
            self.adopted.clone(),
        );
        reg.register(
            "mosaic_agent_runs_ended",
            "Task runs that ended, by phase.",
            self.ended.clone(),
        );
        reg.register(
            "mosaic_agent_launch_duration_seconds",
            "How long launching a task took, from handing it to its executor to reporting it Running.",
            self.launch_seconds.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("writing to a String");
        out
    }
}
