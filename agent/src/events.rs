//! The agent's Events about the objects it looks after (a task's life, its
//! own registration), through the one recorder ([`mosaic_crds::events`]),
//! as component `mosaic-agent`, instance the agent's name, so `kubectl
//! describe task X` shows a task's life and where it ran.

use kube::{Client, Resource, ResourceExt};
use mosaic_crds::events::Source;

/// Records one Event about `obj` from agent `host`; a failure is logged, never fatal.
pub async fn record<K>(
    client: &Client,
    host: &str,
    obj: &K,
    type_: &str,
    reason: &str,
    message: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let source = Source::new("mosaic-agent", Some(host));
    if let Err(e) = mosaic_crds::events::record(client, &source, obj, type_, reason, message).await
    {
        tracing::debug!(object = %obj.name_any(), reason, error = %e, "recording an event");
    }
}
