//! The lifecycle vocabulary of a Task: the status each phase of its life is
//! reported with, typed, one builder per phase (bound, running, healthy,
//! killing, finished, failed, killed, unreachable, returned, lost,
//! restarting, unschedulable, invalid offer), and the one clock they are
//! stamped with. Whoever writes a Task's status (the API server's binding,
//! the scheduler, the liveness controller, the agent) builds it here, so a
//! phase reads the same whoever reports it.

use crate::common::{Condition, ResourceQuantities, condition_types::*};
use crate::conditions;
use crate::ports::TaskPort;
use crate::task::{TaskPhase, TaskStatus};
use k8s_openapi::jiff::Timestamp;
use serde::{Serialize, Serializer};

/// Now, on the one clock every status is stamped with.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// `t` as Kubernetes writes timestamps (RFC 3339, to the second, UTC).
pub fn text(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A change to a Task's status: the fields its writer sets, and those it
/// clears (`null` in a merge patch; in the agent's own view of the status,
/// removed before it applies that view).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TaskStatusPatch {
    /// What it sets.
    #[serde(flatten)]
    pub set: TaskStatus,
    /// What it clears (never a field it sets).
    #[serde(flatten)]
    pub clear: Cleared,
}

/// The fields of a Task's status a change clears.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cleared {
    /// `agent`.
    #[serde(skip_serializing_if = "not", serialize_with = "null")]
    pub agent: bool,
    /// `ports`.
    #[serde(skip_serializing_if = "not", serialize_with = "null")]
    pub ports: bool,
    /// `reason`.
    #[serde(skip_serializing_if = "not", serialize_with = "null")]
    pub reason: bool,
    /// `message`.
    #[serde(skip_serializing_if = "not", serialize_with = "null")]
    pub message: bool,
    /// `startTime`.
    #[serde(skip_serializing_if = "not", serialize_with = "null")]
    pub start_time: bool,
    /// `usage`.
    #[serde(skip_serializing_if = "not", serialize_with = "null")]
    pub usage: bool,
    /// `exitCode`.
    #[serde(skip_serializing_if = "not", serialize_with = "null")]
    pub exit_code: bool,
    /// `signal`.
    #[serde(skip_serializing_if = "not", serialize_with = "null")]
    pub signal: bool,
}

/// Whether a clear flag is unset (for `skip_serializing_if`).
pub(crate) fn not(b: &bool) -> bool {
    !*b
}

/// A set clear flag, as `null` (for `serialize_with`).
pub(crate) fn null<S: Serializer>(_: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_unit()
}

impl TaskStatusPatch {
    /// The phase and why, with the conditions that go with it.
    fn phase(phase: TaskPhase, reason: &str, message: &str, conditions: Vec<Condition>) -> Self {
        TaskStatusPatch {
            set: TaskStatus {
                phase: Some(phase),
                reason: Some(reason.into()),
                message: Some(message.into()),
                conditions,
                ..TaskStatus::default()
            },
            clear: Cleared::default(),
        }
    }

    /// For the spec of `generation`.
    fn observing(mut self, generation: Option<i64>) -> Self {
        self.set.observed_generation = generation;
        self
    }

    /// A run that ended will run again: not Stalled (kstatus would read a
    /// Stalled task as failed for good).
    pub fn will_restart(mut self) -> Self {
        if let Some(c) = self.set.conditions.iter_mut().find(|c| c.type_ == STALLED) {
            c.status = "False".into();
            c.message = "the task will be restarted".into();
        }
        self
    }

    /// Merges this change into `view` (a writer's own view of the status):
    /// what it sets replaces, what it clears goes, and conditions merge by
    /// type, keeping the transition time of one whose status holds in `view`
    /// or, when `view` has none of its type, in `seen` (the Task as last read).
    pub fn merge_into(self, view: &mut TaskStatus, seen: &[Condition]) {
        let TaskStatusPatch { set, clear } = self;
        macro_rules! take {
            ($($f:ident),*) => {$( if set.$f.is_some() { view.$f = set.$f; } )*};
        }
        take!(
            phase,
            agent,
            exit_code,
            signal,
            start_time,
            finish_time,
            attempt,
            usage,
            reason,
            message,
            observed_generation
        );
        if !set.ports.is_empty() {
            view.ports = set.ports;
        }
        macro_rules! drop_cleared {
            ($($f:ident),*) => {$( if clear.$f { view.$f = None; } )*};
        }
        drop_cleared!(agent, reason, message, start_time, usage, exit_code, signal);
        if clear.ports {
            view.ports.clear();
        }
        for mut c in set.conditions {
            if !view.conditions.iter().any(|o| o.type_ == c.type_) {
                conditions::keep_transition(seen, &mut c);
            }
            conditions::set(&mut view.conditions, c);
        }
    }
}

/// Bound to `agent` with the host `ports` it is given there: Staging, and
/// Scheduled (the binding's write).
pub fn bound(
    agent: &str,
    ports: &[TaskPort],
    generation: Option<i64>,
    now: Timestamp,
) -> TaskStatusPatch {
    let mut p = TaskStatusPatch {
        set: TaskStatus {
            phase: Some(TaskPhase::Staging),
            agent: Some(agent.into()),
            ports: ports.to_vec(),
            conditions: vec![
                conditions::new(
                    SCHEDULED,
                    true,
                    "Scheduled",
                    &format!("bound to agent {agent}"),
                    generation,
                    now,
                ),
                conditions::new(
                    READY,
                    false,
                    "Staging",
                    "waiting for the agent to start it",
                    generation,
                    now,
                ),
            ],
            ..TaskStatus::default()
        },
        clear: Cleared {
            reason: true,
            message: true,
            ports: ports.is_empty(),
            ..Cleared::default()
        },
    };
    p.set.observed_generation = generation;
    p
}

/// Its agent is starting it (as Mesos's TASK_STARTING): the launch has
/// taken longer than the agent waits before saying so.
pub fn starting(message: &str, generation: Option<i64>, now: Timestamp) -> TaskStatusPatch {
    TaskStatusPatch::phase(
        TaskPhase::Starting,
        "Starting",
        message,
        vec![conditions::new(
            READY, false, "Starting", message, generation, now,
        )],
    )
    .observing(generation)
}

/// The Ready condition of a running task: True once `healthy` (it has no
/// health check, or it passed), else False while the check has not passed.
pub fn ready_running(healthy: bool, generation: Option<i64>, now: Timestamp) -> Condition {
    if healthy {
        conditions::new(
            READY,
            true,
            "Running",
            "the task is running",
            generation,
            now,
        )
    } else {
        conditions::new(
            READY,
            false,
            "HealthCheckPending",
            "the task runs; its health check has not passed yet",
            generation,
            now,
        )
    }
}

/// Its process started at `start` (RFC 3339).
pub fn running(
    start: &str,
    message: &str,
    healthy: bool,
    generation: Option<i64>,
    now: Timestamp,
) -> TaskStatusPatch {
    let mut p = TaskStatusPatch::phase(
        TaskPhase::Running,
        "Started",
        message,
        vec![ready_running(healthy, generation, now)],
    )
    .observing(generation);
    p.set.start_time = Some(start.into());
    p
}

/// Its health check passed.
pub fn healthy(generation: Option<i64>, now: Timestamp) -> TaskStatusPatch {
    TaskStatusPatch {
        set: TaskStatus {
            conditions: vec![ready_running(true, generation, now)],
            ..TaskStatus::default()
        },
        clear: Cleared::default(),
    }
}

/// Usage sampled while it runs.
pub fn usage(q: ResourceQuantities) -> TaskStatusPatch {
    TaskStatusPatch {
        set: TaskStatus {
            usage: Some(q),
            ..TaskStatus::default()
        },
        clear: Cleared::default(),
    }
}

/// Being killed, and why.
pub fn killing(reason: &str, message: &str) -> TaskStatusPatch {
    TaskStatusPatch::phase(TaskPhase::Killing, reason, message, Vec::new())
}

/// A run that ended in `phase` (Finished, Failed or Killed): its exit code
/// or signal, its end time, Ready (True only when `ok`) and Stalled (the
/// reverse); its usage goes.
#[allow(clippy::too_many_arguments)]
pub fn ended(
    phase: TaskPhase,
    reason: &str,
    message: &str,
    code: Option<i32>,
    signal: Option<i32>,
    ok: bool,
    generation: Option<i64>,
    now: Timestamp,
) -> TaskStatusPatch {
    let mut p = TaskStatusPatch::phase(
        phase,
        reason,
        message,
        vec![
            conditions::new(READY, ok, reason, message, generation, now),
            conditions::new(STALLED, !ok, reason, message, generation, now),
        ],
    )
    .observing(generation);
    p.set.exit_code = code;
    p.set.signal = signal;
    p.set.finish_time = Some(text(now));
    p.clear = Cleared {
        exit_code: code.is_none(),
        signal: signal.is_none(),
        usage: true,
        ..Cleared::default()
    };
    p
}

/// It exited 0.
pub fn finished(generation: Option<i64>, now: Timestamp) -> TaskStatusPatch {
    ended(
        TaskPhase::Finished,
        "Completed",
        "the task exited 0",
        Some(0),
        None,
        true,
        generation,
        now,
    )
}

/// It failed (`reason`, `message`), with its exit code or signal if it ran.
pub fn failed(
    reason: &str,
    message: &str,
    code: Option<i32>,
    signal: Option<i32>,
    generation: Option<i64>,
    now: Timestamp,
) -> TaskStatusPatch {
    ended(
        TaskPhase::Failed,
        reason,
        message,
        code,
        signal,
        false,
        generation,
        now,
    )
}

/// It was killed (`reason`, `message`), with its exit code or signal if it ran.
pub fn killed(
    reason: &str,
    message: &str,
    code: Option<i32>,
    signal: Option<i32>,
    generation: Option<i64>,
    now: Timestamp,
) -> TaskStatusPatch {
    ended(
        TaskPhase::Killed,
        reason,
        message,
        code,
        signal,
        false,
        generation,
        now,
    )
}

/// Its agent stopped heartbeating and may come back.
pub fn unreachable(message: &str, generation: Option<i64>, now: Timestamp) -> TaskStatusPatch {
    TaskStatusPatch::phase(
        TaskPhase::Unreachable,
        "AgentUnreachable",
        message,
        vec![conditions::new(
            READY,
            false,
            "AgentUnreachable",
            message,
            generation,
            now,
        )],
    )
}

/// Its agent came back while it ran.
pub fn returned(message: &str, generation: Option<i64>, now: Timestamp) -> TaskStatusPatch {
    TaskStatusPatch::phase(
        TaskPhase::Running,
        "AgentReturned",
        message,
        vec![conditions::new(
            READY, true, "Running", message, generation, now,
        )],
    )
}

/// Its agent is gone; `restarts`: it will run again elsewhere (so not Stalled).
pub fn lost(
    message: &str,
    restarts: bool,
    generation: Option<i64>,
    now: Timestamp,
) -> TaskStatusPatch {
    let mut p = TaskStatusPatch::phase(
        TaskPhase::Lost,
        "AgentLost",
        message,
        vec![
            conditions::new(READY, false, "AgentLost", message, generation, now),
            conditions::new(STALLED, !restarts, "AgentLost", message, generation, now),
        ],
    );
    p.set.finish_time = Some(text(now));
    p
}

/// Back in the queue for restart number `attempt` (`message` says after
/// what): unbound, its ports, start time and usage gone.
pub fn restarting(
    attempt: u32,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> TaskStatusPatch {
    let waiting = "waiting to be placed again";
    let mut p = TaskStatusPatch::phase(
        TaskPhase::Pending,
        "Restarting",
        message,
        vec![
            conditions::new(SCHEDULED, false, "Restarting", waiting, generation, now),
            conditions::new(READY, false, "Restarting", waiting, generation, now),
        ],
    )
    .observing(generation);
    p.set.attempt = Some(attempt);
    p.clear = Cleared {
        agent: true,
        ports: true,
        start_time: true,
        usage: true,
        ..Cleared::default()
    };
    p
}

/// No agent takes it (`reason`); `waits`: only until its group moves (its
/// constraints), so not Stalled, where one no agent could ever run is.
pub fn unschedulable(
    message: &str,
    reason: &str,
    waits: bool,
    generation: Option<i64>,
    now: Timestamp,
) -> TaskStatusPatch {
    let why = "Unschedulable";
    TaskStatusPatch::phase(
        TaskPhase::Pending,
        why,
        message,
        vec![
            conditions::new(SCHEDULED, false, why, reason, generation, now),
            conditions::new(STALLED, !waits, why, reason, generation, now),
            conditions::new(READY, false, why, reason, generation, now),
        ],
    )
    .observing(generation)
}

/// It names an offer it cannot be launched on (`message` says why).
pub fn invalid_offer(message: &str, generation: Option<i64>, now: Timestamp) -> TaskStatusPatch {
    let why = "InvalidOffer";
    TaskStatusPatch::phase(
        TaskPhase::Error,
        why,
        message,
        vec![
            conditions::new(READY, false, why, message, generation, now),
            conditions::new(STALLED, true, why, message, generation, now),
        ],
    )
    .observing(generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t0() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_starting_status_is_not_ready_and_keeps_scheduled() {
        let mut view = TaskStatus::default();
        bound("a1", &[], Some(1), t0()).merge_into(&mut view, &[]);
        starting("pulling the image", Some(1), t0()).merge_into(&mut view, &[]);
        assert_eq!(view.phase, Some(TaskPhase::Starting));
        assert_eq!(view.reason.as_deref(), Some("Starting"));
        let types: Vec<(&str, &str)> = view
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, [("Scheduled", "True"), ("Ready", "False")]);
        assert!(!TaskPhase::Starting.is_terminal());
    }

    #[test]
    fn a_bound_status_clears_what_an_earlier_phase_said() {
        let p = bound("a1", &[], Some(2), t0());
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["phase"], "Staging");
        assert_eq!(v["agent"], "a1");
        assert_eq!(v["observedGeneration"], 2);
        for cleared in ["reason", "message", "ports"] {
            assert_eq!(v[cleared], json!(null), "{cleared} cleared: {v}");
            assert!(v.get(cleared).is_some(), "{cleared} written as null: {v}");
        }
        assert_eq!(v["conditions"][0]["type"], "Scheduled");
        assert_eq!(
            v["conditions"][0]["lastTransitionTime"],
            "2027-01-15T08:00:00Z"
        );
        let with_ports = bound(
            "a1",
            &[TaskPort {
                name: "http".into(),
                port: 31000,
            }],
            Some(2),
            t0(),
        );
        let v = serde_json::to_value(&with_ports).unwrap();
        assert_eq!(v["ports"], json!([{"name": "http", "port": 31000}]));
    }

    #[test]
    fn an_ended_run_drops_its_usage_and_the_exit_it_did_not_have() {
        let mut view = TaskStatus::default();
        usage(ResourceQuantities::default()).merge_into(&mut view, &[]);
        running("2027-01-15T07:00:00Z", "started", false, Some(1), t0()).merge_into(&mut view, &[]);
        assert!(view.usage.is_some());
        assert_eq!(view.conditions[0].reason, "HealthCheckPending");
        let later = Timestamp::from_second(1_800_000_100).unwrap();
        healthy(Some(1), later).merge_into(&mut view, &[]);
        assert_eq!(view.conditions[0].reason, "Running");
        assert_eq!(
            view.conditions[0].last_transition_time.0, later,
            "False to True moves"
        );
        view.signal = Some(9);
        failed(
            "NonZeroExit",
            "the task exited 3",
            Some(3),
            None,
            Some(1),
            later,
        )
        .merge_into(&mut view, &[]);
        assert_eq!(view.phase, Some(TaskPhase::Failed));
        assert_eq!(view.exit_code, Some(3));
        assert_eq!(view.signal, None, "a signal it did not have goes");
        assert_eq!(view.usage, None);
        assert_eq!(view.start_time.as_deref(), Some("2027-01-15T07:00:00Z"));
        let types: Vec<&str> = view.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Stalled"]);
    }

    #[test]
    fn a_condition_new_to_the_view_keeps_the_transition_time_the_task_shows() {
        let seen = vec![ready_running(true, Some(1), t0())];
        let mut view = TaskStatus::default();
        let later = Timestamp::from_second(1_800_000_100).unwrap();
        healthy(Some(1), later).merge_into(&mut view, &seen);
        assert_eq!(view.conditions[0].last_transition_time.0, t0());
    }

    #[test]
    fn a_failure_that_restarts_is_not_stalled() {
        let p = failed("NonZeroExit", "exited 1", Some(1), None, Some(1), t0()).will_restart();
        let stalled = &p.set.conditions[1];
        assert_eq!(
            (stalled.type_.as_str(), stalled.status.as_str()),
            ("Stalled", "False")
        );
        assert_eq!(stalled.message, "the task will be restarted");
        let lost = lost("gone", true, Some(1), t0());
        assert_eq!(lost.set.conditions[1].status, "False");
    }

    #[test]
    fn a_restart_unbinds_and_an_unschedulable_task_waits_or_stalls() {
        let v = serde_json::to_value(restarting(2, "restart 2 after: x", Some(1), t0())).unwrap();
        assert_eq!(v["phase"], "Pending");
        assert_eq!(v["attempt"], 2);
        for cleared in ["agent", "ports", "startTime", "usage"] {
            assert!(
                v.get(cleared).is_some_and(|c| c.is_null()),
                "{cleared}: {v}"
            );
        }
        let waits = unschedulable("waiting", "UNIQUE hostname", true, Some(1), t0());
        let types: Vec<(&str, &str)> = waits
            .set
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("Scheduled", "False"),
                ("Stalled", "False"),
                ("Ready", "False")
            ]
        );
        let never = unschedulable("never", "too big", false, Some(1), t0());
        assert_eq!(never.set.conditions[1].status, "True");
    }
}
