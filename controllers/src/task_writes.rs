//! The controllers' writes of Tasks: status (a resourceVersion-guarded merge
//! patch of a typed [`TaskStatusPatch`]), finalizers and their release, a
//! restart and Unschedulable, each within [`API_TIMEOUT`] and a refusal
//! reported loudly. The scheduler, the binder, offers and the view all write
//! through here, beneath the scheduler's loop (nothing imports up into it).

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mosaic_crds::Task;
use mosaic_crds::lifecycle::{self, TaskStatusPatch};
use mosaic_crds::status_apply::GuardedStatus;
use serde_json::json;
use std::time::Duration;

/// The longest a controller waits for one write of a Task.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// The field manager of the scheduler's writes (binds and their finalizers,
/// task phases it sets, the status of Roles, Frameworks, Agents and
/// Reservations): named explicitly, the name its User-Agent gave them before
/// (so objects written by earlier versions keep one owner for these fields).
pub const MANAGER: &str = "mosaic-controllers";

/// The parameters of the scheduler's merge patches: its own field manager,
/// so `managedFields` shows what it wrote.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Writes a Task's status (resourceVersion-guarded); whether it was stored.
pub async fn patch_status(client: &Client, t: &Task, status: &TaskStatusPatch) -> bool {
    let api: Api<Task> = Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
    // The resourceVersion makes this a compare-and-swap: a task changed since
    // this view was taken is left for the next cycle.
    let body = GuardedStatus::of(t, status);
    let (name, pp, patch) = (t.name_any(), patch_params(), Patch::Merge(&body));
    task_write(client, t, "status", api.patch_status(&name, &pp, &patch))
        .await
        .is_some()
}

/// Awaits one write of a Task's (`what`: "status", "finalizers", "bind") within
/// [`API_TIMEOUT`]; a failure or a timeout is logged and left for a later cycle.
/// A refusal (403) is reported loudly ([`crate::refused`]).
pub async fn task_write<T>(
    client: &Client,
    t: &Task,
    what: &str,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Option<T> {
    let task = t.name_any();
    let task = task.as_str();
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            if !crate::refused::report(client, t, what, &e).await {
                tracing::debug!(task, error = %e, "{what} not written (will retry)");
            }
            None
        }
        Err(_) => {
            tracing::warn!(task, "{what} write timed out (will retry)");
            None
        }
    }
}

pub use mosaic_crds::binding::FINALIZER;

/// Patches the Task's finalizers (resourceVersion-guarded); the updated Task on success.
pub async fn set_finalizers(client: &Client, t: &Task, finalizers: Vec<String>) -> Option<Task> {
    let api: Api<Task> = Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
    let body =
        json!({"metadata": {"resourceVersion": t.resource_version(), "finalizers": finalizers}});
    let (name, pp, patch) = (t.name_any(), patch_params(), Patch::Merge(&body));
    task_write(client, t, "finalizers", api.patch(&name, &pp, &patch)).await
}

/// Lets a deleted task go: drops Mosaic's finalizer.
pub async fn release(client: &Client, t: &Task) {
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

/// Puts a task that ended back in the queue for its next attempt.
pub async fn restart(client: &Client, t: &Task, attempt: u32) {
    let prev = t
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    let message = format!("restart {attempt} after: {prev}");
    let status = lifecycle::restarting(attempt, &message, t.metadata.generation, lifecycle::now());
    let stored = patch_status(client, t, &status).await;
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

/// Marks a task Unschedulable. `waits`: it waits for its group to move (its
/// constraints), so it is not Stalled (kstatus then waits, as for a Pending
/// Pod), while one no agent could ever run is.
pub async fn mark_unschedulable(
    client: &Client,
    t: &Task,
    message: &str,
    reason: &str,
    waits: bool,
) {
    let st = t.status.as_ref();
    if st.and_then(|s| s.reason.as_deref()) == Some("Unschedulable")
        && st.and_then(|s| s.message.as_deref()) == Some(message)
        && st.and_then(|s| s.observed_generation) == t.metadata.generation
    {
        return; // Already says so; it is looked at again every cycle, and bound once an agent fits.
    }
    crate::events::record(client, t, "Warning", "Unschedulable", message).await;
    let status = lifecycle::unschedulable(
        message,
        reason,
        waits,
        t.metadata.generation,
        lifecycle::now(),
    );
    patch_status(client, t, &status).await;
}
