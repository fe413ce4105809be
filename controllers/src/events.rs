//! Events (core/v1) for the steps of an object's life, with the object as
//! `involvedObject`, so `kubectl describe` and `kubectl get events` show them.

use kube::api::PostParams;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

/// Records one Event about `obj`; a failure is logged, never fatal.
pub async fn record<K>(client: &Client, obj: &K, type_: &str, reason: &str, message: &str)
where
    K: Resource<DynamicType = ()>,
{
    let ns = obj.namespace().unwrap_or_else(|| "default".into());
    let now = crate::scheduler::now();
    let mut involved = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "name": obj.name_any(),
                              "namespace": obj.namespace(), "uid": obj.uid(), "resourceVersion": obj.resource_version()});
    if let Some(o) = involved.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{}.", obj.name_any())},
        "involvedObject": involved,
        "type": type_, "reason": reason, "message": message,
        "source": {"component": "mosaic-controllers"},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1});
    // Written as JSON and the answer not decoded: a bind records one per task.
    let url = k8s_openapi::api::core::v1::Event::url_path(&(), Some(&ns));
    let body = serde_json::to_vec(&ev).expect("JSON serialises");
    let sent = match kube::core::Request::new(url).create(&PostParams::default(), body) {
        Ok(req) => client.request_text(req).await.map(drop),
        Err(e) => Err(kube::Error::BuildRequest(e)),
    };
    if let Err(e) = sent {
        tracing::warn!(object = %obj.name_any(), reason, error = %e, "recording an event");
    }
}
