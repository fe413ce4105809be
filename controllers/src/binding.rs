//! Binding a Task to an agent. Where the API server serves Mosaic's
//! `tasks/binding` subresource (Mosaic's own does; discovery says so), a bind is
//! one write, as a Pod's is; on a Kubernetes cluster, where custom resources
//! have no such subresource, it is two: the kill-before-delete finalizer, then
//! the status (each resourceVersion-guarded). Either way the Task ends the same,
//! and a `Scheduled` event is recorded.

use crate::task_writes::{patch_status, set_finalizers, task_write};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use mosaic_crds::Task;
use mosaic_crds::binding::{FINALIZER, SUBRESOURCE, TaskBinding};
use mosaic_crds::lifecycle;
use mosaic_crds::ports::TaskPort;

/// How this API server binds Tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// One POST to `tasks/<name>/binding`.
    Subresource,
    /// A patch of the finalizers, then one of the status.
    TwoWrites,
}

impl Path {
    /// Asks discovery whether `tasks/binding` is served (two writes when it is
    /// not, or when discovery cannot be read).
    pub async fn discover(client: &Client) -> Self {
        let gv = format!("{}/{}", mosaic_crds::GROUP, mosaic_crds::VERSION);
        let wanted = format!("tasks/{SUBRESOURCE}");
        match client.list_api_group_resources(&gv).await {
            Ok(list) if list.resources.iter().any(|r| r.name == wanted) => Self::Subresource,
            Ok(_) => Self::TwoWrites,
            Err(e) => {
                tracing::warn!(error = %e, "reading discovery; binding with two writes");
                Self::TwoWrites
            }
        }
    }
}

/// Binds `t` to `agent` with the host `ports` given there
/// (resourceVersion-guarded): whether it is bound.
pub async fn bind_to(
    client: &Client,
    path: Path,
    t: &Task,
    agent: &str,
    ports: Vec<TaskPort>,
) -> bool {
    let started = std::time::Instant::now();
    let bound = match path {
        Path::Subresource => bind_once(client, t, agent, ports).await,
        Path::TwoWrites => bind_twice(client, t, agent, &ports).await,
    };
    if bound {
        let m = &crate::metrics::METRICS;
        m.bind_seconds.observe(started.elapsed().as_secs_f64());
        m.placements.inc();
        tracing::info!(task = %t.name_any(), agent, "scheduled");
        let message = format!("bound to agent {agent}");
        crate::events::record(client, t, "Normal", "Scheduled", &message).await;
    }
    bound
}

async fn bind_once(client: &Client, t: &Task, agent: &str, ports: Vec<TaskPort>) -> bool {
    let api: Api<Task> = Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
    let name = t.name_any();
    let body = TaskBinding::new(&name, t.resource_version(), agent, ports);
    let pp = PostParams {
        field_manager: Some(crate::task_writes::MANAGER.into()),
        ..PostParams::default()
    };
    let call = api.create_subresource::<_, kube::core::Status>(SUBRESOURCE, &name, &pp, &body);
    task_write(client, t, "binding", call).await.is_some()
}

async fn bind_twice(client: &Client, t: &Task, agent: &str, ports: &[TaskPort]) -> bool {
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
    patch_status(
        client,
        t,
        &lifecycle::bound(agent, ports, t.metadata.generation, lifecycle::now()),
    )
    .await
}
