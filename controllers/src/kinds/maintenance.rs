//! Maintenance windows: an Agent's `spec.maintenance {start, durationSeconds}`.
//! Before the window its status shows it (`status.maintenance` and condition
//! `Maintenance=False`, reason `Scheduled`); at its start the agent is
//! cordoned and drained (`spec.unschedulable` and `spec.drain`, as `mosaic
//! drain` sets them, with a deadline 10 minutes on or at the window's end if
//! sooner), so App instances move within their upgrade strategy and the
//! drain controller kills what is left at the deadline; at its end the agent
//! is uncordoned again, unless it was cordoned before the window began. The
//! annotation [`ANNOTATION`] records that this controller drained it.
//! (Mesos marks machines DRAINING before a window and DOWN during it;
//! here the drain begins at the start, as the App issue asks.)

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use mosaic_crds::Agent;
use mosaic_crds::agent::{MAINTENANCE_CONDITION, MaintenanceStatus};
use mosaic_crds::common::Condition;
use mosaic_crds::status_apply::StatusApply;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The field manager of the maintenance status.
pub const MANAGER: &str = "mosaic-maintenance";

/// On an Agent this controller drained for a window: the window's start,
/// then `;cordoned` if it was cordoned before (and stays so after).
pub const ANNOTATION: &str = "mosaic.dev/maintenance-drain";

/// How long a window's drain lets tasks finish, at most (`mosaic drain`'s default).
const DRAIN_DEADLINE: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);

/// What a maintenance reconcile could not do.
#[derive(Debug, thiserror::Error)]
#[error("agent {agent}: {what}: {source}")]
pub struct MaintenanceError {
    /// The agent.
    agent: String,
    /// What was written.
    what: &'static str,
    /// The API's answer.
    #[source]
    source: kube::Error,
}

/// The status fields this controller owns (server-side apply).
#[derive(Debug, Default, PartialEq, Serialize)]
struct Owned {
    #[serde(skip_serializing_if = "Option::is_none")]
    maintenance: Option<MaintenanceStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<Condition>,
}

/// What to do with an Agent now.
#[derive(Debug, PartialEq)]
struct Plan {
    /// The status to own.
    status: Owned,
    /// A merge patch of the Agent (spec and the annotation), if one is due.
    patch: Option<serde_json::Value>,
    /// When to look again.
    requeue: Option<Duration>,
}

/// The plan for `agent` at `now`.
fn plan(agent: &Agent, now: jiff::Timestamp) -> Plan {
    let ours = agent.annotations().get(ANNOTATION).cloned();
    let generation = agent.metadata.generation;
    let cond = |status: bool, reason: &str, message: String| {
        mosaic_crds::conditions::new(
            MAINTENANCE_CONDITION,
            status,
            reason,
            &message,
            generation,
            now,
        )
    };
    // Undoes a drain this controller made (the window went, or ended).
    let undo = |ours: &str| {
        let was_cordoned = ours.ends_with(";cordoned");
        json!({
            "metadata": {"annotations": {ANNOTATION: null}},
            "spec": if was_cordoned { json!({}) } else { json!({"unschedulable": false, "drain": null}) },
        })
    };
    let Some(w) = &agent.spec.maintenance else {
        return Plan {
            status: Owned::default(),
            patch: ours.as_deref().map(undo),
            requeue: None,
        };
    };
    let start: Option<jiff::Timestamp> = w.start.parse().ok();
    let window = start.and_then(|s| {
        let end = s.checked_add(jiff::SignedDuration::from_secs(w.duration_seconds.max(1)));
        end.ok().map(|e| (s, e))
    });
    let Some((start, end)) = window else {
        return Plan {
            status: Owned {
                maintenance: None,
                conditions: vec![cond(
                    false,
                    "InvalidWindow",
                    format!(
                        "spec.maintenance.start {:?} is not an RFC 3339 time",
                        w.start
                    ),
                )],
            },
            patch: None,
            requeue: None,
        };
    };
    let shown = Some(MaintenanceStatus {
        start: start.to_string(),
        end: end.to_string(),
    });
    let until = |t: jiff::Timestamp| {
        let d = Duration::try_from(t.duration_since(now)).unwrap_or_default();
        Some(d.min(Duration::from_secs(300)) + Duration::from_millis(10))
    };
    let tag = start.to_string();
    if now < start {
        return Plan {
            status: Owned {
                maintenance: shown,
                conditions: vec![cond(
                    false,
                    "Scheduled",
                    format!("maintenance from {start} to {end}: the agent is drained at its start"),
                )],
            },
            patch: None,
            requeue: until(start),
        };
    }
    if now < end {
        let patch = match ours.as_deref() {
            Some(o) if o.split(';').next() == Some(tag.as_str()) => None,
            _ => {
                let cordoned = agent.spec.unschedulable;
                let value = if cordoned {
                    format!("{tag};cordoned")
                } else {
                    tag.clone()
                };
                let deadline = (now + DRAIN_DEADLINE).min(end);
                let mut spec = json!({"unschedulable": true});
                if agent.spec.drain.is_none() {
                    spec["drain"] = json!({"deadline": deadline.to_string()});
                }
                Some(json!({"metadata": {"annotations": {ANNOTATION: value}}, "spec": spec}))
            }
        };
        return Plan {
            status: Owned {
                maintenance: shown,
                conditions: vec![cond(
                    true,
                    "InMaintenance",
                    format!("in maintenance until {end}: cordoned and drained"),
                )],
            },
            patch,
            requeue: until(end),
        };
    }
    Plan {
        status: Owned {
            maintenance: shown,
            conditions: vec![cond(
                false,
                "WindowEnded",
                format!("the maintenance window ended at {end}"),
            )],
        },
        patch: ours
            .as_deref()
            .filter(|o| o.split(';').next() == Some(tag.as_str()))
            .map(undo),
        requeue: None,
    }
}

/// Runs the maintenance controller until the process ends.
pub async fn run(client: Client, registry: crate::index::Registry) {
    super::agent_specs::run(client, registry, reconcile, error_policy).await;
}

async fn reconcile(agent: Arc<Agent>, client: Arc<Client>) -> Result<Action, MaintenanceError> {
    let started = std::time::Instant::now();
    let done = reconcile_once(agent, client).await;
    crate::metrics::reconciled("maintenance", started);
    done
}

async fn reconcile_once(
    agent: Arc<Agent>,
    client: Arc<Client>,
) -> Result<Action, MaintenanceError> {
    let name = agent.name_any();
    let mut p = plan(&agent, jiff::Timestamp::now());
    let api = Api::<Agent>::all((*client).clone());
    let err = |what| {
        let agent = name.clone();
        move |source| MaintenanceError {
            agent,
            what,
            source,
        }
    };
    if let Some(patch) = &p.patch {
        api.patch(
            &name,
            &PatchParams {
                field_manager: Some(MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(patch),
        )
        .await
        .map_err(err("cordoning or uncordoning for maintenance"))?;
        tracing::info!(agent = %name, "maintenance: {patch}");
    }
    let seen = agent.status.clone().unwrap_or_default();
    let had = seen.maintenance.is_some()
        || seen
            .conditions
            .iter()
            .any(|c| c.type_ == MAINTENANCE_CONDITION);
    for c in &mut p.status.conditions {
        mosaic_crds::conditions::keep_transition(&seen.conditions, c);
    }
    let same = seen.maintenance == p.status.maintenance
        && p.status.conditions.iter().all(|c| {
            seen.conditions.iter().any(|s| {
                (&s.type_, &s.status, &s.reason, &s.message)
                    == (&c.type_, &c.status, &c.reason, &c.message)
            })
        });
    if !same || (had && p.status == Owned::default()) {
        let body = StatusApply::of::<Agent>(&p.status);
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(err("writing the maintenance status"))?;
    }
    Ok(match p.requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn error_policy(agent: Arc<Agent>, e: &MaintenanceError, _client: Arc<Client>) -> Action {
    tracing::warn!(agent = %agent.name_any(), error = %e, "maintenance; retrying in 10s");
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_crds::agent::{AgentSpec, MaintenanceWindow};

    fn agent(window: Option<(&str, i64)>, cordoned: bool, ours: Option<&str>) -> Agent {
        let mut a = Agent::new(
            "n",
            AgentSpec {
                unschedulable: cordoned,
                maintenance: window.map(|(s, d)| MaintenanceWindow {
                    start: s.into(),
                    duration_seconds: d,
                }),
                ..Default::default()
            },
        );
        if let Some(o) = ours {
            a.annotations_mut().insert(ANNOTATION.into(), o.into());
        }
        a
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    const START: &str = "2026-12-24T22:00:00Z";

    #[test]
    fn a_window_is_shown_then_drains_then_lets_go() {
        let a = agent(Some((START, 3600)), false, None);
        let before = plan(&a, at("2026-12-24T21:00:00Z"));
        assert_eq!(before.patch, None);
        assert_eq!(before.status.conditions[0].reason, "Scheduled");
        assert_eq!(
            before.status.maintenance.as_ref().unwrap().end,
            "2026-12-24T23:00:00Z"
        );
        assert!(before.requeue.unwrap() <= Duration::from_secs(301));

        let during = plan(&a, at("2026-12-24T22:55:00Z"));
        assert_eq!(during.status.conditions[0].status, "True");
        let patch = during.patch.unwrap();
        assert_eq!(patch["spec"]["unschedulable"], true);
        assert_eq!(
            patch["spec"]["drain"]["deadline"], "2026-12-24T23:00:00Z",
            "the window's end, sooner than 10 minutes"
        );
        assert_eq!(patch["metadata"]["annotations"][ANNOTATION], START);
        // Drained already: nothing more to write.
        let drained = agent(Some((START, 3600)), true, Some(START));
        assert_eq!(plan(&drained, at("2026-12-24T22:56:00Z")).patch, None);

        let after = plan(&drained, at("2026-12-24T23:00:01Z"));
        assert_eq!(after.status.conditions[0].reason, "WindowEnded");
        let undo = after.patch.unwrap();
        assert_eq!(undo["spec"]["unschedulable"], false);
        assert!(undo["spec"]["drain"].is_null());
        assert!(undo["metadata"]["annotations"][ANNOTATION].is_null());
    }

    #[test]
    fn an_agent_cordoned_before_its_window_stays_cordoned_after_it() {
        let a = agent(Some((START, 60)), true, None);
        let during = plan(&a, at("2026-12-24T22:00:30Z"));
        let patch = during.patch.unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][ANNOTATION],
            format!("{START};cordoned")
        );
        let drained = agent(Some((START, 60)), true, Some(&format!("{START};cordoned")));
        let undo = plan(&drained, at("2026-12-24T22:02:00Z")).patch.unwrap();
        assert_eq!(undo["spec"], json!({}), "left cordoned");
        // A window removed midway lets go the same way.
        let gone = agent(None, true, Some(START));
        assert_eq!(
            plan(&gone, at("2026-12-24T22:00:30Z")).patch.unwrap()["spec"]["unschedulable"],
            false
        );
        // Another window's drain is not this one's to undo.
        let other = agent(Some((START, 60)), true, Some("2026-01-01T00:00:00Z"));
        assert_eq!(plan(&other, at("2026-12-24T22:02:00Z")).patch, None);
    }
}
