//! The controllers' Events about the objects they act on, through the one
//! recorder ([`mosaic_crds::events`]), as component `mosaic-controllers`.

use kube::{Client, Resource, ResourceExt};
use mosaic_crds::events::Source;
use std::sync::LazyLock;

static SOURCE: LazyLock<Source> = LazyLock::new(|| Source::new("mosaic-controllers", None));

/// Records one Event about `obj`; a failure is logged, never fatal.
pub async fn record<K>(client: &Client, obj: &K, type_: &str, reason: &str, message: &str)
where
    K: Resource<DynamicType = ()>,
{
    if let Err(e) = mosaic_crds::events::record(client, &SOURCE, obj, type_, reason, message).await
    {
        tracing::warn!(object = %obj.name_any(), reason, error = %e, "recording an event");
    }
}
