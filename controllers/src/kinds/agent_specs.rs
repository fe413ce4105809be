//! A controller of Agents that only their specs wake (a drain or a
//! maintenance window set, moved or cleared), not the agents' own status
//! writes: what the drain and maintenance controllers share.

use crate::index::Registry;
use futures::{Stream, StreamExt};
use kube::runtime::controller::{Action, Controller};
use kube::{Client, ResourceExt};
use mosaic_crds::Agent;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// The Agents of `changed` whose spec (generation) changed since they were
/// last seen (or that are new, or have no generation), as kube-runtime's
/// `predicates::generation` passes them: an Agent's own status writes (its
/// heartbeat, usage) do not wake the drain and maintenance controllers.
pub fn spec_changes(
    changed: impl Stream<Item = Arc<Agent>> + Send + 'static,
) -> impl Stream<Item = Arc<Agent>> + Send + 'static {
    let mut seen: HashMap<String, i64> = HashMap::new();
    changed.filter(move |a| {
        let key = a.uid().unwrap_or_else(|| a.name_any());
        let new = match a.metadata.generation {
            Some(g) => seen.insert(key, g) != Some(g),
            None => true,
        };
        std::future::ready(new)
    })
}

/// Runs `reconcile` (with `error_policy`) for each Agent whose spec
/// changed, until the process ends; deadlines come back as requeues.
pub async fn run<Fut, E>(
    client: Client,
    registry: Registry,
    reconcile: fn(Arc<Agent>, Arc<Client>) -> Fut,
    error_policy: fn(Arc<Agent>, &E, Arc<Client>) -> Action,
) where
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let agents = registry.agents();
    let changed = spec_changes(agents.stream(|_| true));
    if !agents.ready().await {
        return;
    }
    Controller::for_shared_stream(changed, agents.store())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}
