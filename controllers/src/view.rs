//! The scheduler's view of the cluster, kept across cycles: the allocator and
//! what each Task contributes to it (an allocation held on an agent, or a
//! place in its framework's queue).
//!
//! It is built whole from the watch caches when the scheduler starts, after a
//! watch relists, when Roles, Frameworks or Reservations change (rare), and
//! every [`REBUILD_EVERY`] as a resync (as informers resync); in between, a
//! cycle brings it up to date from the Tasks and Agents that changed (the
//! watches' deltas), so its cost follows what changed, not the cluster's size.

use crate::allocator::{
    AgentSpec, Allocation, Allocator, FrameworkKind, FrameworkSpec, Placement, Resources, RoleSpec,
    TaskRequest,
};
use crate::binder::Binder;
use crate::keys::{framework_key, quantities, task_resources};
use crate::task_writes::FINALIZER;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use mosaic_crds::framework::{Placement as FwPlacement, SchedulerKind};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Agent, Framework, Reservation, Role, Task};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the view is rebuilt from the caches even when nothing forces it.
pub const REBUILD_EVERY: Duration = Duration::from_secs(30);

/// How long a restart write is given before it is sent again.
const RESTART_RETRY: Duration = Duration::from_secs(5);

/// What a Task contributes to the allocator.
enum Entry {
    /// An allocation on an agent (bound, being bound, or being killed).
    Held {
        agent: String,
        resources: Resources,
        allocation: Allocation,
    },
    /// A place in its Builtin framework's queue.
    Queued { framework: String, req: TaskRequest },
}

/// What a Task should contribute, from what the store says of it.
#[derive(PartialEq)]
enum Want {
    Nothing,
    Hold {
        framework: String,
        agent: String,
        resources: Resources,
        /// The group its constraints count (see [`crate::constraints`]).
        group: Option<String>,
        /// The host ports it was given.
        ports: Vec<u16>,
    },
    Queue {
        framework: String,
        req: TaskRequest,
    },
}

/// What the view needs besides itself to look at a Task.
pub struct TaskCx<'a> {
    /// For the writes a Task's state calls for (release, restart).
    pub client: &'a Client,
    /// Placements under way, and where those writes go.
    pub binder: &'a mut Binder,
    /// Namespaces whose default framework is to be made.
    pub missing_defaults: &'a mut BTreeSet<String>,
}

/// The scheduler's persistent view. See the module docs.
pub struct View {
    /// The allocator, up to date with the caches.
    pub alloc: Allocator,
    entries: HashMap<String, Entry>,
    /// Agent -> the tasks holding resources on it.
    by_agent: HashMap<String, HashSet<String>>,
    /// Framework keys known (declared, or a default being made).
    known: HashSet<String>,
    /// External framework keys.
    externals: HashSet<String>,
    /// Whether each agent may get new work, by name.
    pub schedulable: HashMap<String, bool>,
    /// Which build of the view this is: its allocator holds what was
    /// assigned to it since, so an offer held in an earlier build is held again.
    pub generation: u64,
    /// Ended tasks whose restart policy runs them again: when a restart was last written.
    restarting: HashMap<String, Option<Instant>>,
    /// Tasks queued.
    queued: usize,
    /// Tasks that accept an offer (name it and wait to be bound).
    accepting: HashSet<String>,
    /// Reservations not yet bound to an agent (bound each cycle if they can be).
    pub unbound: Vec<Arc<Reservation>>,
    /// What Roles, Frameworks and Reservations looked like when it was built.
    shape: Shape,
    /// When it was built.
    pub built: Instant,
}

/// What, of Roles, Frameworks and Reservations, forces a rebuild when it
/// changes: their specs (by generation), deletion marks and, for
/// Reservations, any change (their status says where they are bound).
#[derive(Default)]
pub struct Shape(HashMap<String, String>);

/// A kind's objects as the view's shape knows them.
pub trait Marked: kube::Resource<DynamicType = ()> + Clone + 'static {
    /// The kind's name, to key its objects.
    const KIND: &'static str;
    /// What of an object counts: a change to it rebuilds the view.
    fn mark(&self) -> String {
        let m = self.meta();
        format!("{:?}/{}", m.generation, m.deletion_timestamp.is_some())
    }
}

impl Marked for Role {
    const KIND: &'static str = "Role";
}

impl Marked for Framework {
    const KIND: &'static str = "Framework";
}

impl Marked for Reservation {
    const KIND: &'static str = "Reservation";
    fn mark(&self) -> String {
        format!("{:?}", self.metadata.resource_version)
    }
}

impl Shape {
    fn key<K: Marked>(r: &ObjectRef<K>) -> String {
        let ns = r.namespace.as_deref().unwrap_or("");
        format!("{}/{ns}/{}", K::KIND, r.name)
    }

    fn add<K: Marked>(&mut self, store: &Store<K>) {
        for o in store.state() {
            self.0
                .insert(Self::key(&ObjectRef::from_obj(&*o)), o.mark());
        }
    }

    /// Whether any of these objects (changed, by the watch) differs from what
    /// the view was built on: new, gone, or changed in what counts.
    pub fn moved<K: Marked>(&self, store: &Store<K>, changed: HashSet<ObjectRef<K>>) -> bool {
        changed.into_iter().any(|r| {
            let now = store.get(&r).map(|o| o.mark());
            self.0.get(&Self::key(&r)) != now.as_ref()
        })
    }
}

/// The scheduler's caches: what a view is built from and status is written for.
#[derive(Clone, Copy)]
pub struct Caches<'a> {
    /// Tasks.
    pub tasks: &'a Store<Task>,
    /// Agents.
    pub agents: &'a Store<Agent>,
    /// Frameworks.
    pub frameworks: &'a Store<Framework>,
    /// Roles.
    pub roles: &'a Store<Role>,
    /// Reservations.
    pub reservations: &'a Store<Reservation>,
    /// Offers.
    pub offers: &'a Store<mosaic_crds::Offer>,
}

/// How many views were built (each one's [`View::generation`]).
static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl View {
    /// Builds the view from the caches. `live` says whether an agent heartbeats.
    pub fn build(c: &Caches<'_>, live: &dyn Fn(&str) -> bool, cx: &mut TaskCx<'_>) -> Self {
        let mut alloc = Allocator::new();
        for r in c.roles.state() {
            alloc.set_role(RoleSpec {
                weight: r.spec.weight,
                parent: r.spec.parent.clone(),
                guarantee: r
                    .spec
                    .quota
                    .as_ref()
                    .and_then(|q| q.guarantee.as_ref())
                    .map(quantities),
                limit: r
                    .spec
                    .quota
                    .as_ref()
                    .and_then(|q| q.limit.as_ref())
                    .map(quantities),
                ..RoleSpec::new(&r.name_any())
            });
        }
        let mut known = HashSet::new();
        let mut externals = HashSet::new();
        for f in c.frameworks.state() {
            let key = framework_key(&f.namespace().unwrap_or_default(), &f.name_any());
            alloc.set_framework(FrameworkSpec {
                name: key.clone(),
                role: f.spec.role.clone(),
                kind: match f.spec.scheduler {
                    SchedulerKind::Builtin => FrameworkKind::Builtin,
                    SchedulerKind::External => FrameworkKind::External,
                },
                placement: match f.spec.placement {
                    FwPlacement::Spread => Placement::Spread,
                    FwPlacement::BinPack => Placement::BinPack,
                },
                // Builtin frameworks are placed here, not offered to.
                suppressed: f.spec.scheduler == SchedulerKind::Builtin || f.spec.suppressed,
            });
            if f.spec.scheduler == SchedulerKind::External {
                externals.insert(key.clone());
            }
            known.insert(key);
        }
        let mut view = View {
            alloc,
            entries: HashMap::new(),
            by_agent: HashMap::new(),
            known,
            externals,
            schedulable: HashMap::new(),
            generation: BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            restarting: HashMap::new(),
            queued: 0,
            accepting: HashSet::new(),
            unbound: Vec::new(),
            shape: {
                let mut s = Shape::default();
                s.add(c.roles);
                s.add(c.frameworks);
                s.add(c.reservations);
                s
            },
            built: Instant::now(),
        };
        for a in c.agents.state() {
            view.agent(&a.name_any(), Some(&a), live(&a.name_any()));
        }
        view.unbound = crate::reservations::reserve_bound(&mut view.alloc, c.reservations);
        for t in c.tasks.state() {
            let key = format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any());
            view.task(&key, Some(&t), cx);
        }
        view
    }

    /// What of Roles, Frameworks and Reservations it was built on.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// How many tasks wait to be placed.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The tasks holding resources on an agent.
    pub fn tasks_on(&self, agent: &str) -> Vec<String> {
        self.by_agent
            .get(agent)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The agents tasks hold resources on.
    pub fn held_agents(&self) -> Vec<String> {
        self.by_agent.keys().cloned().collect()
    }

    /// The tasks holding resources on agents.
    pub fn held_tasks(&self) -> Vec<String> {
        self.by_agent.values().flatten().cloned().collect()
    }

    /// The tasks that accept an offer, from the cache.
    pub fn accepting(&self, tasks: &Store<Task>) -> Vec<Arc<Task>> {
        self.accepting
            .iter()
            .filter_map(|k| tasks.get(&crate::keys::task_ref(k)))
            .collect()
    }

    /// The ended tasks waiting for their restart.
    pub fn restarting(&self) -> Vec<String> {
        self.restarting.keys().cloned().collect()
    }

    /// Brings an agent (gone: `None`) up to date.
    pub fn agent(&mut self, name: &str, a: Option<&Arc<Agent>>, live: bool) {
        let Some(a) = a else {
            self.schedulable.insert(name.to_string(), false);
            let _ = self.alloc.set_schedulable(name, false);
            return;
        };
        let Some(status) = &a.status else { return };
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let Some(total) = status.allocatable.as_ref().or(status.capacity.as_ref()) else {
            return;
        };
        self.alloc.set_agent(AgentSpec {
            name: name.to_string(),
            total: quantities(&total.quantities()),
            labels: a.labels().clone(),
            ports: total.port_ranges(),
        });
        let ok = ready && live && !a.spec.unschedulable;
        self.schedulable.insert(name.to_string(), ok);
        let _ = self.alloc.set_schedulable(name, ok);
    }

    /// Brings a task (gone: `None`) up to date: what it contributes to the
    /// allocator, and the writes its state calls for.
    pub fn task(&mut self, key: &str, t: Option<&Arc<Task>>, cx: &mut TaskCx<'_>) {
        let want = self.want(key, t, cx);
        let same = match (self.entries.get(key), &want) {
            (None, Want::Nothing) => true,
            (
                Some(Entry::Held {
                    agent,
                    resources,
                    allocation,
                }),
                Want::Hold {
                    agent: a,
                    resources: r,
                    group: g,
                    ports: p,
                    ..
                },
            ) => agent == a && resources == r && &allocation.group == g && &allocation.ports == p,
            (
                Some(Entry::Queued { framework, req }),
                Want::Queue {
                    framework: f,
                    req: r,
                },
            ) => framework == f && req == r,
            _ => false,
        };
        if same {
            return;
        }
        self.forget(key);
        match want {
            Want::Nothing => {}
            Want::Hold {
                framework,
                agent,
                resources,
                group,
                ports,
            } => {
                if let Some(allocation) =
                    self.alloc
                        .assign(&framework, &agent, resources, group.as_deref(), &ports)
                {
                    self.hold(key, allocation);
                }
            }
            Want::Queue { framework, req } => {
                if self.alloc.submit(&framework, req.clone()).is_ok() {
                    self.queued += 1;
                    self.entries
                        .insert(key.to_string(), Entry::Queued { framework, req });
                }
            }
        }
    }

    /// The allocator placed a queued task (its allocation is taken already).
    pub fn placed(&mut self, key: &str, allocation: Allocation) {
        if let Some(Entry::Queued { .. }) = self.entries.remove(key) {
            self.queued -= 1;
        }
        self.hold(key, allocation);
    }

    fn hold(&mut self, key: &str, allocation: Allocation) {
        self.by_agent
            .entry(allocation.agent.clone())
            .or_default()
            .insert(key.to_string());
        self.entries.insert(
            key.to_string(),
            Entry::Held {
                agent: allocation.agent.clone(),
                resources: allocation.total(),
                allocation,
            },
        );
    }

    /// Takes back what a task contributed.
    fn forget(&mut self, key: &str) {
        match self.entries.remove(key) {
            Some(Entry::Held {
                agent, allocation, ..
            }) => {
                self.alloc.release(&allocation, None);
                if let Some(s) = self.by_agent.get_mut(&agent) {
                    s.remove(key);
                    if s.is_empty() {
                        self.by_agent.remove(&agent);
                    }
                }
            }
            Some(Entry::Queued { framework, .. }) => {
                self.alloc.withdraw(&framework, key);
                self.queued -= 1;
            }
            None => {}
        }
    }

    /// What a task should contribute; starts the writes its state calls for.
    fn want(&mut self, key: &str, t: Option<&Arc<Task>>, cx: &mut TaskCx<'_>) -> Want {
        let Some(t) = t else {
            cx.binder.confirm(key);
            self.restarting.remove(key);
            self.accepting.remove(key);
            return Want::Nothing;
        };
        let ns = t.namespace().unwrap_or_default();
        let framework = framework_key(&ns, &t.spec.framework);
        let phase = t.status.as_ref().and_then(|s| s.phase);
        let agent = t.status.as_ref().and_then(|s| s.agent.clone());
        let running = agent.is_some() && !phase.is_some_and(TaskPhase::is_terminal);
        if t.spec.offer.is_some()
            && agent.is_none()
            && matches!(phase, None | Some(TaskPhase::Pending))
            && t.metadata.deletion_timestamp.is_none()
        {
            self.accepting.insert(key.to_string());
        } else {
            self.accepting.remove(key);
        }
        let releasable = t.metadata.deletion_timestamp.is_some()
            && !running
            && t.finalizers().iter().any(|f| f == FINALIZER);
        if !self.known.contains(&framework) {
            // The namespace's default framework is made when first needed; a task
            // naming another framework that does not exist waits for it.
            if t.spec.framework != "default" {
                // Deleted along with its framework (`helm uninstall` deletes all
                // at once): it still goes once it no longer runs.
                if releasable {
                    cx.binder.confirm(key);
                    let (client, t) = (cx.client.clone(), t.clone());
                    cx.binder
                        .write(async move { crate::task_writes::release(&client, &t).await });
                }
                return Want::Nothing;
            }
            cx.missing_defaults.insert(ns.clone());
            self.alloc
                .set_framework(FrameworkSpec::builtin(&framework, "default"));
            self.known.insert(framework.clone());
        }
        if t.metadata.deletion_timestamp.is_some() {
            // A bound task is killed by its agent first, which reports it Killed;
            // then (or if it never ran) it may go.
            cx.binder.confirm(key);
            self.restarting.remove(key);
            if releasable {
                let (client, t) = (cx.client.clone(), t.clone());
                cx.binder
                    .write(async move { crate::task_writes::release(&client, &t).await });
            }
            return match agent {
                Some(agent) if running => Want::Hold {
                    framework,
                    agent,
                    resources: task_resources(t),
                    group: crate::constraints::group(t),
                    ports: given_ports(t),
                },
                _ => Want::Nothing,
            };
        }
        if let Some(ph) = phase
            && ph.is_terminal()
        {
            cx.binder.confirm(key);
            let st = t.status.as_ref();
            let attempt = st.and_then(|s| s.attempt).unwrap_or(0);
            if !t.spec.restarts_after(ph, attempt) {
                self.restarting.remove(key);
                return Want::Nothing;
            }
            let finished = st
                .and_then(|s| s.finish_time.as_deref())
                .and_then(|f| f.parse::<jiff::Timestamp>().ok())
                .unwrap_or_else(jiff::Timestamp::now);
            let due = finished.as_second()
                + mosaic_crds::task::TaskSpec::restart_backoff(attempt).as_secs() as i64;
            let last = self.restarting.entry(key.to_string()).or_insert(None);
            if jiff::Timestamp::now().as_second() >= due
                && last.is_none_or(|l| l.elapsed() >= RESTART_RETRY)
            {
                *last = Some(Instant::now());
                let (client, t) = (cx.client.clone(), t.clone());
                cx.binder.write(async move {
                    crate::task_writes::restart(&client, &t, attempt + 1).await
                });
            }
            return Want::Nothing;
        }
        self.restarting.remove(key);
        match agent {
            Some(agent) => {
                cx.binder.confirm(key);
                Want::Hold {
                    framework,
                    agent,
                    resources: task_resources(t),
                    group: crate::constraints::group(t),
                    ports: given_ports(t),
                }
            }
            // An External framework's tasks run on the offers they accept.
            None if self.externals.contains(&framework) || t.spec.offer.is_some() => Want::Nothing,
            None if matches!(phase, None | Some(TaskPhase::Pending)) => {
                // Its bind is under way: it holds its place already.
                if let Some(a) = cx.binder.assumed(key) {
                    return Want::Hold {
                        framework,
                        agent: a.agent,
                        resources: a.resources,
                        group: crate::constraints::group(t),
                        ports: a.ports,
                    };
                }
                let mut req = TaskRequest::new(key, task_resources(t));
                if let Some(sel) = &t.spec.agent_selector {
                    req.selector = sel.match_labels.clone().unwrap_or_default();
                }
                req.group = crate::constraints::group(t);
                req.constraints = crate::constraints::of(t);
                req.ports = mosaic_crds::ports::request(&t.spec.ports);
                Want::Queue { framework, req }
            }
            None => Want::Nothing,
        }
    }
}

/// The host ports a bound task was given (from its status).
fn given_ports(t: &Task) -> Vec<u16> {
    t.status
        .as_ref()
        .map(|s| s.ports.iter().map(|p| p.port).collect())
        .unwrap_or_default()
}
