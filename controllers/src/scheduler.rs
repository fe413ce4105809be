//! The built-in scheduler loop: watches Agents, Roles, Frameworks and Tasks,
//! keeps the allocator's view of them up to date from what changed
//! ([`crate::view`]), and writes its placements back as Task status (phase
//! Staging, `status.agent`, condition Scheduled).
//!
//! A cycle runs shortly after any change (changes arriving together, up to
//! 250 ms apart in all, share a cycle, so work submitted together is shared
//! fairly) and at least once a second. Bindings are written with the Task's
//! resourceVersion as a precondition, so a Task changed meanwhile is never
//! bound from a stale view, and two schedulers cannot both bind it.

use crate::allocator::Decision;
use crate::index::Registry;
use crate::keys::task_ref;
use crate::liveness::{self, Liveness};
use crate::task_writes::mark_unschedulable;
use crate::view::{Caches, TaskCx, View};
use crate::watches::{AbortOnDrop, Changes, Deletions};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use mosaic_crds::{Agent, Framework, Offer, Reservation, Role, Task};
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A cycle starts once no change has come for this long...
const QUIET: Duration = Duration::from_millis(50);
/// ...or this long after the first change, whichever is sooner.
const BATCH: Duration = Duration::from_millis(250);

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A watch could not start.
    #[error("watching {0}: the initial list did not complete")]
    NotReady(&'static str),
}

/// How the controllers behave.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a task stays Unreachable before it is Lost.
    pub agent_lost_after: Duration,
    /// How tasks are bound (`None`: as discovery says the API server allows).
    pub binding: Option<crate::binding::Path>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            agent_lost_after: Duration::from_secs(60),
            binding: None,
        }
    }
}

/// Runs the scheduler, starting it again (after a second) if it stops or
/// panics, so one bad cycle never leaves a cluster without placements.
pub async fn run_supervised(client: Client, registry: Registry, opts: Options) {
    loop {
        let task = tokio::spawn(run(client.clone(), registry.clone(), opts.clone()));
        let _stop_with_me = AbortOnDrop(vec![task.abort_handle()]);
        match task.await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => tracing::error!(error = %e, "the scheduler stopped; starting it again"),
            Err(e) => tracing::error!(error = %e, "the scheduler panicked; starting it again"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the scheduler until the process ends, reading every kind from the
/// shared reflectors of `registry`.
pub async fn run(client: Client, registry: Registry, opts: Options) -> Result<(), SchedulerError> {
    let notify = Arc::new(Notify::new());
    let (leases, tasks, agents) = (registry.leases(), registry.tasks(), registry.agents());
    let (frameworks, roles) = (registry.frameworks(), registry.roles());
    let (reservations, offers) = (registry.reservations(), registry.offers());
    let (_offer_deletions, deleted_rx) = Deletions::of(&offers);
    let changes = ChangeFeeds {
        tasks: Changes::of(&tasks, notify.clone()),
        agents: Changes::of(&agents, notify.clone()),
        leases: Changes::of(&leases, notify.clone()),
        frameworks: Changes::of(&frameworks, notify.clone()),
        roles: Changes::of(&roles, notify.clone()),
        reservations: Changes::of(&reservations, notify.clone()),
        offers: Changes::of(&offers, notify.clone()),
    };
    for (name, ready) in [
        ("tasks", tasks.ready().await),
        ("agents", agents.ready().await),
        ("frameworks", frameworks.ready().await),
        ("roles", roles.ready().await),
        ("reservations", reservations.ready().await),
        ("offers", offers.ready().await),
        ("leases", leases.ready().await),
    ] {
        if !ready {
            return Err(SchedulerError::NotReady(name));
        }
    }
    let (leases, tasks, agents) = (leases.store(), tasks.store(), agents.store());
    let (frameworks, roles) = (frameworks.store(), roles.store());
    let (reservations, offers) = (reservations.store(), offers.store());
    let binding = match opts.binding {
        Some(b) => b,
        None => crate::binding::Path::discover(&client).await,
    };
    tracing::info!(?binding, "scheduler started");
    let mut sched = Scheduler {
        client: client.clone(),
        opts,
        stores: Stores {
            tasks,
            agents,
            frameworks,
            roles,
            reservations,
            offers,
            leases,
        },
        changes,
        view: None,
        liveness: Liveness::default(),
        offer_state: crate::offers::OfferState::new(deleted_rx, binding),
        binder: crate::binder::Binder::new(client, binding),
        status: crate::status::StatusWriter::default(),
    };
    let mut last_took = Duration::ZERO;
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(1), notify.notified()).await;
        // Let changes that arrive together share one cycle, as Mesos's
        // allocation interval does: wait until none has come for QUIET, but
        // no longer than BATCH in all. Work submitted together (a manifest
        // applied, a burst of tasks) is then shared fairly, not first come.
        let first = tokio::time::Instant::now();
        while first.elapsed() < BATCH
            && tokio::time::timeout(QUIET, notify.notified()).await.is_ok()
        {}
        // Under load, keep cycles to a third of the scheduler's time, so
        // binds and watches keep up (but never wait more than a second: a
        // cycle may have been long because an API call in it was slow).
        let pause = last_took.saturating_mul(2).min(Duration::from_secs(1));
        tokio::time::sleep(pause.saturating_sub(first.elapsed())).await;
        let started = std::time::Instant::now();
        sched.cycle().await;
        last_took = started.elapsed();
        let m = &crate::metrics::METRICS;
        m.cycles.inc();
        m.cycle_seconds.inc_by(last_took.as_secs_f64());
        m.last_cycle_seconds.set(last_took.as_secs_f64());
        crate::metrics::reconciled("scheduler", started);
    }
}

/// The scheduler's caches of the objects it reads.
struct Stores {
    tasks: Store<Task>,
    agents: Store<Agent>,
    frameworks: Store<Framework>,
    roles: Store<Role>,
    reservations: Store<Reservation>,
    offers: Store<Offer>,
    leases: Store<Lease>,
}

impl Stores {
    fn caches(&self) -> Caches<'_> {
        Caches {
            tasks: &self.tasks,
            agents: &self.agents,
            frameworks: &self.frameworks,
            roles: &self.roles,
            reservations: &self.reservations,
            offers: &self.offers,
        }
    }
}

/// What changed in the caches since the last cycle.
struct ChangeFeeds {
    tasks: Arc<Changes<Task>>,
    agents: Arc<Changes<Agent>>,
    leases: Arc<Changes<Lease>>,
    frameworks: Arc<Changes<Framework>>,
    roles: Arc<Changes<Role>>,
    reservations: Arc<Changes<Reservation>>,
    /// Offers are read whole from the cache each cycle; this is only drained.
    offers: Arc<Changes<Offer>>,
}

/// The scheduler's state across cycles.
struct Scheduler {
    client: Client,
    opts: Options,
    stores: Stores,
    changes: ChangeFeeds,
    /// Built at the first cycle, then kept up to date (see [`crate::view`]).
    view: Option<View>,
    liveness: Liveness,
    offer_state: crate::offers::OfferState,
    binder: crate::binder::Binder,
    status: crate::status::StatusWriter,
}

impl Scheduler {
    /// One cycle: brings the view up to date with what changed (or rebuilds
    /// it), then allocates and writes what was decided.
    async fn cycle(&mut self) {
        let now_ms = crate::offers::now_ms();
        let client = self.client.clone();
        let st = &self.stores;
        // Leases: which agents stopped (or started again) heartbeating.
        let (lease_keys, leases_relisted) = self.changes.leases.take();
        let mut flipped: HashSet<String> = HashSet::new();
        if leases_relisted || self.view.is_none() {
            for l in st.leases.state() {
                if self.liveness.lease(&l.name_any(), Some(&l)) {
                    flipped.insert(l.name_any());
                }
            }
        }
        for k in lease_keys {
            if self.liveness.lease(&k.name, st.leases.get(&k).as_deref()) {
                flipped.insert(k.name);
            }
        }
        flipped.extend(self.liveness.expired());
        let _ = self.changes.offers.any();
        let (agent_keys, agents_relisted) = self.changes.agents.take();
        let (task_keys, tasks_relisted) = self.changes.tasks.take();
        let (framework_keys, frameworks_relisted) = self.changes.frameworks.take();
        let (role_keys, roles_relisted) = self.changes.roles.take();
        let (reservation_keys, reservations_relisted) = self.changes.reservations.take();
        let rebuild = match &self.view {
            None => true,
            Some(v) => {
                agents_relisted
                    || tasks_relisted
                    || frameworks_relisted
                    || roles_relisted
                    || reservations_relisted
                    || v.built.elapsed() >= crate::view::REBUILD_EVERY
                    || v.shape().moved(&st.frameworks, framework_keys)
                    || v.shape().moved(&st.roles, role_keys)
                    || v.shape().moved(&st.reservations, reservation_keys)
            }
        };
        let mut missing_defaults = BTreeSet::new();
        let mut cx = TaskCx {
            client: &client,
            binder: &mut self.binder,
            missing_defaults: &mut missing_defaults,
        };
        let lost_after = self.opts.agent_lost_after;
        if rebuild {
            for a in st.agents.state() {
                self.liveness.agent_seen(&a.name_any());
            }
            let liveness = &self.liveness;
            let view = View::build(&st.caches(), &|a| liveness.is_live(a), &mut cx);
            // Tasks on an agent that is not registered are on no live agent.
            for a in view.held_agents() {
                if st.agents.get(&ObjectRef::new(&a)).is_none() {
                    self.liveness.agent_gone(&a);
                }
            }
            let names = st.agents.state().iter().map(|a| a.name_any()).collect();
            liveness::reconcile_agents(&client, &st.agents, &names, &self.liveness).await;
            let held = view.held_tasks();
            liveness::reconcile_tasks(&client, &st.tasks, held, &self.liveness, lost_after).await;
            self.view = Some(view);
        } else {
            let view = self.view.as_mut().expect("built");
            let mut names: HashSet<String> = flipped;
            for k in agent_keys {
                if st.agents.get(&k).is_some() {
                    self.liveness.agent_seen(&k.name);
                } else {
                    self.liveness.agent_gone(&k.name);
                }
                names.insert(k.name);
            }
            for name in &names {
                let a = st.agents.get(&ObjectRef::new(name));
                view.agent(name, a.as_ref(), self.liveness.is_live(name));
            }
            let mut keys: HashSet<String> = task_keys
                .into_iter()
                .map(|k| format!("{}/{}", k.namespace.as_deref().unwrap_or(""), k.name))
                .collect();
            keys.extend(cx.binder.take_failed());
            keys.extend(view.restarting());
            for key in keys {
                view.task(&key, st.tasks.get(&task_ref(&key)).as_ref(), &mut cx);
            }
            liveness::reconcile_agents(&client, &st.agents, &names, &self.liveness).await;
            // Tasks on agents that are not live (Unreachable, then Lost), or live again.
            let mut suspects: Vec<String> = Vec::new();
            for a in self.liveness.down().iter().chain(&names) {
                suspects.extend(view.tasks_on(a));
            }
            liveness::reconcile_tasks(&client, &st.tasks, suspects, &self.liveness, lost_after)
                .await;
        }
        for ns in missing_defaults {
            create_default_framework(&client, &ns).await;
        }
        let view = self.view.as_mut().expect("built");
        let accepting = view.accepting(&st.tasks);
        let on_offers = crate::offers::before_allocation(
            &client,
            &mut view.alloc,
            view.generation,
            &mut self.offer_state,
            &st.offers,
            &st.frameworks,
            &accepting,
            &view.schedulable,
            now_ms,
        )
        .await;
        for (task, allocation) in on_offers {
            view.placed(&task, allocation);
        }
        let unbound = std::mem::take(&mut view.unbound);
        view.unbound =
            crate::reservations::bind_pending(&client, &mut view.alloc, &st.agents, unbound).await;
        let m = &crate::metrics::METRICS;
        m.pending.set(view.queued() as i64);
        let deciding = std::time::Instant::now();
        let decisions = view.alloc.allocate(now_ms);
        m.allocate_seconds.inc_by(deciding.elapsed().as_secs_f64());
        // Binds and marks are written in the background, many at once (the
        // server group-commits them); the placements count as made meanwhile.
        for d in decisions {
            match d {
                Decision::Place { task, allocation } => {
                    if let Some(t) = st.tasks.get(&task_ref(&task)) {
                        let total = allocation.total();
                        let agent = allocation.agent.clone();
                        let ports = allocation.ports.clone();
                        self.binder.bind(task.clone(), t, agent, total, ports);
                    }
                    view.placed(&task, allocation);
                }
                Decision::Unschedulable {
                    task,
                    reason,
                    waits,
                    ..
                } => {
                    if let Some(t) = st.tasks.get(&task_ref(&task)) {
                        let client = client.clone();
                        let message = if waits {
                            format!("waiting for an agent: {reason}")
                        } else {
                            format!("no agent could ever run this task: {reason}")
                        };
                        self.binder.write(async move {
                            mark_unschedulable(&client, &t, &message, &reason, waits).await
                        });
                    }
                }
                Decision::Offer { allocation } => {
                    let made = crate::offers::create(
                        &client,
                        &mut self.offer_state,
                        &st.frameworks,
                        allocation,
                        view.generation,
                    )
                    .await;
                    if let Err(allocation) = made {
                        view.alloc.release(&allocation, None);
                    }
                }
            }
        }
        m.writes_in_flight.set(self.binder.in_flight() as i64);
        self.status.maybe_start(&client, &view.alloc, &st.caches());
    }
}

async fn create_default_framework(client: &Client, ns: &str) {
    let api: Api<Framework> = Api::namespaced(client.clone(), ns);
    let fw: Framework = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Framework",
        "metadata": {"name": "default"}, "spec": {"role": "default"}}))
    .expect("a valid Framework");
    match api.create(&PostParams::default(), &fw).await {
        Ok(_) => tracing::info!(namespace = ns, "created the default framework"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => tracing::warn!(namespace = ns, error = %e, "creating the default framework"),
    }
}
