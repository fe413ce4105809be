//! Offers to External frameworks, declaratively: Mesos's two-level
//! scheduling with Offer objects.
//!
//! Each cycle the allocator offers free resources to External frameworks; an
//! offer becomes an Offer object in the framework's namespace (`spec.framework`,
//! `spec.agent`, `spec.resources` with the agent's free host ports,
//! `spec.expiresAt`) and its resources and ports are held while it is
//! outstanding. The framework accepts by creating Tasks with
//! `spec.offer: <name>` whose resources fit inside it, all together (as one
//! Mesos ACCEPT call carries all its tasks): the tasks a cycle sees are bound
//! to the offer's agent, the Offer is deleted and what they did not use
//! returns to the pool; a task naming a used offer gets phase Error. It declines by deleting the Offer: that agent is then not offered
//! to it for its `refuseSeconds`. An offer unanswered for `offerTimeoutSeconds`,
//! or whose agent stopped being schedulable, or whose framework went away or is
//! suppressed, is rescinded (deleted by the controller).
//!
//! Offers are recomputed, so they need not survive a restart: the state kept
//! here across cycles is the record of the offers this controller made (what
//! each offered, and its uid: only these are held and accepted, by that
//! record, and any other Offer is rescinded, so after a restart the old ones
//! are rescinded and offered again), which deletions were the controller's
//! own (so they are not taken for declines) and the refusals under way.

use crate::allocator::{Allocation, Allocator};
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
    /// Offers made and not yet seen gone, by key.
    outstanding: HashMap<String, Made>,
    /// Refusals: (framework key, agent) -> until (ms since the epoch).
    refused: HashMap<(String, String), u64>,
    /// How accepted tasks are bound.
    binding: crate::binding::Path,
}

/// An offer this controller made, until it is seen gone. Only such an offer
/// is held and accepted, and by what was offered, never by what the object
/// says: an Offer made by anyone else (or made again under the name of one
/// that went) is rescinded.
struct Made {
    /// Its framework's key.
    framework: String,
    /// Its agent.
    agent: String,
    /// Whether the store has shown it.
    seen: bool,
    /// When it was made (one the store never shows is let go after [`UNSEEN_FOR`]).
    made_at: std::time::Instant,
    /// The uid it was made with.
    uid: Option<String>,
    /// What it holds: the resources and host ports the allocator offered.
    allocation: Allocation,
    /// The allocation the allocator of the view of that generation holds
    /// for it, if any (a rebuilt view holds it again; it is let go when the
    /// offer goes, not every cycle).
    held: Option<(u64, Allocation)>,
}

/// How long an offer made but never shown by the store is held (the watch
/// may never show one deleted at once, when it lists again meanwhile).
const UNSEEN_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl Made {
    /// Lets go what the allocator of view `generation` holds for it.
    fn let_go(&mut self, alloc: &mut Allocator, generation: u64) {
        if let Some((g, a)) = self.held.take()
            && g == generation
        {
            alloc.release(&a, None);
        }
    }

    /// Holds what it offered in the allocator of view `generation`, unless held there already.
    fn hold(&mut self, alloc: &mut Allocator, generation: u64) {
        if self.held.as_ref().is_some_and(|(g, _)| *g == generation) {
            return;
        }
        let a = &self.allocation;
        self.held = alloc
            .assign(&self.framework, &self.agent, a.total(), None, &a.ports)
            .map(|held| (generation, held));
    }
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
/// allocator of view `generation` (once: an offer's hold lasts until it
/// goes, or until the view is built again) and applies the refusals. `tasks` are those that
/// name an offer. (The caller submits no task that names an offer or belongs
/// to an External framework.) Returns the tasks bound on offers, by key,
/// with what each holds: the caller counts them as placed (as the binder's
/// placements) until the store shows them bound.
#[allow(clippy::too_many_arguments)]
pub async fn before_allocation(
    client: &Client,
    alloc: &mut Allocator,
    generation: u64,
    state: &mut OfferState,
    offers: &Store<Offer>,
    frameworks: &Store<Framework>,
    tasks: &[Arc<Task>],
    schedulable: &HashMap<String, bool>,
    now: u64,
) -> Vec<(String, Allocation)> {
    let externals = external(frameworks);
    let current: HashMap<String, Arc<Offer>> =
        offers.state().into_iter().map(|o| (key(&o), o)).collect();
    // An offer that goes without this controller deleting it was declined.
    // The watch's deletion events and the store can each be first to show it.
    let mut gone = Vec::new();
    while let Ok(o) = state.deleted.try_recv() {
        let k = key(&o);
        let made = state
            .outstanding
            .get(&k)
            .is_some_and(|m| m.uid == o.metadata.uid);
        if let Some(mut m) = state.outstanding.remove(&k).filter(|_| made) {
            m.let_go(alloc, generation);
            gone.push((k, m.framework, m.agent));
        } else {
            state.ours.remove(&k);
        }
    }
    let mut vanished = Vec::new();
    for (k, m) in state.outstanding.iter_mut() {
        if current.contains_key(k) {
            m.seen = true;
        } else if m.seen {
            vanished.push((k.clone(), m.framework.clone(), m.agent.clone()));
        }
    }
    for (k, fw, agent) in vanished {
        if let Some(mut m) = state.outstanding.remove(&k) {
            m.let_go(alloc, generation);
        }
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
    let mut placed = Vec::new();
    for (k, mut accepting) in by_offer {
        accepting.sort_by_key(|t| t.name_any());
        let found = current.get(&k).filter(|_| !state.ours.contains(&k));
        let made = found.and_then(|o| {
            state
                .outstanding
                .get(&k)
                .filter(|m| m.uid.is_some() && m.uid == o.metadata.uid)
        });
        let (Some(o), Some(m)) = (found, made) else {
            if found.is_none() && state.outstanding.get(&k).is_some_and(|m| !m.seen) {
                continue; // Made this cycle or the last; the store will show it.
            }
            let offer = k.split_once('/').map_or(k.as_str(), |(_, n)| n);
            let why = if found.is_some() {
                format!("offer {offer} was not made by Mosaic's control plane")
            } else {
                format!(
                    "offer {offer} does not exist: declined, rescinded, or already used (create all the tasks for one offer together)"
                )
            };
            for t in accepting {
                invalid(client, &t, &why).await;
            }
            continue;
        };
        let (fw, agent) = (m.framework.clone(), m.agent.clone());
        let mut room = m.allocation.total();
        let mut ports: BTreeSet<u16> = m.allocation.ports.iter().copied().collect();
        // What the tasks take is held for them; the rest returns to the pool.
        if let Some(m) = state.outstanding.get_mut(&k) {
            m.let_go(alloc, generation);
        }
        for t in accepting {
            let need = crate::keys::task_resources(&t);
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
                        let Some(a) = alloc.assign(&fw, &agent, need, None, &given) else {
                            continue;
                        };
                        let named = mosaic_crds::ports::named(&t.spec.ports, &given);
                        let path = state.binding;
                        if crate::binding::bind_to(client, path, &t, &agent, named).await {
                            // Held as the binder's placements are, until the store shows it.
                            let task =
                                format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any());
                            placed.push((task, a));
                        } else {
                            alloc.release(&a, None);
                        }
                    }
                }
            }
        }
        consumed.insert(k.clone());
        delete(client, o, state).await;
        tracing::info!(offer = %k, "offer accepted; the rest returns to the pool");
    }

    // Hold the outstanding offers (by what was offered; those the store does
    // not show yet too); rescind what must go, and any Offer not made here.
    let now_ts = jiff::Timestamp::now();
    let mut rescind: Vec<(Arc<Offer>, &str)> = Vec::new();
    for (k, o) in &current {
        if consumed.contains(k) || state.ours.contains(k) {
            continue;
        }
        let Some(m) = state
            .outstanding
            .get_mut(k)
            .filter(|m| m.uid.is_some() && m.uid == o.metadata.uid)
        else {
            rescind.push((o.clone(), "it was not made by this control plane"));
            continue;
        };
        let expired = o
            .spec
            .expires_at
            .as_deref()
            .and_then(|e| e.parse::<jiff::Timestamp>().ok())
            .is_some_and(|e| e <= now_ts);
        let framework_ok = externals
            .get(&m.framework)
            .is_some_and(|f| !f.spec.suppressed);
        let agent_ok = schedulable.get(&m.agent).copied().unwrap_or(false);
        if expired {
            rescind.push((o.clone(), "it was not answered in time"));
        } else if !framework_ok {
            rescind.push((o.clone(), "its framework is gone or suppressed"));
        } else if !agent_ok {
            rescind.push((o.clone(), "its agent is not schedulable"));
        } else {
            m.hold(alloc, generation);
        }
    }
    let mut never_seen = Vec::new();
    for (k, m) in state.outstanding.iter_mut() {
        if !m.seen && !current.contains_key(k) {
            if m.made_at.elapsed() < UNSEEN_FOR {
                m.hold(alloc, generation);
            } else {
                m.let_go(alloc, generation);
                never_seen.push(k.clone());
            }
        }
    }
    for k in never_seen {
        tracing::info!(offer = %k, "an offer made was never seen in the store; letting it go");
        state.outstanding.remove(&k);
    }
    for (o, why) in rescind {
        let k = key(&o);
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
        if let Some(m) = state.outstanding.get_mut(&k) {
            m.let_go(alloc, generation);
        }
        delete(client, &o, state).await;
    }
    for ((fw, agent), until) in &state.refused {
        alloc.decline(fw, agent, now, until.saturating_sub(now));
    }
    placed
}

/// Makes an Offer object for an allocation the cycle offered (held in the
/// allocator of view `generation`); the allocation back when no Offer was
/// made, for the caller to let go.
pub async fn create(
    client: &Client,
    state: &mut OfferState,
    frameworks: &Store<Framework>,
    allocation: Allocation,
    generation: u64,
) -> Result<(), Allocation> {
    let Some((ns, name)) = allocation.framework.split_once('/') else {
        return Err(allocation);
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
                Made {
                    framework: allocation.framework.clone(),
                    agent: allocation.agent.clone(),
                    seen: false,
                    made_at: std::time::Instant::now(),
                    uid: o.metadata.uid.clone(),
                    held: Some((generation, allocation.clone())),
                    allocation,
                },
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(framework = name, error = %e, "creating an offer");
            Err(allocation)
        }
    }
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
    crate::task_writes::patch_status(client, t, &status).await;
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
