//! Events (core/v1) about the objects the agent looks after, with the object
//! as `involvedObject`, so `kubectl describe task X` shows a task's life.

use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

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
    let now = crate::executor::now();
    let ev: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{}.", obj.name_any())},
        "involvedObject": {"apiVersion": K::api_version(&()), "kind": K::kind(&()), "name": obj.name_any(),
                           "namespace": obj.namespace(), "uid": obj.uid()},
        "type": type_, "reason": reason, "message": message,
        "source": {"component": "mosaic-agent", "host": host},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1}))
    .expect("a valid Event");
    let ns = obj.namespace().unwrap_or_else(|| "default".into());
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        tracing::debug!(object = %obj.name_any(), reason, error = %e, "recording an event");
    }
}
