//! The built-in scheduler loop: watches Agents, Roles, Frameworks and Tasks,
//! rebuilds the allocator's view from them, and writes its placements back as
//! Task status (phase Staging, `status.agent`, condition Scheduled).
//!
//! A cycle runs shortly after any change (changes arriving together, up to
//! 250 ms apart in all, share a cycle, so work submitted together is shared
//! fairly) and at least once a second. Bindings are written with the Task's
//! resourceVersion as a precondition, so a Task changed meanwhile is never
//! bound from a stale view, and two schedulers cannot both bind it.

use crate::allocator::{
    AgentSpec, Allocator, Decision, FrameworkKind, FrameworkSpec, Placement, Resources, RoleSpec,
    TaskRequest,
};
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use mosaic_crds::framework::{Placement as FwPlacement, SchedulerKind};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Agent, Framework, Offer, Reservation, Role, Task};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A cycle starts once no change has come for this long...
const QUIET: Duration = Duration::from_millis(50);
/// ...or this long after the first change, whichever is sooner.
const BATCH: Duration = Duration::from_millis(250);

/// The longest a cycle waits for one API call.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A watch could not start.
    #[error("watching {0}: the initial list did not complete")]
    NotReady(&'static str),
}

/// Now, as Kubernetes writes timestamps.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Aborts its tasks when dropped, so stopping the scheduler (a leader that
/// steps down) stops its watches too.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Field ownership is no business of the controllers: their caches leave it
/// out (as controller-runtime's default transform does), which keeps every
/// cached object, and every copy a cycle makes, small.
fn drop_managed_fields<K: kube::Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

fn reflect<K>(api: Api<K>, notify: Arc<Notify>, bg: &mut Vec<tokio::task::AbortHandle>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(drop_managed_fields)
        .reflect(writer)
        .touched_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::debug!(error = %e, "watch error (retrying)");
            }
            notify.notify_one();
        }
    });
    bg.push(task.abort_handle());
    reader
}

/// Like [`reflect`] for Offers, also passing on each deletion the watch sees
/// (a framework declines an offer by deleting it, maybe before a cycle saw it).
fn reflect_offers(
    api: Api<Offer>,
    notify: Arc<Notify>,
    deleted: tokio::sync::mpsc::UnboundedSender<Offer>,
    bg: &mut Vec<tokio::task::AbortHandle>,
) -> Store<Offer> {
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(drop_managed_fields)
        .reflect(writer);
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Delete(o)) => {
                    let _ = deleted.send(o);
                }
                Err(e) => tracing::debug!(error = %e, "watch error (retrying)"),
                _ => {}
            }
            notify.notify_one();
        }
    });
    bg.push(task.abort_handle());
    reader
}

/// Whether a task no longer holds resources.
pub fn is_terminal(phase: Option<TaskPhase>) -> bool {
    matches!(
        phase,
        Some(
            TaskPhase::Finished
                | TaskPhase::Failed
                | TaskPhase::Killed
                | TaskPhase::Lost
                | TaskPhase::Error
        )
    )
}

fn task_resources(t: &Task) -> Resources {
    let r = &t.spec.resources;
    Resources::new(
        r.cpus_milli().ok().flatten().unwrap_or(1000),
        r.memory_bytes().ok().flatten().unwrap_or(128 << 20),
    )
}

fn framework_key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// How the controllers behave.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a task stays Unreachable before it is Lost.
    pub agent_lost_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            agent_lost_after: Duration::from_secs(60),
        }
    }
}

/// Runs the scheduler, starting it again (after a second) if it stops or
/// panics, so one bad cycle never leaves a cluster without placements.
pub async fn run_supervised(client: Client, opts: Options) {
    loop {
        let task = tokio::spawn(run(client.clone(), opts.clone()));
        let _stop_with_me = AbortOnDrop(vec![task.abort_handle()]);
        match task.await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => tracing::error!(error = %e, "the scheduler stopped; starting it again"),
            Err(e) => tracing::error!(error = %e, "the scheduler panicked; starting it again"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the scheduler until the process ends.
pub async fn run(client: Client, opts: Options) -> Result<(), SchedulerError> {
    let notify = Arc::new(Notify::new());
    let mut bg = Vec::new();
    let leases = reflect(
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
            client.clone(),
            "mosaic-system",
        ),
        notify.clone(),
        &mut bg,
    );
    let tasks = reflect(Api::<Task>::all(client.clone()), notify.clone(), &mut bg);
    let agents = reflect(Api::<Agent>::all(client.clone()), notify.clone(), &mut bg);
    let frameworks = reflect(
        Api::<Framework>::all(client.clone()),
        notify.clone(),
        &mut bg,
    );
    let roles = reflect(Api::<Role>::all(client.clone()), notify.clone(), &mut bg);
    let reservations = reflect(
        Api::<Reservation>::all(client.clone()),
        notify.clone(),
        &mut bg,
    );
    let (deleted_tx, deleted_rx) = tokio::sync::mpsc::unbounded_channel();
    let offers = reflect_offers(
        Api::<Offer>::all(client.clone()),
        notify.clone(),
        deleted_tx,
        &mut bg,
    );
    let _watches = AbortOnDrop(bg);
    let mut offer_state = crate::offers::OfferState::new(deleted_rx);
    let mut binder = crate::binder::Binder::new(client.clone());
    let mut status = crate::status::StatusWriter::default();
    let mut last_took = Duration::ZERO;
    for (name, ready) in [
        ("tasks", tasks.wait_until_ready().await.is_ok()),
        ("agents", agents.wait_until_ready().await.is_ok()),
        ("frameworks", frameworks.wait_until_ready().await.is_ok()),
        ("roles", roles.wait_until_ready().await.is_ok()),
        (
            "reservations",
            reservations.wait_until_ready().await.is_ok(),
        ),
        ("offers", offers.wait_until_ready().await.is_ok()),
        ("leases", leases.wait_until_ready().await.is_ok()),
    ] {
        if !ready {
            return Err(SchedulerError::NotReady(name));
        }
    }
    tracing::info!("scheduler started");
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
        // A cycle reads every object: on a large cluster under load, keep it
        // to a third of the scheduler's time, so binds and watches keep up
        // (but never wait more than a second: a cycle may have been long
        // because an API call in it was slow, not because it is costly).
        let pause = last_took.saturating_mul(2).min(Duration::from_secs(1));
        tokio::time::sleep(pause.saturating_sub(first.elapsed())).await;
        let live = crate::liveness::live_agents(&agents, &leases);
        crate::liveness::reconcile(&client, &agents, &tasks, &live, opts.agent_lost_after).await;
        let stores = Stores {
            tasks: &tasks,
            agents: &agents,
            frameworks: &frameworks,
            roles: &roles,
            reservations: &reservations,
            offers: &offers,
        };
        let started = std::time::Instant::now();
        cycle(
            &client,
            &stores,
            &mut offer_state,
            &mut binder,
            &live,
            &mut status,
        )
        .await;
        last_took = started.elapsed();
        let took = last_took.as_micros() as u64;
        crate::metrics::inc(&crate::metrics::CYCLES);
        crate::metrics::CYCLE_MICROS.fetch_add(took, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::LAST_CYCLE_MICROS.store(took, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The scheduler's views of the objects it reads.
struct Stores<'a> {
    tasks: &'a Store<Task>,
    agents: &'a Store<Agent>,
    frameworks: &'a Store<Framework>,
    roles: &'a Store<Role>,
    reservations: &'a Store<Reservation>,
    offers: &'a Store<Offer>,
}

async fn cycle(
    client: &Client,
    stores: &Stores<'_>,
    offer_state: &mut crate::offers::OfferState,
    binder: &mut crate::binder::Binder,
    live: &std::collections::HashMap<String, bool>,
    status: &mut crate::status::StatusWriter,
) {
    let Stores {
        tasks,
        agents,
        frameworks,
        roles,
        reservations,
        offers,
    } = *stores;
    let now_ms = crate::offers::now_ms();
    let mut schedulable = std::collections::HashMap::new();
    let mut alloc = Allocator::new();
    for r in roles.state() {
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
    for a in agents.state() {
        let Some(status) = &a.status else { continue };
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let Some(alloc_q) = status.allocatable.as_ref().or(status.capacity.as_ref()) else {
            continue;
        };
        alloc.set_agent(AgentSpec {
            name: a.name_any(),
            total: quantities(alloc_q),
            labels: a.labels().clone(),
        });
        let live = live.get(&a.name_any()).copied().unwrap_or(false);
        let ok = ready && live && !a.spec.unschedulable;
        schedulable.insert(a.name_any(), ok);
        let _ = alloc.set_schedulable(&a.name_any(), ok);
    }
    for f in frameworks.state() {
        alloc.set_framework(FrameworkSpec {
            name: framework_key(&f.namespace().unwrap_or_default(), &f.name_any()),
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
    }
    let unbound = crate::reservations::reserve_bound(&mut alloc, reservations);
    let mut known: std::collections::BTreeSet<String> = frameworks
        .state()
        .iter()
        .map(|f| framework_key(&f.namespace().unwrap_or_default(), &f.name_any()))
        .collect();
    let externals: std::collections::HashSet<String> = frameworks
        .state()
        .iter()
        .filter(|f| f.spec.scheduler == SchedulerKind::External)
        .map(|f| framework_key(&f.namespace().unwrap_or_default(), &f.name_any()))
        .collect();
    // Pending tasks by id (`namespace/name`), to find a decision's task.
    let mut pending = std::collections::HashMap::new();
    let mut missing_defaults = std::collections::BTreeSet::new();
    for t in tasks.state() {
        let ns = t.namespace().unwrap_or_default();
        let fw = framework_key(&ns, &t.spec.framework);
        let phase = t.status.as_ref().and_then(|s| s.phase);
        let agent = t.status.as_ref().and_then(|s| s.agent.clone());
        let key = format!("{ns}/{}", t.name_any());
        if !known.contains(&fw) {
            // The namespace's default framework is made when first needed; a task
            // naming another framework that does not exist waits for it.
            if t.spec.framework != "default" {
                // Deleted along with its framework (`helm uninstall` deletes all
                // at once): it still goes once it no longer runs.
                let running = agent.is_some() && !is_terminal(phase);
                if t.metadata.deletion_timestamp.is_some()
                    && !running
                    && t.finalizers().iter().any(|f| f == FINALIZER)
                {
                    binder.confirm(&key);
                    let (client, t) = (client.clone(), t.clone());
                    binder.write(async move { release(&client, &t).await });
                }
                continue;
            }
            missing_defaults.insert(ns.clone());
            alloc.set_framework(FrameworkSpec::builtin(&fw, "default"));
            known.insert(fw.clone());
        }
        if t.metadata.deletion_timestamp.is_some() {
            // A bound task is killed by its agent first, which reports it Killed;
            // then (or if it never ran) it may go.
            let running = agent.is_some() && !is_terminal(phase);
            binder.confirm(&key);
            if !running && t.finalizers().iter().any(|f| f == FINALIZER) {
                let (client, t) = (client.clone(), t.clone());
                binder.write(async move { release(&client, &t).await });
            }
            if running && let Some(agent) = agent {
                alloc.assign(&fw, &agent, task_resources(&t));
            }
            continue;
        }
        if let Some(ph) = phase
            && is_terminal(Some(ph))
        {
            let st = t.status.as_ref();
            let attempt = st.and_then(|s| s.attempt).unwrap_or(0);
            if t.spec.restarts_after(ph, attempt) {
                let finished = st
                    .and_then(|s| s.finish_time.as_deref())
                    .and_then(|f| f.parse::<jiff::Timestamp>().ok())
                    .unwrap_or_else(jiff::Timestamp::now);
                let due = finished.as_second()
                    + mosaic_crds::task::TaskSpec::restart_backoff(attempt).as_secs() as i64;
                if jiff::Timestamp::now().as_second() >= due {
                    let (client, t) = (client.clone(), t.clone());
                    binder.write(async move { restart(&client, &t, attempt + 1).await });
                }
            }
            binder.confirm(&key);
            continue;
        }
        match agent {
            Some(agent) if !is_terminal(phase) => {
                binder.confirm(&key);
                alloc.assign(&fw, &agent, task_resources(&t));
            }
            // An External framework's tasks run on the offers they accept.
            None if externals.contains(&fw) || t.spec.offer.is_some() => {}
            None if t.metadata.deletion_timestamp.is_none()
                && matches!(phase, None | Some(TaskPhase::Pending)) =>
            {
                // Its bind is under way: it holds its place already.
                if let Some(a) = binder.assumed(&key) {
                    alloc.assign(&fw, &a.agent, a.resources);
                    continue;
                }
                let mut req = TaskRequest::new(&key, task_resources(&t));
                if let Some(sel) = &t.spec.agent_selector {
                    req.selector = sel.match_labels.clone().unwrap_or_default();
                }
                let _ = alloc.submit(&fw, req);
                pending.insert(key, t.clone());
            }
            _ => {}
        }
    }
    for ns in missing_defaults {
        create_default_framework(client, &ns).await;
    }
    let all_tasks = tasks.state();
    crate::offers::before_allocation(
        client,
        &mut alloc,
        offer_state,
        offers,
        frameworks,
        &all_tasks,
        &schedulable,
        now_ms,
    )
    .await;
    crate::reservations::bind_pending(client, &mut alloc, agents, unbound).await;
    crate::metrics::PENDING.store(pending.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let deciding = std::time::Instant::now();
    let decisions = alloc.allocate(now_ms);
    crate::metrics::ALLOCATE_MICROS.fetch_add(
        deciding.elapsed().as_micros() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    // Binds and marks are written in the background, many at once (the
    // server group-commits them); the next cycle counts the placements as made.
    for d in decisions {
        match d {
            Decision::Place { task, allocation } => {
                if let Some(t) = pending.get(&task) {
                    let total = allocation.total();
                    binder.bind(task, t.clone(), allocation.agent, total);
                }
            }
            Decision::Unschedulable { task, reason, .. } => {
                if let Some(t) = pending.get(&task) {
                    let (client, t) = (client.clone(), t.clone());
                    binder.write(async move { mark_unschedulable(&client, &t, &reason).await });
                }
            }
            Decision::Offer { allocation } => {
                crate::offers::create(client, offer_state, frameworks, &allocation).await;
            }
        }
    }
    crate::metrics::BINDS_IN_FLIGHT.store(
        binder.in_flight() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let objects = crate::status::Objects {
        roles,
        frameworks,
        agents,
        tasks,
        offers,
    };
    status.maybe_start(client, &alloc, &objects);
}

fn quantities(q: &mosaic_crds::ResourceQuantities) -> Resources {
    Resources::new(
        q.cpus_milli().ok().flatten().unwrap_or(0),
        q.memory_bytes().ok().flatten().unwrap_or(0),
    )
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

/// Writes a Task's status (resourceVersion-guarded); whether it was stored.
async fn patch_status(client: &Client, t: &Task, status: serde_json::Value) -> bool {
    let api: Api<Task> = Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
    // The resourceVersion makes this a compare-and-swap: a task changed since
    // this view was taken is left for the next cycle.
    let body = json!({"metadata": {"resourceVersion": t.resource_version()}, "status": status});
    let (name, pp, patch) = (t.name_any(), PatchParams::default(), Patch::Merge(&body));
    match tokio::time::timeout(API_TIMEOUT, api.patch_status(&name, &pp, &patch)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::debug!(task = %t.name_any(), error = %e, "status not written (will retry)");
            false
        }
        Err(_) => {
            tracing::warn!(task = %t.name_any(), "status write timed out (will retry)");
            false
        }
    }
}

/// Held by every bound Task: deleting it kills it on its agent before the object goes.
pub const FINALIZER: &str = "mosaic.dev/kill-before-delete";

/// Patches the Task's finalizers (resourceVersion-guarded); the updated Task on success.
async fn set_finalizers(client: &Client, t: &Task, finalizers: Vec<String>) -> Option<Task> {
    let api: Api<Task> = Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
    let body =
        json!({"metadata": {"resourceVersion": t.resource_version(), "finalizers": finalizers}});
    let (name, pp, patch) = (t.name_any(), PatchParams::default(), Patch::Merge(&body));
    match tokio::time::timeout(API_TIMEOUT, api.patch(&name, &pp, &patch)).await {
        Ok(Ok(t)) => Some(t),
        Ok(Err(e)) => {
            tracing::debug!(task = %name, error = %e, "finalizers not written (will retry)");
            None
        }
        Err(_) => {
            tracing::warn!(task = %name, "finalizer write timed out (will retry)");
            None
        }
    }
}

/// Lets a deleted task go: drops Mosaic's finalizer.
async fn release(client: &Client, t: &Task) {
    let rest = t
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if set_finalizers(client, t, rest).await.is_some() {
        tracing::info!(task = %t.name_any(), "released a deleted task");
    }
}

/// Binds a task to an agent: the finalizer first, then status Staging
/// (resourceVersion-guarded). Whether it is bound.
pub(crate) async fn bind_to(client: &Client, t: &Task, agent: &str) -> bool {
    let now = now();
    // The finalizer first, so a bound task is never deleted without being killed.
    let holder;
    let t = if t.finalizers().iter().any(|f| f == FINALIZER) {
        t
    } else {
        let mut fins = t.finalizers().to_vec();
        fins.push(FINALIZER.to_string());
        match set_finalizers(client, t, fins).await {
            Some(updated) => {
                holder = updated;
                &holder
            }
            None => return false,
        }
    };
    let bound = patch_status(
        client,
        t,
        json!({
            "phase": "Staging", "agent": agent, "reason": null, "message": null,
            "observedGeneration": t.metadata.generation,
            "conditions": [
                {"type": "Scheduled", "status": "True", "reason": "Scheduled", "message": format!("bound to agent {agent}"), "lastTransitionTime": now, "observedGeneration": t.metadata.generation},
                {"type": "Ready", "status": "False", "reason": "Staging", "message": "waiting for the agent to start it", "lastTransitionTime": now, "observedGeneration": t.metadata.generation},
            ],
        }),
    )
    .await;
    if bound {
        crate::metrics::inc(&crate::metrics::PLACEMENTS);
        tracing::info!(task = %t.name_any(), agent, "scheduled");
        crate::events::record(
            client,
            t,
            "Normal",
            "Scheduled",
            &format!("bound to agent {agent}"),
        )
        .await;
    }
    bound
}

/// Puts a task that ended back in the queue for its next attempt.
async fn restart(client: &Client, t: &Task, attempt: u32) {
    let now = now();
    let prev = t
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    let stored = patch_status(
        client,
        t,
        json!({
            "phase": "Pending", "agent": null, "attempt": attempt, "reason": "Restarting",
            "message": format!("restart {attempt} after: {prev}"), "startTime": null, "usage": null,
            "observedGeneration": t.metadata.generation,
            "conditions": [
                {"type": "Scheduled", "status": "False", "reason": "Restarting", "message": "waiting to be placed again", "lastTransitionTime": now, "observedGeneration": t.metadata.generation},
                {"type": "Ready", "status": "False", "reason": "Restarting", "message": "waiting to be placed again", "lastTransitionTime": now, "observedGeneration": t.metadata.generation},
            ],
        }),
    )
    .await;
    if !stored {
        return;
    }
    tracing::info!(task = %t.name_any(), attempt, "restarting");
    crate::events::record(
        client,
        t,
        "Normal",
        "Restarting",
        &format!("restart {attempt} after: {prev}"),
    )
    .await;
}

async fn mark_unschedulable(client: &Client, t: &Task, reason: &str) {
    let message = format!("no agent could ever run this task: {reason}");
    let st = t.status.as_ref();
    if st.and_then(|s| s.reason.as_deref()) == Some("Unschedulable")
        && st.and_then(|s| s.message.as_deref()) == Some(message.as_str())
        && st.and_then(|s| s.observed_generation) == t.metadata.generation
    {
        return; // Already says so; it is looked at again every cycle, and bound once an agent fits.
    }
    crate::events::record(client, t, "Warning", "Unschedulable", &message).await;
    let now = now();
    patch_status(
        client,
        t,
        json!({
            "phase": "Pending", "reason": "Unschedulable", "message": message,
            "observedGeneration": t.metadata.generation,
            "conditions": [
                {"type": "Scheduled", "status": "False", "reason": "Unschedulable", "message": reason, "lastTransitionTime": now, "observedGeneration": t.metadata.generation},
                {"type": "Stalled", "status": "True", "reason": "Unschedulable", "message": reason, "lastTransitionTime": now, "observedGeneration": t.metadata.generation},
            ],
        }),
    )
    .await;
}
