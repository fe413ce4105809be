//! Status for Roles, Frameworks and Agents, written after each cycle from
//! what the allocator holds: allocated resources and dominant shares, task
//! counts by phase, outstanding offers, and a Ready condition, so `kubectl
//! get`, `mosaic top` and kstatus-based tools see the same numbers the
//! allocator uses. A status is written only when it changed.

use crate::allocator::{Allocator, Resources};
use crate::view::Caches;
use futures::StreamExt;
use kube::api::{Api, Patch};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use mosaic_crds::agent::AgentStatus;
use mosaic_crds::common::condition_types::READY;
use mosaic_crds::framework::{FrameworkStatus, FrameworkStatusPatch};
use mosaic_crds::role::RoleStatus;
use mosaic_crds::status_apply::StatusMerge;
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Agent, Condition, Framework, ResourceQuantities, Role, conditions, lifecycle};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

fn quantities(r: Resources) -> Option<ResourceQuantities> {
    Some(ResourceQuantities::from_units(r.cpus_milli, r.memory))
}

fn share(x: f64) -> Option<String> {
    Some(format!("{x:.4}"))
}

/// The Ready condition, keeping the old transition time when nothing changed.
fn ready(old: &[Condition], generation: Option<i64>, reason: &str, message: &str) -> Condition {
    let mut c = conditions::new(READY, true, reason, message, generation, lifecycle::now());
    if let Some(o) = old
        .iter()
        .find(|c| c.type_ == READY && c.status == "True" && c.reason == reason)
    {
        c.last_transition_time = o.last_transition_time.clone();
    }
    c
}

/// How many status writes are in flight at once.
const CONCURRENT_WRITES: usize = 32;

/// A status write, not yet sent.
type Write = futures::future::BoxFuture<'static, ()>;

/// The write of `status` (a merge patch of it) onto the object.
fn write<K, S>(client: &Client, api: Api<K>, obj: &K, status: S) -> Write
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    S: Serialize + std::fmt::Debug + Send + Sync + 'static,
{
    let name = obj.name_any();
    let (client, obj) = (client.clone(), obj.clone());
    Box::pin(async move {
        let body = StatusMerge { status: &status };
        if let Err(e) = api
            .patch_status(
                &name,
                &crate::task_writes::patch_params(),
                &Patch::Merge(&body),
            )
            .await
            && !crate::refused::report(&client, &obj, "status", &e).await
        {
            tracing::debug!(object = %name, error = %e, "status not written (will retry)");
        }
    })
}

/// Status is written at most this often...
const EVERY: Duration = Duration::from_secs(1);
/// ...and at most this many Agents' `status.allocated` in one round, taking
/// the agents in turn: on a small cluster each is exact within a second; on
/// a large one under load, status costs at most this many writes a second
/// however many agents there are (each is exact within agents / this seconds).
const AGENT_WRITES_PER_ROUND: usize = 100;

/// Writes status in the background, a round at a time: a round is started
/// only when the last one is done and [`EVERY`] has passed, so under load the
/// bindings go first and status trails by a round.
#[derive(Default)]
pub struct StatusWriter {
    /// When the last round started (none yet: the first is due at once).
    last: Option<Instant>,
    /// The allocator's index of the agent the next round starts at.
    agent_cursor: usize,
    round: Option<tokio::task::JoinHandle<()>>,
}

/// Whether `every` has passed since `last` (or there was none).
fn due(last: Option<Instant>, every: Duration) -> bool {
    last.is_none_or(|l| l.elapsed() >= every)
}

impl Drop for StatusWriter {
    fn drop(&mut self) {
        if let Some(r) = &self.round {
            r.abort();
        }
    }
}

impl StatusWriter {
    /// Starts a round of writes when one is due.
    pub fn maybe_start(&mut self, client: &Client, alloc: &Allocator, objects: &Caches<'_>) {
        if !due(self.last, EVERY) || self.round.as_ref().is_some_and(|r| !r.is_finished()) {
            return;
        }
        self.last = Some(Instant::now());
        let writes = writes(client, alloc, objects, &mut self.agent_cursor);
        self.round = Some(tokio::spawn(async move {
            futures::stream::iter(writes)
                .buffer_unordered(CONCURRENT_WRITES)
                .collect::<Vec<()>>()
                .await;
        }));
    }
}

/// The writes of every Role and Framework status that changed, and of the
/// next Agents' (from `cursor`, up to [`AGENT_WRITES_PER_ROUND`]).
fn writes(
    client: &Client,
    alloc: &Allocator,
    objects: &Caches<'_>,
    cursor: &mut usize,
) -> Vec<Write> {
    let Caches {
        roles,
        frameworks,
        agents: agent_store,
        tasks,
        offers,
        ..
    } = *objects;
    let mut writes: Vec<Write> = Vec::new();
    for r in roles.state() {
        let name = r.name_any();
        let st = r.status.clone().unwrap_or_default();
        let generation = r.metadata.generation;
        let want = RoleStatus {
            allocated: quantities(alloc.role_allocated(&name)),
            dominant_share: share(alloc.role_share(&name)),
            observed_generation: generation,
            conditions: vec![ready(
                &st.conditions,
                generation,
                "Active",
                "the role is known to the allocator",
            )],
        };
        if want != st {
            writes.push(write(client, Api::<Role>::all(client.clone()), &r, want));
        }
    }
    // Counted without an allocation per task (this runs every round over every Task).
    let all_tasks = tasks.state();
    let mut by_phase: HashMap<(&str, &str, TaskPhase), u32> = HashMap::new();
    for t in &all_tasks {
        let phase = t.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
        let ns = t.metadata.namespace.as_deref().unwrap_or_default();
        *by_phase.entry((ns, &t.spec.framework, phase)).or_default() += 1;
    }
    let mut counts: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
    for ((ns, framework, phase), n) in by_phase {
        counts
            .entry(format!("{ns}/{framework}"))
            .or_default()
            .insert(format!("{phase:?}"), n);
    }
    let mut outstanding: HashMap<String, u32> = HashMap::new();
    for o in offers.state() {
        *outstanding
            .entry(format!(
                "{}/{}",
                o.namespace().unwrap_or_default(),
                o.spec.framework
            ))
            .or_default() += 1;
    }
    for f in frameworks.state() {
        let ns = f.namespace().unwrap_or_default();
        let key = format!("{ns}/{}", f.name_any());
        let have = f.status.clone().unwrap_or_default();
        let generation = f.metadata.generation;
        let message = format!("the framework receives resources in role {}", f.spec.role);
        let want = FrameworkStatus {
            tasks: counts.get(&key).cloned().unwrap_or_default(),
            allocated: quantities(alloc.framework_allocated(&key)),
            dominant_share: share(alloc.framework_share(&key)),
            outstanding_offers: Some(outstanding.get(&key).copied().unwrap_or(0)),
            observed_generation: generation,
            conditions: vec![ready(&have.conditions, generation, "Registered", &message)],
        };
        if want != have {
            let patch = FrameworkStatusPatch::between(&have, want);
            let api = Api::<Framework>::namespaced(client.clone(), &ns);
            writes.push(write(client, api, &f, patch));
        }
    }
    let n = alloc.agent_count();
    let mut agent_writes = 0;
    for step in 0..n {
        if agent_writes == AGENT_WRITES_PER_ROUND {
            *cursor = (*cursor + step) % n;
            return writes;
        }
        let (name, used) = alloc.agent_used((*cursor + step) % n);
        let Some(a) = agent_store.get(&ObjectRef::new(name)) else {
            continue;
        };
        let allocated = quantities(used);
        if a.status.as_ref().and_then(|s| s.allocated.as_ref()) != allocated.as_ref() {
            let status = AgentStatus {
                allocated,
                ..AgentStatus::default()
            };
            writes.push(write(
                client,
                Api::<Agent>::all(client.clone()),
                &*a,
                status,
            ));
            agent_writes += 1;
        }
    }
    writes
}
