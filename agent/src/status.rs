//! A task's status as the agent reports it: the status bodies of each phase
//! (Running, and the ends of a run with their reasons and Ready/Stalled
//! conditions), and the reporter that applies them (server-side, as the
//! agent's field manager), retrying until stored.
//! Real runs ([`crate::runner`]) and simulated ones ([`crate::simulate`]) share both.

use crate::executor::{Exited, now};
use crate::runner::KillReason;
use kube::api::{Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use mosaic_crds::{Condition, Task, conditions};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The field manager of the agent's writes of a Task's status.
pub(crate) const MANAGER: &str = "mosaic-agent";

/// What one run's supervisor reports: the agent's whole view of the run's
/// status, applied server-side (field manager [`MANAGER`]) each time it
/// changes. Each report is merged into that view first (a null removes a
/// field; conditions merge by type and keep their transition time while
/// their status holds), so the apply names every field the agent owns and
/// none it does not: the `Scheduled` condition the binder wrote stays, and
/// what the agent no longer reports (usage, once the run ended) goes.
pub(crate) struct Reporter {
    mine: Map<String, Value>,
}

impl Reporter {
    /// A reporter for a run of `t`; a run picked up again keeps its start time.
    pub(crate) fn new(t: &Task) -> Self {
        let mut mine = Map::new();
        if let Some(s) = t.status.as_ref().and_then(|s| s.start_time.clone()) {
            mine.insert("startTime".into(), Value::String(s));
        }
        Reporter { mine }
    }

    /// Merges `update` into the agent's view and applies it.
    pub(crate) async fn report(&mut self, client: &Client, t: &Task, update: Value) {
        self.merge(t, update);
        apply(client, t, &self.mine).await;
    }

    fn merge(&mut self, t: &Task, update: Value) {
        let Value::Object(update) = update else {
            return;
        };
        for (k, v) in update {
            if k == "conditions" {
                self.merge_conditions(t, v);
            } else if v.is_null() {
                self.mine.remove(&k);
            } else {
                self.mine.insert(k, v);
            }
        }
    }

    fn merge_conditions(&mut self, t: &Task, new: Value) {
        let seen = t
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let mut list: Vec<Condition> = self
            .mine
            .get("conditions")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        let new: Vec<Condition> = serde_json::from_value(new).unwrap_or_default();
        for mut c in new {
            if !list.iter().any(|o| o.type_ == c.type_) {
                conditions::keep_transition(seen, &mut c);
            }
            conditions::set(&mut list, c);
        }
        self.mine.insert(
            "conditions".into(),
            serde_json::to_value(list).expect("conditions are JSON"),
        );
    }
}

/// Applies `status` as the agent's, retrying with backoff until it is stored
/// (or the task is gone): an agent's reports are never dropped. The answer
/// (the whole Task) is not decoded: the agent's watch brings the Task anyway.
async fn apply(client: &Client, t: &Task, status: &Map<String, Value>) {
    let url = Task::url_path(&(), t.namespace().as_deref());
    let body = json!({
        "apiVersion": Task::api_version(&()),
        "kind": Task::kind(&()),
        "metadata": {"name": t.name_any(), "namespace": t.namespace()},
        "status": status,
    });
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
    }
}

/// The status of a run that ended.
pub(crate) fn outcome(e: &Exited, kill: Option<&KillReason>, oom_now: bool, t: &Task) -> Value {
    let generation = t.metadata.generation;
    let (code, signal) = (e.exit_code, e.signal);
    if let Some(msg) = &e.launch_error {
        return launch_failed(msg, generation);
    }
    if let Some(reason) = kill {
        let (r, m) = describe_kill(reason);
        let phase = match reason {
            KillReason::HealthCheck(_) => "Failed",
            _ => "Killed",
        };
        return terminal(phase, r, &m, code, signal, generation, false);
    }
    if e.oom_killed || oom_now {
        let mem = t
            .spec
            .resources
            .memory_bytes()
            .ok()
            .flatten()
            .unwrap_or(128 << 20);
        let m = format!("the task used more than its memory limit of {mem} bytes and was killed");
        return terminal(
            "Failed",
            "MemoryLimitExceeded",
            &m,
            code,
            signal,
            generation,
            false,
        );
    }
    match (code, signal) {
        (Some(0), _) => terminal(
            "Finished",
            "Completed",
            "the task exited 0",
            Some(0),
            None,
            generation,
            true,
        ),
        (Some(c), _) => terminal(
            "Failed",
            "NonZeroExit",
            &format!("the task exited {c}"),
            Some(c),
            None,
            generation,
            false,
        ),
        (None, s) => terminal(
            "Failed",
            "NonZeroExit",
            &format!("the task was killed by signal {}", s.unwrap_or(0)),
            None,
            s,
            generation,
            false,
        ),
    }
}

/// The Ready condition of a running task.
pub(crate) fn ready_running(now: &str, healthy: bool, generation: Option<i64>) -> Value {
    if healthy {
        json!({"type": "Ready", "status": "True", "reason": "Running", "message": "the task is running", "lastTransitionTime": now, "observedGeneration": generation})
    } else {
        json!({"type": "Ready", "status": "False", "reason": "HealthCheckPending", "message": "the task runs; its health check has not passed yet", "lastTransitionTime": now, "observedGeneration": generation})
    }
}

/// The status of a task that started running.
pub(crate) fn running(start: &str, msg: &str, healthy: bool, generation: Option<i64>) -> Value {
    let now = now();
    json!({"phase": "Running", "startTime": start, "reason": "Started", "message": msg,
           "observedGeneration": generation,
           "conditions": [ready_running(&now, healthy, generation)]})
}

/// The status of a task that could not be started.
pub(crate) fn launch_failed(msg: &str, generation: Option<i64>) -> Value {
    terminal("Failed", "LaunchFailed", msg, None, None, generation, false)
}

/// The status of a task whose user this agent may not run it as.
pub(crate) fn user_not_allowed(msg: &str, generation: Option<i64>) -> Value {
    terminal(
        "Failed",
        "UserNotAllowed",
        msg,
        None,
        None,
        generation,
        false,
    )
}

/// The status of a task that ended.
pub(crate) fn terminal(
    phase: &str,
    reason: &str,
    message: &str,
    code: Option<i32>,
    signal: Option<i32>,
    generation: Option<i64>,
    ok: bool,
) -> Value {
    let now = now();
    let (ready, stalled) = if ok {
        ("True", "False")
    } else {
        ("False", "True")
    };
    json!({"phase": phase, "reason": reason, "message": message, "exitCode": code, "signal": signal,
           "finishTime": now, "observedGeneration": generation, "usage": null,
           "conditions": [
               {"type": "Ready", "status": ready, "reason": reason, "message": message, "lastTransitionTime": now, "observedGeneration": generation},
               {"type": "Stalled", "status": stalled, "reason": reason, "message": message, "lastTransitionTime": now, "observedGeneration": generation}]})
}
