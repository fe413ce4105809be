//! Events (core/v1) for the steps of an object's life, with the object as
//! `involvedObject`, so `kubectl describe` and `kubectl get events` show them.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use kube::api::{ObjectMeta, PostParams};
use kube::{Client, Resource, ResourceExt};

/// Records one Event about `obj`; a failure is logged, never fatal.
pub async fn record<K>(client: &Client, obj: &K, type_: &str, reason: &str, message: &str)
where
    K: Resource<DynamicType = ()>,
{
    let ns = obj.namespace().unwrap_or_else(|| "default".into());
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(mosaic_crds::lifecycle::now());
    let ev = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", obj.name_any())),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(obj.name_any()),
            namespace: obj.namespace(),
            uid: obj.uid(),
            resource_version: obj.resource_version(),
            ..ObjectReference::default()
        },
        type_: Some(type_.into()),
        reason: Some(reason.into()),
        message: Some(message.into()),
        source: Some(EventSource {
            component: Some("mosaic-controllers".into()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    };
    // Written as JSON and the answer not decoded: a bind records one per task.
    let url = Event::url_path(&(), Some(&ns));
    let body = serde_json::to_vec(&ev).expect("JSON serialises");
    let sent = match kube::core::Request::new(url).create(&PostParams::default(), body) {
        Ok(req) => client.request_text(req).await.map(drop),
        Err(e) => Err(kube::Error::BuildRequest(e)),
    };
    if let Err(e) = sent {
        tracing::warn!(object = %obj.name_any(), reason, error = %e, "recording an event");
    }
}
