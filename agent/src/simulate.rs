//! Simulated agents for scale tests (`mosaic agent --simulate`): they register,
//! heartbeat and report task phases exactly as real agents do, but run no
//! process. A task goes Running at once, then Finished after the duration in
//! its annotation `mosaic.dev/simulate-duration` (e.g. `"30s"`, `"1m30s"`,
//! `"500ms"`); without one it runs until deleted (then Killed).
//!
//! Many simulated agents share one process, one client and one watch of the
//! Tasks (filtered here by `status.agent`), so a thousand cost little more
//! than their heartbeats.

use crate::AgentConfig;
use crate::executor::now;
use crate::status::{KillReason, Reporter, killed, running};
use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use mosaic_crds::Task;
use mosaic_crds::lean::LeanTask;
use mosaic_crds::lifecycle;
use mosaic_crds::task::TaskPhase;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The annotation that says how long a simulated task runs.
pub const DURATION_ANNOTATION: &str = "mosaic.dev/simulate-duration";
pub use crate::register::SIMULATED_LABEL;

/// Runs simulated agents, one per config (they share `client`), until `shutdown`.
pub async fn run(
    client: Client,
    cfgs: Vec<AgentConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), crate::AgentError> {
    tokio::pin!(shutdown);
    let names: HashSet<String> = cfgs.iter().map(|c| c.name.clone()).collect();
    // Register a few dozen at a time, each retried until it is in.
    let registered = futures::stream::iter(cfgs.clone().into_iter().map(|cfg| {
        let client = client.clone();
        async move {
            let cfg = &cfg;
            let mut wait = Duration::from_millis(200);
            loop {
                match crate::register::register(&client, cfg, &crate::cgroup::Mode::None, None).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::debug!(agent = %cfg.name, error = %e, "registering a simulated agent; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<()>>();
    tokio::select! {
        _ = &mut shutdown => return Ok(()),
        _ = registered => {}
    }
    let mut heartbeats = tokio::task::JoinSet::new();
    for (i, cfg) in cfgs.iter().enumerate() {
        let (client, name, every) = (client.clone(), cfg.name.clone(), cfg.heartbeat);
        // Spread the renewals over the period.
        let offset = every.mul_f64(i as f64 / cfgs.len().max(1) as f64);
        heartbeats.spawn(async move {
            tokio::time::sleep(offset).await;
            crate::register::heartbeat(client, name, every).await;
        });
    }
    tracing::info!(agents = cfgs.len(), "simulated agents started");
    let sim = Arc::new(Simulator {
        client: client.clone(),
        names,
        runs: Mutex::new(HashMap::new()),
    });
    let stream = watcher(Api::<LeanTask>::all(client), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .map_ok(|t| t.0);
    futures::pin_mut!(stream);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            t = stream.next() => match t {
                Some(Ok(t)) => sim.observe(t).await,
                Some(Err(e)) => tracing::debug!(error = %e, "task watch error (retrying)"),
                None => break,
            },
        }
    }
    heartbeats.abort_all();
    for (_, h) in sim.runs.lock().await.drain() {
        h.abort();
    }
    Ok(())
}

struct Simulator {
    client: Client,
    names: HashSet<String>,
    /// Simulated runs under way, by task uid.
    runs: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Simulator {
    async fn observe(self: &Arc<Self>, t: Task) {
        let st = t.status.clone().unwrap_or_default();
        if !st.agent.as_ref().is_some_and(|a| self.names.contains(a)) {
            return;
        }
        let uid = t.uid().unwrap_or_default();
        let mut runs = self.runs.lock().await;
        if t.metadata.deletion_timestamp.is_some() {
            let live = st.phase.is_some_and(TaskPhase::is_active);
            if let Some(h) = runs.remove(&uid) {
                h.abort();
            }
            drop(runs);
            if live {
                // Reported on its own, as a real agent's runs report
                // theirs: the watch goes on to the next task meanwhile.
                let client = self.client.clone();
                tokio::spawn(async move {
                    let status = killed(&KillReason::User, t.metadata.generation);
                    Reporter::new(&t).report(&client, &t, status).await;
                });
            }
            return;
        }
        if runs.contains_key(&uid) {
            return;
        }
        let duration = t
            .annotations()
            .get(DURATION_ANNOTATION)
            .and_then(|d| d.parse::<jiff::SignedDuration>().ok())
            .and_then(|d| Duration::try_from(d).ok());
        let (start, remaining) = match st.phase {
            Some(TaskPhase::Staging) => (now(), duration),
            // Picked up again after this process restarted: the clock ran on.
            Some(TaskPhase::Running) => {
                let start = st.start_time.clone().unwrap_or_else(now);
                let elapsed = start
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .and_then(|s| Duration::try_from(jiff::Timestamp::now().duration_since(s)).ok())
                    .unwrap_or_default();
                (start, duration.map(|d| d.saturating_sub(elapsed)))
            }
            _ => return,
        };
        let this = self.clone();
        let task_uid = uid.clone();
        let report_running = st.phase == Some(TaskPhase::Staging);
        let handle = tokio::spawn(async move {
            let mut reporter = Reporter::new(&t);
            if report_running {
                let status = running(&start, "running (simulated)", true, t.metadata.generation);
                reporter.report(&this.client, &t, status).await;
            }
            let Some(d) = remaining else { return };
            tokio::time::sleep(d).await;
            let msg = "the simulated task finished";
            let status = lifecycle::ended(
                TaskPhase::Finished,
                "Completed",
                msg,
                Some(0),
                None,
                true,
                t.metadata.generation,
                lifecycle::now(),
            );
            reporter.report(&this.client, &t, status).await;
            this.runs.lock().await.remove(&task_uid);
        });
        runs.insert(uid, handle.abort_handle());
    }
}
