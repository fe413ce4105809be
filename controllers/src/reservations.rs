//! Reservations through the API: each cycle, the Reservations already Bound
//! are set aside in the allocator before anything is placed, and the others
//! are bound to an agent (`spec.agent`, or the first agent matching
//! `spec.agentSelector`) whose unreserved free resources hold them, or marked
//! Unsatisfiable with the reason. Reserved resources then go only to
//! frameworks of that role (or its descendants). Deleting a Reservation frees
//! its resources at the next cycle.

use crate::allocator::{Allocator, Resources, RoleSpec};
use kube::api::{Api, Patch};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use mosaic_crds::lifecycle;
use mosaic_crds::reservation::{ReservationPhase, ReservationStatusPatch};
use mosaic_crds::status_apply::GuardedStatus;
use mosaic_crds::{Agent, Reservation};
use std::sync::Arc;

fn amount(r: &Reservation) -> Resources {
    Resources::new(
        r.spec.resources.cpus_milli().ok().flatten().unwrap_or(0),
        r.spec.resources.memory_bytes().ok().flatten().unwrap_or(0),
    )
}

fn ensure_role(alloc: &mut Allocator, role: &str) {
    if !alloc.has_role(role) {
        alloc.set_role(RoleSpec::new(role));
    }
}

/// Whether the reservation's status describes its current spec on an agent.
fn bound_to(r: &Reservation) -> Option<&str> {
    let st = r.status.as_ref()?;
    (st.phase == Some(ReservationPhase::Bound) && st.observed_generation == r.metadata.generation)
        .then_some(())?;
    st.agent.as_deref()
}

/// Sets aside the Bound reservations; returns the ones to (re)bind.
pub fn reserve_bound(
    alloc: &mut Allocator,
    reservations: &Store<Reservation>,
) -> Vec<Arc<Reservation>> {
    let mut unbound = Vec::new();
    let mut all = reservations.state();
    all.sort_by_key(|r| r.name_any());
    for r in all {
        if r.metadata.deletion_timestamp.is_some() {
            continue;
        }
        ensure_role(alloc, &r.spec.role);
        match bound_to(&r) {
            Some(agent) if alloc.reserve(&r.spec.role, agent, amount(&r)).is_ok() => {}
            _ => unbound.push(r),
        }
    }
    unbound
}

/// Binds each reservation to an agent that can hold it, or says why none can.
/// Returns those still not bound (tried again next cycle).
pub async fn bind_pending(
    client: &Client,
    alloc: &mut Allocator,
    agents: &Store<Agent>,
    unbound: Vec<Arc<Reservation>>,
) -> Vec<Arc<Reservation>> {
    if unbound.is_empty() {
        return unbound;
    }
    let mut left = Vec::new();
    let mut agents = agents.state();
    agents.sort_by_key(|a| a.name_any());
    for r in unbound {
        let candidates: Vec<&Arc<Agent>> = agents
            .iter()
            .filter(|a| match (&r.spec.agent, &r.spec.agent_selector) {
                (Some(name), _) => a.name_any() == *name,
                (None, Some(sel)) => sel
                    .match_labels
                    .as_ref()
                    .is_none_or(|m| m.iter().all(|(k, v)| a.labels().get(k) == Some(v))),
                (None, None) => true,
            })
            .collect();
        let mut last_err = None;
        let mut chosen = None;
        for a in &candidates {
            match alloc.reserve(&r.spec.role, &a.name_any(), amount(&r)) {
                Ok(()) => {
                    chosen = Some(a.name_any());
                    break;
                }
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        let generation = r.metadata.generation;
        let status = match &chosen {
            Some(agent) => {
                tracing::info!(reservation = %r.name_any(), agent, "reservation bound");
                let message = format!(
                    "{} reserved for role {} on agent {agent}",
                    describe(&r),
                    r.spec.role
                );
                ReservationStatusPatch::bound(agent, &message, generation, lifecycle::now())
            }
            None => {
                let why = match (&last_err, candidates.is_empty()) {
                    (_, true) => {
                        "no agent matches the reservation's agent or agentSelector".to_string()
                    }
                    (Some(e), _) => format!("no matching agent has room: {e}"),
                    (None, _) => "no matching agent has room".to_string(),
                };
                let st = r.status.as_ref();
                if st.and_then(|s| s.phase) == Some(ReservationPhase::Unsatisfiable)
                    && st.and_then(|s| s.observed_generation) == generation
                    && st.is_some_and(|s| s.conditions.iter().any(|c| c.message == why))
                {
                    left.push(r.clone());
                    continue; // Already says so.
                }
                left.push(r.clone());
                ReservationStatusPatch::unsatisfiable(&why, generation, lifecycle::now())
            }
        };
        let api: Api<Reservation> = Api::all(client.clone());
        let body = GuardedStatus::of(&*r, &status);
        if let Err(e) = api
            .patch_status(
                &r.name_any(),
                &crate::task_writes::patch_params(),
                &Patch::Merge(&body),
            )
            .await
            && !crate::refused::report(client, &*r, "status", &e).await
        {
            tracing::debug!(reservation = %r.name_any(), error = %e, "reservation status not written (will retry)");
        }
    }
    left
}

fn describe(r: &Reservation) -> String {
    let q = &r.spec.resources;
    let cpus = q.cpus.as_ref().map(|c| format!("cpus {}", c.0));
    let mem = q.memory.as_ref().map(|m| format!("memory {}", m.0));
    [cpus, mem]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}
