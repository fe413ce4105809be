//! Agent liveness from heartbeat Leases: an agent whose Lease expired is not
//! Ready (no new placements) and its running tasks are Unreachable; after
//! `agent_lost_after` more they are Lost (reason AgentLost), and their restart
//! policy decides whether they run again elsewhere. An agent that heartbeats
//! again is Ready again, and its Unreachable tasks are Running again.

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use mosaic_crds::agent::AgentStatus;
use mosaic_crds::common::condition_types::READY;
use mosaic_crds::status_apply::{Guard, StatusApply};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Agent, Task, conditions, lifecycle};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

/// Each agent's heartbeat, kept from the Lease changes the watch reports:
/// when its Lease runs out, and whether it is live now. An agent with no
/// Lease yet counts as live.
#[derive(Default)]
pub struct Liveness {
    /// Agent -> when its Lease runs out (`None`: never renewed, counts as live).
    expiry: HashMap<String, Option<jiff::Timestamp>>,
    /// Expiry times to look at, soonest first (stale ones are skipped).
    due: BinaryHeap<Reverse<(jiff::Timestamp, String)>>,
    /// Agents not live now.
    down: HashSet<String>,
}

impl Liveness {
    /// Whether an agent heartbeats (unknown agents do not, for their tasks).
    pub fn is_live(&self, agent: &str) -> bool {
        !self.down.contains(agent)
    }

    /// The agents not live now.
    pub fn down(&self) -> Vec<String> {
        self.down.iter().cloned().collect()
    }

    /// An agent's Lease changed (gone: `None`). Returns whether its liveness flipped.
    pub fn lease(&mut self, agent: &str, lease: Option<&Lease>) -> bool {
        let until = lease.and_then(|l| l.spec.as_ref()).and_then(|spec| {
            let renewed = spec.renew_time.as_ref()?.0;
            let lasts =
                jiff::SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(20).into());
            Some(renewed.checked_add(lasts).unwrap_or(renewed))
        });
        if let Some(u) = until {
            self.due.push(Reverse((u, agent.to_string())));
        }
        self.expiry.insert(agent.to_string(), until);
        self.set(agent, until.is_none_or(|u| u > jiff::Timestamp::now()))
    }

    /// An agent went: its tasks are on an agent that is not live.
    pub fn agent_gone(&mut self, agent: &str) -> bool {
        self.expiry.remove(agent);
        self.set(agent, false)
    }

    /// An agent exists (registered, or seen again after it went).
    pub fn agent_seen(&mut self, agent: &str) -> bool {
        let live = match self.expiry.get(agent) {
            Some(Some(u)) => *u > jiff::Timestamp::now(),
            _ => true,
        };
        self.set(agent, live)
    }

    /// The agents whose Lease ran out since the last call.
    pub fn expired(&mut self) -> Vec<String> {
        let now = jiff::Timestamp::now();
        let mut out = Vec::new();
        while let Some(Reverse((at, _))) = self.due.peek() {
            if *at > now {
                break;
            }
            let Reverse((at, agent)) = self.due.pop().expect("peeked");
            if self.expiry.get(&agent) == Some(&Some(at)) && self.set(&agent, false) {
                out.push(agent);
            }
        }
        out
    }

    fn set(&mut self, agent: &str, live: bool) -> bool {
        if live {
            self.down.remove(agent)
        } else {
            self.down.insert(agent.to_string())
        }
    }
}

/// Brings the Ready condition of these agents in line with their Leases.
pub async fn reconcile_agents(
    client: &Client,
    agents: &Store<Agent>,
    names: &HashSet<String>,
    liveness: &Liveness,
) {
    for name in names {
        let Some(a) = agents.get(&ObjectRef::new(name)) else {
            continue;
        };
        let is_live = liveness.is_live(name);
        let ready = a.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready != is_live {
            let (reason, message) = if is_live {
                ("Heartbeating", "the agent renews its lease again")
            } else {
                ("LeaseExpired", "the agent stopped renewing its lease")
            };
            // Applied, owning only Ready: the other conditions (the
            // agent's, a maintenance window's) stay.
            let ready = AgentStatus {
                conditions: vec![conditions::new(
                    READY,
                    is_live,
                    reason,
                    message,
                    a.metadata.generation,
                    lifecycle::now(),
                )],
                ..AgentStatus::default()
            };
            let body = StatusApply::of::<Agent>(&ready);
            let api: Api<Agent> = Api::all(client.clone());
            match api
                .patch_status(
                    name,
                    &PatchParams::apply("mosaic-liveness").force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                Ok(_) => tracing::info!(agent = %name, ready = is_live, "agent readiness changed"),
                Err(e) => {
                    tracing::debug!(agent = %name, error = %e, "updating agent readiness (a later cycle retries)")
                }
            }
        }
    }
}

/// Brings these tasks' phases in line with their agents' liveness: Unreachable
/// when the agent stops heartbeating, Running when it comes back, Lost after
/// `lost_after`.
pub async fn reconcile_tasks(
    client: &Client,
    tasks: &Store<Task>,
    keys: impl IntoIterator<Item = String>,
    liveness: &Liveness,
    lost_after: Duration,
) {
    for key in keys {
        let (ns, name) = key.split_once('/').unwrap_or(("", &key));
        if let Some(t) = tasks.get(&ObjectRef::new(name).within(ns)) {
            reconcile_task(client, &t, liveness, lost_after).await;
        }
    }
}

/// The field manager of this controller's writes of a Task's status.
const TASK_MANAGER: &str = "mosaic-liveness";

async fn reconcile_task(client: &Client, t: &Task, liveness: &Liveness, lost_after: Duration) {
    let now_ts = jiff::Timestamp::now();
    {
        let Some(st) = t.status.as_ref() else { return };
        let Some(agent) = st.agent.as_deref() else {
            return;
        };
        let is_live = liveness.is_live(agent);
        let since = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.last_transition_time.0)
            .unwrap_or(now_ts);
        let gen_ = t.metadata.generation;
        let update = match st.phase {
            Some(
                TaskPhase::Staging | TaskPhase::Starting | TaskPhase::Running | TaskPhase::Killing,
            ) if !is_live => {
                let msg = format!("agent {agent} stopped heartbeating");
                Some(lifecycle::unreachable(&msg, gen_, now_ts))
            }
            Some(TaskPhase::Unreachable) if is_live => {
                let msg = format!("agent {agent} heartbeats again");
                Some(lifecycle::returned(&msg, gen_, now_ts))
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
                Some(lifecycle::lost(&msg, restarts, gen_, now_ts))
            }
            _ => None,
        };
        if let Some(status) = update {
            let api: Api<Task> =
                Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
            // Applied as the liveness controller's own fields (the agent's and
            // the binder's conditions stay), guarded by the resourceVersion read.
            let body = StatusApply::with::<Task>(Guard::read(t), &status.set);
            match api
                .patch_status(
                    &t.name_any(),
                    &PatchParams::apply(TASK_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                Ok(_) => {
                    let phase = status.set.phase.unwrap_or_default();
                    tracing::info!(task = %t.name_any(), agent, ?phase, "agent liveness changed the task");
                    let reason = status.set.reason.as_deref().unwrap_or("AgentLiveness");
                    let message = status.set.message.as_deref().unwrap_or("");
                    crate::events::record(client, t, "Warning", reason, message).await;
                }
                Err(e) => {
                    if !crate::refused::report(client, t, "status", &e).await {
                        tracing::debug!(task = %t.name_any(), error = %e, "liveness update not written (will retry)")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(renewed: jiff::Timestamp, seconds: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(seconds),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_agent_goes_down_when_its_lease_runs_out_and_comes_back_when_renewed() {
        let mut l = Liveness::default();
        assert!(l.is_live("a"), "an agent with no Lease yet counts as live");
        let now = jiff::Timestamp::now();
        assert!(
            !l.lease("a", Some(&lease(now, 1))),
            "renewed just now: no flip"
        );
        assert!(l.lease(
            "b",
            Some(&lease(now - jiff::SignedDuration::from_secs(30), 20))
        ));
        assert!(!l.is_live("b"), "renewed 30 s ago for 20 s");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let expired = loop {
            let e = l.expired();
            if !e.is_empty() || std::time::Instant::now() > deadline {
                break e;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert_eq!(expired, vec!["a".to_string()], "a's 1 s lease ran out");
        assert!(!l.is_live("a"));
        assert!(
            l.lease("a", Some(&lease(jiff::Timestamp::now(), 20))),
            "renewed: back"
        );
        assert!(l.is_live("a"));
        assert!(l.expired().is_empty(), "the old expiry is stale");
        assert!(l.agent_gone("a"));
        assert!(
            !l.is_live("a"),
            "a deleted agent's tasks are on no live agent"
        );
        let mut down = l.down();
        down.sort();
        assert_eq!(down, vec!["a".to_string(), "b".to_string()]);
    }
}
