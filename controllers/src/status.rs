//! Status for Roles, Frameworks and Agents, written after each cycle from
//! what the allocator holds: allocated resources and dominant shares, task
//! counts by phase, outstanding offers, and a Ready condition, so `kubectl
//! get`, `mosaic top` and kstatus-based tools see the same numbers the
//! allocator uses. A status is written only when it changed.

use crate::allocator::{Allocator, Resources};
use crate::scheduler::now;
use crate::view::Caches;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Agent, Framework, ResourceQuantities, Role};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

fn quantities(r: Resources) -> Value {
    serde_json::to_value(ResourceQuantities::from_units(r.cpus_milli, r.memory)).unwrap_or_default()
}

fn share(x: f64) -> String {
    format!("{x:.4}")
}

/// The Ready condition, keeping the old transition time when nothing changed.
fn ready(
    old: Option<&mosaic_crds::Condition>,
    generation: Option<i64>,
    reason: &str,
    message: &str,
) -> Value {
    let since = old
        .filter(|c| c.status == "True" && c.reason == reason)
        .map(|c| serde_json::to_value(&c.last_transition_time).unwrap_or_default())
        .unwrap_or_else(|| json!(now()));
    json!({"type": "Ready", "status": "True", "reason": reason, "message": message,
           "lastTransitionTime": since, "observedGeneration": generation})
}

/// How many status writes are in flight at once.
const CONCURRENT_WRITES: usize = 32;

/// A status write, not yet sent.
type Write = futures::future::BoxFuture<'static, ()>;

/// The write of `status` onto the object, when it differs from what is there now.
fn write<K>(client: &Client, api: Api<K>, obj: &K, current: Value, status: Value) -> Option<Write>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    if current == status {
        return None;
    }
    let name = obj.name_any();
    let (client, obj) = (client.clone(), obj.clone());
    Some(Box::pin(async move {
        let body = json!({"status": status});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            && !crate::refused::report(&client, &obj, "status", &e).await
        {
            tracing::debug!(object = %name, error = %e, "status not written (will retry)");
        }
    }))
}

/// Only the fields this module writes, from an object's current status.
fn pick(status: &Value, fields: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for f in fields {
        if let Some(v) = status.get(*f).filter(|v| !v.is_null()) {
            out.insert((*f).to_string(), v.clone());
        }
    }
    Value::Object(out)
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
        let status = json!({
            "allocated": quantities(alloc.role_allocated(&name)),
            "dominantShare": share(alloc.role_share(&name)),
            "observedGeneration": r.metadata.generation,
            "conditions": [ready(st.conditions.iter().find(|c| c.type_ == "Ready"), r.metadata.generation,
                                 "Active", "the role is known to the allocator")],
        });
        let current = pick(
            &serde_json::to_value(&st).unwrap_or_default(),
            &[
                "allocated",
                "dominantShare",
                "observedGeneration",
                "conditions",
            ],
        );
        writes.extend(write(
            client,
            Api::<Role>::all(client.clone()),
            &r,
            current,
            status,
        ));
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
        let st = f.status.clone().unwrap_or_default();
        let status = json!({
            "tasks": counts.get(&key).cloned().unwrap_or_default(),
            "allocated": quantities(alloc.framework_allocated(&key)),
            "dominantShare": share(alloc.framework_share(&key)),
            "outstandingOffers": outstanding.get(&key).copied().unwrap_or(0),
            "observedGeneration": f.metadata.generation,
            "conditions": [ready(st.conditions.iter().find(|c| c.type_ == "Ready"), f.metadata.generation,
                                 "Registered", &format!("the framework receives resources in role {}", f.spec.role))],
        });
        let current = pick(
            &serde_json::to_value(&st).unwrap_or_default(),
            &[
                "tasks",
                "allocated",
                "dominantShare",
                "outstandingOffers",
                "observedGeneration",
                "conditions",
            ],
        );
        let mut status = status;
        if current.get("tasks") == status.get("tasks")
            || current.get("tasks").is_none() && status["tasks"] == json!({})
        {
            // Unchanged counts (an empty map is stored as none).
            status["tasks"] = current.get("tasks").cloned().unwrap_or(Value::Null);
            if status["tasks"].is_null() {
                status.as_object_mut().expect("an object").remove("tasks");
            }
        } else if let Some(old) = current.get("tasks").and_then(|t| t.as_object()) {
            // A merge patch keeps keys it does not name: phases no task is in any more go as null.
            for k in old.keys() {
                if status["tasks"].get(k).is_none() {
                    status["tasks"][k] = Value::Null;
                }
            }
        }
        writes.extend(write(
            client,
            Api::<Framework>::namespaced(client.clone(), &ns),
            &f,
            current,
            status,
        ));
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
        let current = a
            .status
            .as_ref()
            .and_then(|s| s.allocated.as_ref())
            .map(|q| serde_json::to_value(q).unwrap_or_default())
            .unwrap_or(Value::Null);
        let current = json!({"allocated": current});
        let status = json!({"allocated": allocated});
        if let Some(w) = write(
            client,
            Api::<Agent>::all(client.clone()),
            &*a,
            current,
            status,
        ) {
            writes.push(w);
            agent_writes += 1;
        }
    }
    writes
}
