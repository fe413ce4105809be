//! A controller of Agents that only their specs wake (a drain or a
//! maintenance window set, moved or cleared), not the agents' own status
//! writes: what the drain and maintenance controllers share.

use futures::StreamExt;
use kube::Client;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector;
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates};
use mosaic_crds::Agent;
use std::future::Future;
use std::sync::Arc;

/// Runs `reconcile` (with `error_policy`) for each Agent whose spec
/// changed, until the process ends; deadlines come back as requeues.
pub async fn run<Fut, E>(
    client: Client,
    reconcile: fn(Arc<Agent>, Arc<Client>) -> Fut,
    error_policy: fn(Arc<Agent>, &E, Arc<Client>) -> Action,
) where
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let agents = crate::watches::agents(client.clone())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    Controller::for_stream(agents, store)
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}
