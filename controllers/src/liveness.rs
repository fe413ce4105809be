//! Agent liveness from heartbeat Leases: an agent whose Lease expired is not
//! Ready (no new placements) and its running tasks are Unreachable; after
//! `agent_lost_after` more they are Lost (reason AgentLost), and their restart
//! policy decides whether they run again elsewhere. An agent that heartbeats
//! again is Ready again, and its Unreachable tasks are Running again.

use crate::scheduler::now;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Agent, Task};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// Whether each agent's Lease is current, by agent name. An agent with no Lease yet counts as live.
pub fn live_agents(agents: &Store<Agent>, leases: &Store<Lease>) -> HashMap<String, bool> {
    let now = jiff::Timestamp::now();
    let by_name: HashMap<String, std::sync::Arc<Lease>> = leases
        .state()
        .into_iter()
        .map(|l| (l.name_any(), l))
        .collect();
    agents
        .state()
        .iter()
        .map(|a| {
            let live = by_name
                .get(&a.name_any())
                .and_then(|l| l.spec.as_ref())
                .is_none_or(|spec| {
                    let renewed = spec.renew_time.as_ref().map(|t| t.0);
                    let lasts = jiff::SignedDuration::from_secs(
                        spec.lease_duration_seconds.unwrap_or(20).into(),
                    );
                    renewed.is_none_or(|r| r.checked_add(lasts).is_ok_and(|until| until > now))
                });
            (a.name_any(), live)
        })
        .collect()
}

/// Brings Agent readiness and its tasks' phases in line with the Leases.
pub async fn reconcile(
    client: &Client,
    agents: &Store<Agent>,
    tasks: &Store<Task>,
    live: &HashMap<String, bool>,
    lost_after: Duration,
) {
    for a in agents.state() {
        let name = a.name_any();
        let is_live = live.get(&name).copied().unwrap_or(true);
        let ready = a.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready != is_live {
            let (status, reason, message) = if is_live {
                ("True", "Heartbeating", "the agent renews its lease again")
            } else {
                (
                    "False",
                    "LeaseExpired",
                    "the agent stopped renewing its lease",
                )
            };
            let body = json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": reason,
                "message": message, "lastTransitionTime": now(), "observedGeneration": a.metadata.generation}]}});
            let api: Api<Agent> = Api::all(client.clone());
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => tracing::info!(agent = %name, ready = is_live, "agent readiness changed"),
                Err(e) => {
                    tracing::debug!(agent = %name, error = %e, "updating agent readiness (next cycle retries)")
                }
            }
        }
    }
    let now_ts = jiff::Timestamp::now();
    for t in tasks.state() {
        let st = t.status.clone().unwrap_or_default();
        let Some(agent) = st.agent.as_deref() else {
            continue;
        };
        let is_live = live.get(agent).copied().unwrap_or(false);
        let since = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.last_transition_time.0)
            .unwrap_or(now_ts);
        let gen_ = t.metadata.generation;
        let cond = |status: &str, reason: &str, message: &str| json!([{"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": now(), "observedGeneration": gen_}]);
        let update = match st.phase {
            Some(
                TaskPhase::Staging | TaskPhase::Starting | TaskPhase::Running | TaskPhase::Killing,
            ) if !is_live => {
                let msg = format!("agent {agent} stopped heartbeating");
                Some(
                    json!({"phase": "Unreachable", "reason": "AgentUnreachable", "message": msg, "conditions": cond("False", "AgentUnreachable", &msg)}),
                )
            }
            Some(TaskPhase::Unreachable) if is_live => {
                let msg = format!("agent {agent} heartbeats again");
                Some(
                    json!({"phase": "Running", "reason": "AgentReturned", "message": msg, "conditions": cond("True", "Running", &msg)}),
                )
            }
            Some(TaskPhase::Unreachable)
                if now_ts.duration_since(since).as_secs_f64() >= lost_after.as_secs_f64() =>
            {
                let msg = format!(
                    "agent {agent} has been unreachable for {} s",
                    lost_after.as_secs()
                );
                let restarts = t
                    .spec
                    .restarts_after(TaskPhase::Lost, st.attempt.unwrap_or(0));
                let mut conds = cond("False", "AgentLost", &msg);
                conds.as_array_mut().expect("an array").push(json!({"type": "Stalled", "status": if restarts { "False" } else { "True" },
                    "reason": "AgentLost", "message": msg, "lastTransitionTime": now(), "observedGeneration": gen_}));
                Some(
                    json!({"phase": "Lost", "reason": "AgentLost", "message": msg, "finishTime": now(), "conditions": conds}),
                )
            }
            _ => None,
        };
        if let Some(status) = update {
            let api: Api<Task> =
                Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
            let body =
                json!({"metadata": {"resourceVersion": t.resource_version()}, "status": status});
            match api
                .patch_status(&t.name_any(), &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {
                    tracing::info!(task = %t.name_any(), agent, phase = %status["phase"], "agent liveness changed the task");
                    let reason = status["reason"].as_str().unwrap_or("AgentLiveness");
                    let message = status["message"].as_str().unwrap_or("");
                    crate::events::record(client, t.as_ref(), "Warning", reason, message).await;
                }
                Err(e) => {
                    tracing::debug!(task = %t.name_any(), error = %e, "liveness update not written (will retry)")
                }
            }
        }
    }
}
