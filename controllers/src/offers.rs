//! Offers to External frameworks, declaratively: Mesos's two-level
//! scheduling with Offer objects.
//!
//! Each cycle the allocator offers free resources to External frameworks; an
//! offer becomes an Offer object in the framework's namespace (`spec.framework`,
//! `spec.agent`, `spec.resources`, `spec.expiresAt`) and its resources are held
//! while it is outstanding. The framework accepts by creating Tasks with
//! `spec.offer: <name>` whose resources fit inside it, all together (as one
//! Mesos ACCEPT call carries all its tasks): the tasks a cycle sees are bound
//! to the offer's agent, the Offer is deleted and what they did not use
//! returns to the pool; a task naming a used offer gets phase Error. It declines by deleting the Offer: that agent is then not offered
//! to it for its `refuseSeconds`. An offer unanswered for `offerTimeoutSeconds`,
//! or whose agent stopped being schedulable, or whose framework went away or is
//! suppressed, is rescinded (deleted by the controller).
//!
//! Offers are recomputed, so they need not survive a restart: the state kept
//! here across cycles is only which deletions were the controller's own (so
//! they are not taken for declines) and the refusals under way.

use crate::allocator::{Allocation, Allocator, Resources};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use mosaic_crds::agent::AgentResources;
use mosaic_crds::framework::SchedulerKind;
use mosaic_crds::lifecycle;
use mosaic_crds::offer::OfferSpec;
use mosaic_crds::ports::{PortRanges, PortSpec};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Framework, Offer, Task};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// What is remembered between cycles.
pub struct OfferState {
    /// Offers the watch saw deleted since the last cycle.
    deleted: tokio::sync::mpsc::UnboundedReceiver<Offer>,
    /// Offers this controller deleted (accepted or rescinded), until their deletion is seen.
    ours: HashSet<String>,
    /// Offers made and not yet seen gone: key -> (framework key, agent, seen in the store).
    outstanding: HashMap<String, (String, String, bool)>,
    /// Refusals: (framework key, agent) -> until (ms since the epoch).
    refused: HashMap<(String, String), u64>,
    /// How accepted tasks are bound.
    binding: crate::binding::Path,
}

impl OfferState {
    /// Fed with the Offer deletions the watch sees.
    pub fn new(
        deleted: tokio::sync::mpsc::UnboundedReceiver<Offer>,
        binding: crate::binding::Path,
    ) -> Self {
        Self {
            deleted,
            binding,
            ours: HashSet::new(),
            outstanding: HashMap::new(),
            refused: HashMap::new(),
        }
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    jiff::Timestamp::now().as_millisecond().max(0) as u64
}

fn key(o: &Offer) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

fn fw_key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn amount(q: &mosaic_crds::ResourceQuantities) -> Resources {
    Resources::new(
        q.cpus_milli().ok().flatten().unwrap_or(0),
        q.memory_bytes().ok().flatten().unwrap_or(0),
    )
}

/// The External frameworks that may hold offers, by key, with their specs.
fn external(frameworks: &Store<Framework>) -> HashMap<String, Arc<Framework>> {
    frameworks
        .state()
        .into_iter()
        .filter(|f| {
            f.spec.scheduler == SchedulerKind::External && f.metadata.deletion_timestamp.is_none()
        })
        .map(|f| (fw_key(&f.namespace().unwrap_or_default(), &f.name_any()), f))
        .collect()
}

/// The cycle's work on offers before allocation: notes declines, binds the
/// tasks that accept offers, rescinds what must go, holds the rest in the
/// allocator (adding what it holds to `held`, to be returned before the next
/// cycle holds them again) and applies the refusals. `tasks` are those that
/// name an offer. (The caller submits no task that names an offer or belongs
/// to an External framework.)
#[allow(clippy::too_many_arguments)]
pub async fn before_allocation(
    client: &Client,
    alloc: &mut Allocator,
    held: &mut Vec<Allocation>,
    state: &mut OfferState,
    offers: &Store<Offer>,
    frameworks: &Store<Framework>,
    tasks: &[Arc<Task>],
    schedulable: &HashMap<String, bool>,
    now: u64,
) {
    let externals = external(frameworks);
    let current: HashMap<String, Arc<Offer>> =
        offers.state().into_iter().map(|o| (key(&o), o)).collect();
    // An offer that goes without this controller deleting it was declined.
    // The watch's deletion events and the store can each be first to show it.
    let mut gone = Vec::new();
    while let Ok(o) = state.deleted.try_recv() {
        let k = key(&o);
        if state.outstanding.remove(&k).is_some() {
            gone.push((
                k,
                fw_key(&o.namespace().unwrap_or_default(), &o.spec.framework),
                o.spec.agent.clone(),
            ));
        } else {
            state.ours.remove(&k);
        }
    }
    let mut vanished = Vec::new();
    for (k, (fw, agent, seen)) in state.outstanding.iter_mut() {
        if current.contains_key(k) {
            *seen = true;
        } else if *seen {
            vanished.push((k.clone(), fw.clone(), agent.clone()));
        }
    }
    for (k, fw, agent) in vanished {
        state.outstanding.remove(&k);
        gone.push((k, fw, agent));
    }
    for (k, fw, agent) in gone {
        if state.ours.remove(&k) {
            continue;
        }
        let refuse = externals.get(&fw).map_or(5, |f| f.spec.refuse_seconds) as u64 * 1000;
        tracing::info!(offer = %k, framework = %fw, agent, "offer declined");
        crate::metrics::METRICS.offers_declined.inc();
        state.refused.insert((fw, agent), now + refuse);
    }
    state.refused.retain(|_, until| *until > now);

    // Accepts: pending tasks naming an offer.
    let mut by_offer: HashMap<String, Vec<Arc<Task>>> = HashMap::new();
    for t in tasks {
        let st = t.status.as_ref();
        let pending = st.and_then(|s| s.agent.as_ref()).is_none()
            && matches!(st.and_then(|s| s.phase), None | Some(TaskPhase::Pending));
        if let Some(offer) = &t.spec.offer
            && pending
            && t.metadata.deletion_timestamp.is_none()
        {
            let ns = t.namespace().unwrap_or_default();
            by_offer
                .entry(format!("{ns}/{offer}"))
                .or_default()
                .push(t.clone());
        }
    }
    let mut consumed = HashSet::new();
    for (k, mut accepting) in by_offer {
        accepting.sort_by_key(|t| t.name_any());
        let Some(o) = current.get(&k).filter(|_| !state.ours.contains(&k)) else {
            if state.outstanding.get(&k).is_some_and(|o| !o.2) {
                continue; // Made this cycle or the last; the store will show it.
            }
            for t in accepting {
                invalid(
                    client,
                    &t,
                    &format!(
                        "offer {} does not exist: declined, rescinded, or already used (create all the tasks for one offer together)",
                        t.spec.offer.clone().unwrap_or_default()
                    ),
                )
                .await;
            }
            continue;
        };
        let ns = o.namespace().unwrap_or_default();
        let fw = fw_key(&ns, &o.spec.framework);
        let mut room = amount(&o.spec.resources.quantities());
        let mut ports = offered_ports(o);
        for t in accepting {
            let need = amount(&t.spec.resources);
            if t.spec.framework != o.spec.framework {
                invalid(
                    client,
                    &t,
                    &format!(
                        "offer {} was made to framework {}, not {}",
                        o.name_any(),
                        o.spec.framework,
                        t.spec.framework
                    ),
                )
                .await;
            } else if !need.fits_in(&room) {
                invalid(
                    client,
                    &t,
                    &format!(
                        "the task needs {need} but offer {} has {room} left",
                        o.name_any()
                    ),
                )
                .await;
            } else {
                match take_ports(&t.spec.ports, &mut ports) {
                    Err(why) => {
                        invalid(client, &t, &format!("offer {}: {why}", o.name_any())).await
                    }
                    Ok(given) => {
                        room = room.saturating_sub(&need);
                        held.extend(alloc.assign(&fw, &o.spec.agent, need, None, &given));
                        let named = mosaic_crds::ports::named(&t.spec.ports, &given);
                        crate::binding::bind_to(client, state.binding, &t, &o.spec.agent, named)
                            .await;
                    }
                }
            }
        }
        consumed.insert(k.clone());
        delete(client, o, state).await;
        tracing::info!(offer = %k, "offer accepted; the rest returns to the pool");
    }

    // Hold the outstanding offers; rescind what must go.
    let now_ts = jiff::Timestamp::now();
    for (k, o) in &current {
        if consumed.contains(k) || state.ours.contains(k) {
            continue;
        }
        let fw = fw_key(&o.namespace().unwrap_or_default(), &o.spec.framework);
        let expired = o
            .spec
            .expires_at
            .as_deref()
            .and_then(|e| e.parse::<jiff::Timestamp>().ok())
            .is_some_and(|e| e <= now_ts);
        let framework_ok = externals.get(&fw).is_some_and(|f| !f.spec.suppressed);
        let agent_ok = schedulable.get(&o.spec.agent).copied().unwrap_or(false);
        if expired || !framework_ok || !agent_ok {
            let why = if expired {
                "it was not answered in time"
            } else if !framework_ok {
                "its framework is gone or suppressed"
            } else {
                "its agent is not schedulable"
            };
            tracing::info!(offer = %k, "rescinding the offer: {why}");
            crate::metrics::METRICS.offers_rescinded.inc();
            crate::events::record(
                client,
                o.as_ref(),
                "Normal",
                "Rescinded",
                &format!("offer rescinded: {why}"),
            )
            .await;
            delete(client, o, state).await;
            continue;
        }
        let ports: Vec<u16> = offered_ports(o).into_iter().collect();
        held.extend(alloc.assign(
            &fw,
            &o.spec.agent,
            amount(&o.spec.resources.quantities()),
            None,
            &ports,
        ));
    }
    for ((fw, agent), until) in &state.refused {
        alloc.decline(fw, agent, now, until.saturating_sub(now));
    }
}

/// Makes an Offer object for an allocation the cycle offered.
pub async fn create(
    client: &Client,
    state: &mut OfferState,
    frameworks: &Store<Framework>,
    allocation: &crate::allocator::Allocation,
) {
    let Some((ns, name)) = allocation.framework.split_once('/') else {
        return;
    };
    let fw = frameworks
        .state()
        .into_iter()
        .find(|f| f.namespace().as_deref() == Some(ns) && f.name_any() == name);
    let timeout = fw.and_then(|f| f.spec.offer_timeout_seconds);
    let total = allocation.total();
    let expires = timeout.and_then(|s| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(s.into()))
            .ok()
    });
    let ports = PortRanges::new(allocation.ports.iter().map(|p| (*p, *p)));
    let resources = AgentResources {
        ports: (!ports.is_empty()).then(|| ports.to_string()),
        ..AgentResources::new(
            mosaic_crds::ResourceQuantities::from_units(total.cpus_milli, total.memory),
            &ports,
        )
    };
    let offer = Offer {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-{}-", allocation.agent)),
            ..Default::default()
        },
        spec: OfferSpec {
            framework: name.to_string(),
            agent: allocation.agent.clone(),
            resources,
            expires_at: expires.map(|e| e.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        },
        status: None,
    };
    match Api::<Offer>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &offer)
        .await
    {
        Ok(o) => {
            tracing::info!(offer = %o.name_any(), framework = name, agent = %allocation.agent, "offered");
            crate::metrics::METRICS.offers_made.inc();
            state.outstanding.insert(
                key(&o),
                (
                    allocation.framework.clone(),
                    allocation.agent.clone(),
                    false,
                ),
            );
        }
        Err(e) => tracing::warn!(framework = name, error = %e, "creating an offer"),
    }
}

/// The host ports an offer carries.
fn offered_ports(o: &Offer) -> BTreeSet<u16> {
    o.spec
        .resources
        .port_ranges()
        .ranges()
        .iter()
        .flat_map(|&(b, e)| b..=e)
        .collect()
}

/// Gives a task launched on an offer its `spec.ports` from the offer's
/// ports left (`left`, which lose them): each fixed port as asked, each other
/// the lowest left. Why not, when they are not all there (`left` unchanged).
fn take_ports(asked: &[PortSpec], left: &mut BTreeSet<u16>) -> Result<Vec<u16>, String> {
    let wanted = mosaic_crds::ports::request(asked);
    let mut free = left.clone();
    for &p in wanted.iter().filter(|p| **p != 0) {
        if !free.remove(&p) {
            return Err(format!(
                "host port {p} is not among the ports it has left ({})",
                PortRanges::new(left.iter().map(|p| (*p, *p)))
            ));
        }
    }
    let mut given = Vec::with_capacity(wanted.len());
    for &p in &wanted {
        if p != 0 {
            given.push(p);
        } else if let Some(any) = free.pop_first() {
            given.push(any);
        } else {
            return Err(format!(
                "the task asks for {} host ports and the offer has {} left",
                wanted.len(),
                left.len()
            ));
        }
    }
    for p in &given {
        left.remove(p);
    }
    Ok(given)
}

async fn delete(client: &Client, o: &Offer, state: &mut OfferState) {
    state.ours.insert(key(o));
    let api: Api<Offer> = Api::namespaced(client.clone(), &o.namespace().unwrap_or_default());
    if let Err(e) = api.delete(&o.name_any(), &DeleteParams::default()).await {
        tracing::debug!(offer = %o.name_any(), error = %e, "deleting an offer");
    }
}

/// A task that names an offer it cannot have: phase Error.
pub(crate) async fn invalid(client: &Client, t: &Task, why: &str) {
    let message = format!("cannot launch on the offer: {why}");
    let status = lifecycle::invalid_offer(&message, t.metadata.generation, lifecycle::now());
    crate::scheduler::patch_status(client, t, &status).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, fixed: Option<u16>) -> PortSpec {
        PortSpec {
            name: name.into(),
            host_port: fixed,
        }
    }

    #[test]
    fn a_task_on_an_offer_gets_fixed_ports_as_asked_and_the_lowest_others() {
        let mut left: BTreeSet<u16> = [100, 101, 102, 103].into();
        let got = take_ports(&[port("a", None), port("b", Some(100))], &mut left).unwrap();
        assert_eq!(got, vec![101, 100]);
        assert_eq!(left, [102, 103].into());
        let err = take_ports(&[port("c", Some(101))], &mut left).unwrap_err();
        assert!(err.contains("host port 101 is not among"), "{err}");
        let err = take_ports(
            &[port("c", None), port("d", None), port("e", None)],
            &mut left,
        )
        .unwrap_err();
        assert!(
            err.contains("asks for 3 host ports and the offer has 2 left"),
            "{err}"
        );
        assert_eq!(left, [102, 103].into(), "nothing taken on a refusal");
        assert_eq!(take_ports(&[], &mut left).unwrap(), Vec::<u16>::new());
    }
}
