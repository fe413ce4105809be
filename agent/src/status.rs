//! A task's status as the agent reports it: the status bodies of each phase
//! (Running, and the ends of a run with their reasons and Ready/Stalled
//! conditions), and the reporter that applies them (server-side, as the
//! agent's field manager), retrying until stored.
//! Real runs ([`crate::runner`]) and simulated ones ([`crate::simulate`]) share both.

use crate::executor::Exited;
use kube::api::{Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use mosaic_crds::Task;
use mosaic_crds::lifecycle::{self, TaskStatusPatch};
use mosaic_crds::status_apply::{Guard, StatusApply};
use mosaic_crds::task::TaskStatus;
use std::time::Duration;

/// The field manager of the agent's writes of a Task's status.
pub(crate) const MANAGER: &str = "mosaic-agent";

/// What one run's supervisor reports: the agent's whole view of the run's
/// status, applied server-side (field manager [`MANAGER`]) each time it
/// changes. Each report is merged into that view first (what it clears goes;
/// conditions merge by type and keep their transition time while their
/// status holds), so the apply names every field the agent owns and none it
/// does not: the `Scheduled` condition the binder wrote stays, and what the
/// agent no longer reports (usage, once the run ended) goes.
pub(crate) struct Reporter {
    mine: TaskStatus,
}

impl Reporter {
    /// A reporter for a run of `t`; a run picked up again keeps its start time.
    pub(crate) fn new(t: &Task) -> Self {
        Reporter {
            mine: TaskStatus {
                start_time: t.status.as_ref().and_then(|s| s.start_time.clone()),
                ..TaskStatus::default()
            },
        }
    }

    /// Merges `update` into the agent's view and applies it.
    pub(crate) async fn report(&mut self, client: &Client, t: &Task, update: TaskStatusPatch) {
        let seen = t
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        update.merge_into(&mut self.mine, seen);
        apply(client, t, &self.mine).await;
    }
}

/// Why a run is being killed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum KillReason {
    /// The task was deleted.
    User,
    /// Its health check failed this many times in a row; the last failure.
    HealthCheck(String),
    /// The agent is stopping and was told to take its tasks with it.
    Shutdown,
    /// It listened on host ports it was not given ([`crate::ports`]); which.
    Ports(String),
}

/// Applies `status` as the agent's, retrying with backoff until it is stored
/// (or the task is gone): an agent's reports are never dropped. The answer
/// (the whole Task) is not decoded: the agent's watch brings the Task anyway.
async fn apply(client: &Client, t: &Task, status: &TaskStatus) {
    let url = Task::url_path(&(), t.namespace().as_deref());
    let body = StatusApply::with::<Task>(Guard::named(t), status);
    let patch = Patch::Apply(&body);
    let params = PatchParams::apply(MANAGER).force();
    let mut wait = Duration::from_millis(100);
    loop {
        let sent = match kube::core::Request::new(&url).patch_subresource(
            "status",
            &t.name_any(),
            &params,
            &patch,
        ) {
            Ok(req) => client.request_text(req).await.map(drop),
            Err(e) => Err(kube::Error::BuildRequest(e)),
        };
        match sent {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(e) => {
                tracing::warn!(task = %t.name_any(), error = %e, "reporting task status; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

pub(crate) fn describe_kill(reason: &KillReason) -> (&'static str, String) {
    match reason {
        KillReason::User => ("KilledByUser", "the task was killed on request".into()),
        KillReason::Shutdown => (
            "KilledByUser",
            "the task was killed because its agent stopped".into(),
        ),
        KillReason::HealthCheck(m) => {
            ("HealthCheckFailed", format!("the health check failed: {m}"))
        }
        KillReason::Ports(m) => ("PortNotAllocated", m.clone()),
    }
}

/// The status of a run that ended.
pub(crate) fn outcome(
    e: &Exited,
    kill: Option<&KillReason>,
    oom_now: bool,
    t: &Task,
) -> TaskStatusPatch {
    let generation = t.metadata.generation;
    let now = lifecycle::now();
    let (code, signal) = (e.exit_code, e.signal);
    if let Some(msg) = &e.launch_error {
        return launch_failed(msg, generation);
    }
    if let Some(reason) = kill {
        let (r, m) = describe_kill(reason);
        return match reason {
            KillReason::HealthCheck(_) | KillReason::Ports(_) => {
                lifecycle::failed(r, &m, code, signal, generation, now)
            }
            _ => lifecycle::killed(r, &m, code, signal, generation, now),
        };
    }
    if e.oom_killed || oom_now {
        let mem = t.spec.memory_bytes();
        let m = format!("the task used more than its memory limit of {mem} bytes and was killed");
        return lifecycle::failed("MemoryLimitExceeded", &m, code, signal, generation, now);
    }
    match (code, signal) {
        (Some(0), _) => lifecycle::finished(generation, now),
        (Some(c), _) => lifecycle::failed(
            "NonZeroExit",
            &format!("the task exited {c}"),
            Some(c),
            None,
            generation,
            now,
        ),
        (None, s) => lifecycle::failed(
            "NonZeroExit",
            &format!("the task was killed by signal {}", s.unwrap_or(0)),
            None,
            s,
            generation,
            now,
        ),
    }
}

/// The status of a task that started running.
pub(crate) fn running(
    start: &str,
    msg: &str,
    healthy: bool,
    generation: Option<i64>,
) -> TaskStatusPatch {
    lifecycle::running(start, msg, healthy, generation, lifecycle::now())
}

/// The status of a task that could not be started.
pub(crate) fn launch_failed(msg: &str, generation: Option<i64>) -> TaskStatusPatch {
    lifecycle::failed(
        "LaunchFailed",
        msg,
        None,
        None,
        generation,
        lifecycle::now(),
    )
}

/// The status of a task whose user this agent may not run it as.
pub(crate) fn user_not_allowed(msg: &str, generation: Option<i64>) -> TaskStatusPatch {
    lifecycle::failed(
        "UserNotAllowed",
        msg,
        None,
        None,
        generation,
        lifecycle::now(),
    )
}

/// The status of a task killed on request (`reason`) before or after it ran.
pub(crate) fn killed(reason: &KillReason, generation: Option<i64>) -> TaskStatusPatch {
    let (r, m) = describe_kill(reason);
    lifecycle::killed(r, &m, None, None, generation, lifecycle::now())
}
