//! `mosaic bench`'s figures: computed from what the run recorded, printed as
//! a table, and written as JSON with the keys ../spec/cli.md names.

use super::procs::{Metrics, metric};
use super::workload::{Plan, Seen, TaskPlan};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Fairness while work was pending, read at the moment half the tasks ran.
#[derive(Clone, Debug, Default)]
pub struct Fairness {
    /// Frameworks that still had tasks waiting then.
    pub pending: usize,
    /// Of those, how many had nothing running (starved).
    pub starved: usize,
    /// The lowest cpu share among them.
    pub min_share: f64,
    /// The highest cpu share among them.
    pub max_share: f64,
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Tasks submitted.
    pub tasks: usize,
    /// Of those, seen Running.
    pub running: usize,
    /// Tasks Running per second, from the first create sent to the last seen Running.
    pub tasks_per_second: f64,
    /// Create sent -> seen Running.
    pub latency_p50_ms: f64,
    /// Create sent -> seen Running.
    pub latency_p99_ms: f64,
    /// Create sent -> seen bound to an agent.
    pub bind_p50_ms: f64,
    /// Create sent -> seen bound to an agent.
    pub bind_p99_ms: f64,
    /// Creates acknowledged per second while submitting.
    pub creates_per_second: f64,
    /// Mean time the allocator spent deciding, per cycle.
    pub allocator_cycle_ms: f64,
    /// Mean whole scheduler cycle (view, decisions and their API writes).
    pub scheduler_cycle_ms: f64,
    /// Scheduler cycles during the run.
    pub cycles: u64,
    /// API requests the server answered during the run, per task submitted.
    pub requests_per_task: f64,
    /// Of those requests, how many were answered with an error status.
    pub request_errors: u64,
    /// The server's peak resident memory.
    pub peak_rss_bytes: u64,
    /// The server's resident memory growth per 10,000 tasks.
    pub memory_per_10k_tasks_bytes: u64,
    /// Seconds from the first create to the last Running.
    pub elapsed_seconds: f64,
    /// See [`Fairness`].
    pub fairness: Fairness,
    /// CPU seconds used during the run by the server, the agents and the
    /// benchmark's own clients and watch.
    pub cpu_seconds: [f64; 3],
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3
}

impl Figures {
    /// The figures of one run.
    pub fn compute(
        plan: &Plan,
        tasks: &[TaskPlan],
        created: &HashMap<String, Instant>,
        seen: &Seen,
        submitted: Duration,
        (before, after): (&Metrics, &Metrics),
        rss_growth: u64,
    ) -> Self {
        let since = |at: &HashMap<String, Instant>| -> Vec<Duration> {
            created
                .iter()
                .filter_map(|(n, c)| Some(at.get(n)?.saturating_duration_since(*c)))
                .collect()
        };
        let (mut run, mut bind) = (since(&seen.running), since(&seen.bound));
        let first = created.values().min().copied();
        let last = seen.running.values().max().copied();
        let elapsed = match (first, last) {
            (Some(f), Some(l)) => l.saturating_duration_since(f).as_secs_f64(),
            _ => 0.0,
        };
        let delta = |name: &str| metric(after, name) - metric(before, name);
        let cycles = delta("mosaic_scheduler_cycles_total").max(1.0);
        Figures {
            tasks: tasks.len(),
            running: seen.running.len(),
            tasks_per_second: if elapsed > 0.0 {
                seen.running.len() as f64 / elapsed
            } else {
                0.0
            },
            latency_p50_ms: pct(&mut run, 0.5),
            latency_p99_ms: pct(&mut run, 0.99),
            bind_p50_ms: pct(&mut bind, 0.5),
            bind_p99_ms: pct(&mut bind, 0.99),
            creates_per_second: created.len() as f64 / submitted.as_secs_f64().max(1e-9),
            allocator_cycle_ms: delta("mosaic_scheduler_allocate_seconds_total") * 1e3 / cycles,
            scheduler_cycle_ms: delta("mosaic_scheduler_cycle_seconds_total") * 1e3 / cycles,
            cycles: cycles as u64,
            requests_per_task: delta("mosaic_apiserver_requests_total") / tasks.len().max(1) as f64,
            request_errors: delta("mosaic_apiserver_request_errors_total") as u64,
            peak_rss_bytes: 0,
            memory_per_10k_tasks_bytes: rss_growth * 10_000 / tasks.len().max(1) as u64,
            elapsed_seconds: elapsed,
            fairness: fairness(plan, tasks, seen),
            cpu_seconds: [0.0; 3],
        }
    }

    /// Prints the table.
    pub fn print(&self, plan: &Plan) {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let rows = [
            ("agents", format!("{}", plan.agents)),
            (
                "tasks Running / submitted",
                format!("{} / {}", self.running, self.tasks),
            ),
            (
                "placement throughput (created -> Running)",
                format!("{:.0} tasks/s", self.tasks_per_second),
            ),
            (
                "create -> Running p50 / p99",
                format!("{:.0} / {:.0} ms", self.latency_p50_ms, self.latency_p99_ms),
            ),
            (
                "create -> bound p50 / p99",
                format!("{:.0} / {:.0} ms", self.bind_p50_ms, self.bind_p99_ms),
            ),
            (
                "API creates while submitting",
                format!("{:.0} /s", self.creates_per_second),
            ),
            (
                "allocator decision time per cycle (mean)",
                format!("{:.2} ms", self.allocator_cycle_ms),
            ),
            (
                "scheduler cycle with its writes (mean)",
                format!(
                    "{:.1} ms over {} cycles",
                    self.scheduler_cycle_ms, self.cycles
                ),
            ),
            (
                "API requests per task (refused in all)",
                format!("{:.1} ({})", self.requests_per_task, self.request_errors),
            ),
            (
                "control plane peak RSS",
                format!("{:.0} MiB", mib(self.peak_rss_bytes)),
            ),
            (
                "memory per 10,000 tasks",
                format!("{:.1} MiB", mib(self.memory_per_10k_tasks_bytes)),
            ),
            (
                "first create -> last Running",
                format!("{:.1} s", self.elapsed_seconds),
            ),
            (
                "CPU seconds: server / simulated agents / bench clients",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    self.cpu_seconds[0], self.cpu_seconds[1], self.cpu_seconds[2]
                ),
            ),
            (
                "fairness at half-way (pending fws: starved, cpu share min..max)",
                format!(
                    "{}: {}, {:.4}..{:.4}",
                    self.fairness.pending,
                    self.fairness.starved,
                    self.fairness.min_share,
                    self.fairness.max_share
                ),
            ),
        ];
        for (k, v) in rows {
            println!("{k:<64} {v}");
        }
    }

    /// The figures as JSON.
    pub fn json(&self, plan: &Plan) -> String {
        let v = json!({
            "machine": super::procs::machine(),
            "agents": plan.agents,
            "tasks": self.tasks,
            "running": self.running,
            "tasks_per_second": self.tasks_per_second,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "bind_p50_ms": self.bind_p50_ms,
            "bind_p99_ms": self.bind_p99_ms,
            "creates_per_second": self.creates_per_second,
            "allocator_cycle_ms": self.allocator_cycle_ms,
            "scheduler_cycle_ms": self.scheduler_cycle_ms,
            "cycles": self.cycles,
            "requests_per_task": self.requests_per_task,
            "request_errors": self.request_errors,
            "peak_rss_bytes": self.peak_rss_bytes,
            "memory_per_10k_tasks_bytes": self.memory_per_10k_tasks_bytes,
            "elapsed_seconds": self.elapsed_seconds,
            "cpu_seconds": {"server": self.cpu_seconds[0], "agents": self.cpu_seconds[1], "bench": self.cpu_seconds[2]},
            "fairness": {
                "pending_frameworks": self.fairness.pending,
                "starved_frameworks": self.fairness.starved,
                "min_cpu_share": self.fairness.min_share,
                "max_cpu_share": self.fairness.max_share,
            },
        });
        serde_json::to_string_pretty(&v).expect("plain JSON") + "\n"
    }
}

/// At the moment half the tasks were Running: the frameworks that still had
/// tasks waiting, how many of them had none running, and their cpu shares.
fn fairness(plan: &Plan, tasks: &[TaskPlan], seen: &Seen) -> Fairness {
    let mut times: Vec<Instant> = seen.running.values().copied().collect();
    times.sort();
    let Some(&half) = times.get(tasks.len() / 2) else {
        return Fairness::default();
    };
    let mut per_fw: HashMap<&str, (u64, bool)> = HashMap::new();
    for t in tasks {
        let e = per_fw.entry(&t.framework).or_default();
        match seen.running.get(&t.name) {
            Some(&at) if at <= half => e.0 += t.cpus_milli,
            _ => e.1 = true,
        }
    }
    let total = plan.cluster_cpus_milli().max(1) as f64;
    let shares: Vec<(f64, bool)> = per_fw
        .values()
        .filter(|(_, pending)| *pending)
        .map(|(cpus, _)| (*cpus as f64 / total, *cpus == 0))
        .collect();
    Fairness {
        pending: shares.len(),
        starved: shares.iter().filter(|(_, s)| *s).count(),
        min_share: shares
            .iter()
            .map(|s| s.0)
            .fold(f64::INFINITY, f64::min)
            .min(1.0),
        max_share: shares.iter().map(|s| s.0).fold(0.0, f64::max),
    }
}
