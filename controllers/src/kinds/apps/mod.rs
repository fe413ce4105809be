//! The App controller: keeps each App's instances (Tasks it owns) as its
//! spec asks, through a kube-runtime `Controller` over Apps and the Tasks
//! they own. Each reconcile reads the App's instances (owned and labelled
//! with an App) from the shared Task cache through an index by owner, asks
//! [`plan`] what to do, and does it: ended
//! instances are cleared, new ones created (named `<app>-<revision>-<suffix>`,
//! owned by the App so the garbage collector deletes them with it), doomed
//! ones deleted (their agent kills them with their grace period), and the
//! status applied server-side as field manager `mosaic-apps`.

mod batch;
mod expect;
pub mod plan;
mod revision;

use crate::index::{ByOwner, Registry};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use mosaic_crds::Agent;
use mosaic_crds::app::{
    APP_LABEL, App, AppSpec, AppStatus, DELETION_COST_ANNOTATION, InstanceTemplate,
    LAUNCHED_ANNOTATION, REVISION_LABEL,
};
use mosaic_crds::status_apply::StatusApply;
use mosaic_crds::task::{RestartPolicy, Task};
use plan::{Instance, View};
use std::sync::Arc;
use std::time::Duration;

/// The field manager of the App status.
pub const MANAGER: &str = "mosaic-apps";

/// What a reconcile could not do.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An App without a namespace or name (the API never sends one).
    #[error("an App without a namespace or name")]
    Unnamed,
    /// A write the API server did not take.
    #[error("{what} of App {app}: {source}")]
    Write {
        /// What was written.
        what: &'static str,
        /// The App.
        app: String,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },
}

/// What reconciles share.
struct Context {
    client: Client,
    tasks: Store<Task>,
    /// The Tasks in `tasks` by the uid of the App that owns them.
    owned: Arc<ByOwner<Task>>,
    /// Agents, to see which are being drained.
    agents: Store<Agent>,
    expected: Arc<expect::Expectations>,
    /// The status last written for each App (by uid): newer than the
    /// store's copy until the watch brings it back, and this controller is
    /// its only writer.
    written: std::sync::Mutex<std::collections::HashMap<String, AppStatus>>,
    /// When each App (by uid) was last planned: a busy App (thousands of
    /// instances changing) is planned at most every [`PLAN_EVERY`], not once
    /// per change, as each plan reads all its instances.
    planned: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// The shortest time between two plans of one App.
const PLAN_EVERY: Duration = Duration::from_millis(200);

/// Whether a Task is an instance of some App.
fn is_instance(t: &Task) -> bool {
    t.owner_references().iter().any(|o| o.kind == "App")
}

/// Runs the App controller until the process ends, reading Tasks and
/// Agents from the shared reflectors of `registry`.
pub async fn run(client: Client, registry: Registry) {
    let apps = Api::<App>::all(client.clone());
    // The instances: the shared Task cache, an index of them by App, and a
    // stream that wakes the App that owns a changed one.
    let tasks = registry.tasks();
    let owned = ByOwner::of(&tasks, "App");
    let changed = tasks.stream(is_instance);
    // Agents: a drain (a spec change) wakes the Apps with instances there.
    let agents = registry.agents();
    let drains = super::agent_specs::spec_changes(agents.stream(|_| true));
    // Never plan from a Task cache still being filled (at start, after a
    // failover): every App would start its replicas again.
    if !tasks.ready().await || !agents.ready().await {
        return;
    }
    let (store, on_agent) = (tasks.store(), tasks.store());
    let expected = Arc::new(expect::Expectations::default());
    tasks.subscribe(expected.clone());
    let controller = Controller::new(apps, watcher::Config::default().any_semantic())
        .owns_shared_stream(changed)
        .watches_shared_stream(drains, move |agent: Arc<Agent>| {
            let name = agent.name_any();
            let mut apps: Vec<ObjectRef<App>> = on_agent
                .state()
                .iter()
                .filter(|t| {
                    t.status.as_ref().and_then(|s| s.agent.as_deref()) == Some(name.as_str())
                })
                .filter_map(|t| {
                    let o = t.owner_references().iter().find(|o| o.kind == "App")?;
                    Some(ObjectRef::new(&o.name).within(&t.namespace()?))
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            apps.retain(|a| seen.insert(a.clone()));
            apps
        });
    let ctx = Arc::new(Context {
        client,
        tasks: store,
        owned,
        agents: agents.store(),
        expected,
        written: Default::default(),
        planned: Default::default(),
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "App reconcile");
            }
        })
        .await;
}

/// Brings one App's instances one step closer to its spec.
async fn reconcile(app: Arc<App>, ctx: Arc<Context>) -> Result<Action, AppError> {
    let started = std::time::Instant::now();
    let done = reconcile_once(app, ctx).await;
    crate::metrics::reconciled("apps", started);
    done
}

async fn reconcile_once(app: Arc<App>, ctx: Arc<Context>) -> Result<Action, AppError> {
    let (Some(ns), Some(name)) = (app.namespace(), app.metadata.name.clone()) else {
        return Err(AppError::Unnamed);
    };
    let uid = app.uid().unwrap_or_default();
    if app.metadata.deletion_timestamp.is_some() {
        ctx.expected.forget(&uid);
        ctx.written.lock().expect("written lock").remove(&uid);
        ctx.planned.lock().expect("planned lock").remove(&uid);
        return Ok(Action::await_change());
    }
    {
        let mut planned = ctx.planned.lock().expect("planned lock");
        if let Some(last) = planned.get(&uid)
            && last.elapsed() < PLAN_EVERY
        {
            return Ok(Action::requeue(PLAN_EVERY - last.elapsed()));
        }
        planned.insert(uid.clone(), std::time::Instant::now());
    }
    let revision = revision::of(&instance_template(&app.spec));
    let mut instances: Vec<Instance> = ctx
        .owned
        .owned(&uid)
        .iter()
        .filter_map(|r| ctx.tasks.get(r))
        .filter(|t| {
            // As a ReplicaSet's Pods: owned and labelled (a Task whose App
            // label was taken off is no longer counted, and is replaced).
            t.namespace().as_deref() == Some(ns.as_str())
                && t.owner_references().iter().any(|o| o.uid == uid)
                && t.labels().contains_key(APP_LABEL)
        })
        .map(|t| {
            let mut i = instance(&t);
            let agent_name = t.status.as_ref().and_then(|s| s.agent.as_deref());
            let agent = agent_name.and_then(|a| ctx.agents.get(&ObjectRef::new(a)));
            i.draining = agent.as_ref().is_some_and(|a| a.spec.drain.is_some());
            if !i.ports.is_empty() {
                i.host = agent
                    .as_deref()
                    .and_then(|a| a.status.as_ref()?.host().map(String::from))
                    .or_else(|| agent_name.map(String::from));
            }
            i
        })
        .collect();
    ctx.expected.apply(&uid, &mut instances);
    let last = {
        let mut written = ctx.written.lock().expect("written lock");
        // Once the store shows what was written, it is the truth again (a
        // status someone else changed is then seen and corrected).
        if written.get(&uid) == app.status.as_ref() {
            written.remove(&uid);
        }
        written.get(&uid).cloned().or_else(|| app.status.clone())
    };
    let now = jiff::Timestamp::now();
    let p = plan::plan(&View {
        name: &name,
        spec: &app.spec,
        generation: app.metadata.generation,
        revision: &revision,
        instances: &instances,
        status: last.as_ref(),
        now,
    });
    if p.start > 0 || !p.kill.is_empty() || !p.clear.is_empty() {
        tracing::info!(app = %format!("{ns}/{name}"), instances = instances.len(),
            start = p.start, kill = p.kill.len(), clear = p.clear.len(), "App instances");
    }
    // The whole list only where asked for: an App may have thousands.
    if (p.start > 0 || !p.kill.is_empty() || !p.clear.is_empty())
        && tracing::enabled!(tracing::Level::DEBUG)
    {
        let view: Vec<String> = instances
            .iter()
            .map(|i| {
                format!(
                    "{}:{}:{:?}{}{}",
                    i.name,
                    i.revision,
                    i.phase,
                    if i.ready_since.is_some() {
                        ":ready"
                    } else {
                        ""
                    },
                    if i.terminating { ":deleting" } else { "" }
                )
            })
            .collect();
        tracing::debug!(app = %format!("{ns}/{name}"), kill = ?p.kill, clear = ?p.clear,
            ?view, "App instances in detail");
    }
    // The status first: a launch backoff it records holds even if a write
    // below fails (the instances it counts are then being deleted).
    if last.as_ref() != Some(&p.status) {
        let body = StatusApply::of::<App>(&p.status);
        let apps = Api::<App>::namespaced(ctx.client.clone(), &ns);
        if let Err(source) = apps
            .patch_status(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            crate::refused::report(&ctx.client, app.as_ref(), "status", &source).await;
            return Err(write_error("applying the status", &name, source));
        }
        ctx.written
            .lock()
            .expect("written lock")
            .insert(uid.clone(), p.status.clone());
    }
    let api = Api::<Task>::namespaced(ctx.client.clone(), &ns);
    for n in &p.notes {
        crate::events::record(&ctx.client, app.as_ref(), n.type_, n.reason, &n.message).await;
    }
    let victims: Vec<String> = p.clear.iter().chain(&p.kill).cloned().collect();
    let deleted = batch::slow_start(victims, |victim: String| {
        let (api, ctx, uid) = (&api, &ctx, &uid);
        async move {
            match api.delete(&victim, &DeleteParams::default()).await {
                Ok(_) => {
                    ctx.expected.deleted(uid, &victim);
                    Ok(())
                }
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(source) => Err(source),
            }
        }
    })
    .await;
    if let Err(source) = deleted {
        let what = ("FailedDelete", "instances (delete)", "deleting an instance");
        return Err(failed(&ctx.client, &app, what, source).await);
    }
    if p.start > 0 {
        let task = new_instance(&app, &name, &revision);
        let created = batch::slow_start(0..p.start, |_| {
            let mut task = task.clone();
            task.annotations_mut().insert(
                LAUNCHED_ANNOTATION.into(),
                jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string(),
            );
            let (api, ctx, uid) = (&api, &ctx, &uid);
            async move {
                let made = api.create(&PostParams::default(), &task).await?;
                ctx.expected.created(uid, instance(&made));
                Ok(())
            }
        })
        .await;
        if let Err(source) = created {
            let what = ("FailedCreate", "instances (create)", "creating an instance");
            return Err(failed(&ctx.client, &app, what, source).await);
        }
        crate::events::record(
            &ctx.client,
            app.as_ref(),
            "Normal",
            "Started",
            &format!("started {} instance(s) of revision {revision}", p.start),
        )
        .await;
    }
    Ok(match p.requeue {
        Some(d) => Action::requeue(d),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

/// Reports a failed write of instances: a refusal as `refused` does, any
/// other error as a Warning Event on the App (as a ReplicaSet's FailedCreate).
/// `what`: the Event's reason, what was written (for the report) and what
/// was being done (for the error). Returns the reconcile's error.
async fn failed(
    client: &Client,
    app: &App,
    (reason, what, doing): (&str, &str, &'static str),
    e: kube::Error,
) -> AppError {
    if !crate::refused::report(client, app, what, &e).await {
        let message = format!("{what}: {e}");
        crate::events::record(client, app, "Warning", reason, &message).await;
    }
    write_error(doing, &app.name_any(), e)
}

fn write_error(what: &'static str, app: &str, source: kube::Error) -> AppError {
    AppError::Write {
        what,
        app: app.to_string(),
        source,
    }
}

/// After a failed reconcile: try again soon (the controller also retries on
/// any change to the App or its instances).
fn error_policy(app: Arc<App>, e: &AppError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(app = %app.name_any(), error = %e, "reconciling an App; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}

/// How the plan sees a Task.
fn instance(t: &Task) -> Instance {
    let status = t.status.as_ref();
    let ready_since = status.and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == mosaic_crds::common::condition_types::READY && c.status == "True")
            .map(|c| c.last_transition_time.0)
    });
    Instance {
        name: t.name_any(),
        revision: t.labels().get(REVISION_LABEL).cloned().unwrap_or_default(),
        created: t
            .annotations()
            .get(LAUNCHED_ANNOTATION)
            .and_then(|a| a.parse().ok())
            .or_else(|| t.metadata.creation_timestamp.as_ref().map(|c| c.0))
            .unwrap_or_default(),
        phase: status.and_then(|s| s.phase),
        reason: status.and_then(|s| s.reason.clone()),
        ready_since,
        terminating: t.metadata.deletion_timestamp.is_some(),
        draining: false,
        host: None,
        ports: status.map(|s| s.ports.clone()).unwrap_or_default(),
        deletion_cost: t
            .annotations()
            .get(DELETION_COST_ANNOTATION)
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// What an instance is made from: the template, with the App's ports and
/// its constraints ahead of the template's own (the template itself when the
/// App has neither, so its revision hash is the template's).
fn instance_template(spec: &AppSpec) -> InstanceTemplate {
    let mut t = spec.template.clone();
    if !spec.ports.is_empty() {
        t.spec.ports = spec.ports.clone();
    }
    if !spec.constraints.is_empty() {
        let own = std::mem::take(&mut t.spec.constraints);
        t.spec.constraints = spec.constraints.iter().cloned().chain(own).collect();
    }
    t
}

/// A new instance of `app` at `revision`: its template, owned by the App.
fn new_instance(app: &App, name: &str, revision: &str) -> Task {
    let template = instance_template(&app.spec);
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels;
    labels.insert(APP_LABEL.into(), name.into());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut spec = template.spec;
    spec.restart_policy = RestartPolicy::Never;
    let owner = OwnerReference {
        api_version: App::api_version(&()).into_owned(),
        kind: App::kind(&()).into_owned(),
        name: name.into(),
        uid: app.uid().unwrap_or_default(),
        controller: Some(true),
        // Not blockOwnerDeletion: that would need `update` on apps/finalizers
        // where OwnerReferencesPermissionEnforcement runs, for no gain here.
        block_owner_deletion: None,
    };
    Task {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-{revision}-")),
            namespace: app.namespace(),
            labels: Some(labels),
            annotations: Some(meta.annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}
