//! core/v1 and events.k8s.io/v1 Events are two views of one store: what a
//! kube-rs `Recorder` writes through events.k8s.io is what `kubectl describe`
//! and `kubectl get events` read through core/v1, and the other way round.
//! They expire after `--event-ttl`, as in kube-apiserver.

use crate::support::{TestServer, task_yaml, tasks_api, write_file};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::Resource;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_recorder_event_shows_in_kubectl_describe_and_core_events_in_events_v1() {
    let s = TestServer::start().unwrap();
    let file = write_file(s.dir.path(), "task.yaml", &task_yaml("noted", "100m"));
    s.kubectl_ok(&["apply", "-f", &file]);
    let client = s.client().await.unwrap();
    let task = tasks_api(client.clone()).get("noted").await.unwrap();
    let reference = task.object_ref(&crate::support::mosaic("Task", "tasks"));

    // A kube-rs Recorder writes events.k8s.io/v1 Events; the second identical
    // event is a merge patch raising the series count.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "e2e-controller".into(),
            instance: Some("e2e-1".into()),
        },
    );
    let ev = Event {
        type_: EventType::Warning,
        reason: "Unplaceable".into(),
        note: Some("no agent offers 100m cpus".into()),
        action: "Schedule".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();

    let out = s.kubectl_ok(&["describe", "task", "noted"]);
    let line = out
        .lines()
        .find(|l| l.contains("Unplaceable"))
        .unwrap_or_else(|| panic!("describe shows no Recorder event:\n{out}"));
    assert!(line.contains("Warning"), "{line}");
    assert!(line.contains("e2e-controller"), "From column: {line}");
    assert!(line.contains("no agent offers 100m cpus"), "{line}");

    // The same object through core/v1, with core's field names.
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().fields("involvedObject.name=noted");
    let listed = core.list(&lp).await.unwrap().items;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let e = &listed[0];
    assert_eq!(e.message.as_deref(), Some("no agent offers 100m cpus"));
    assert_eq!(e.reporting_component.as_deref(), Some("e2e-controller"));
    assert_eq!(e.involved_object.uid, task.metadata.uid);
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
    let json = s.kubectl_ok(&["get", "events", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["items"][0]["apiVersion"], "v1");
    assert_eq!(json["items"][0]["involvedObject"]["name"], "noted");

    // A core/v1 Event is an events.k8s.io/v1 Event too: listed, got and
    // watched with that API's names, selected by `regarding.name`.
    let v1: Api<EventV1> = Api::namespaced(client.clone(), "default");
    let mut watch = v1
        .watch(
            &WatchParams::default(),
            &listed[0].metadata.resource_version.clone().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let core_ev: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "noted.core"},
        "involvedObject": {"apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "name": "noted", "namespace": "default"},
        "reason": "Started", "message": "written through core/v1", "type": "Normal",
        "source": {"component": "mosaic-agent", "host": "a1"}, "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"
    }))
    .unwrap();
    core.create(&PostParams::default(), &core_ev).await.unwrap();
    let got = v1.get("noted.core").await.unwrap();
    assert_eq!(got.note.as_deref(), Some("written through core/v1"));
    assert_eq!(
        got.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("noted")
    );
    assert_eq!(
        got.deprecated_source
            .as_ref()
            .and_then(|s| s.host.as_deref()),
        Some("a1")
    );
    assert_eq!(got.deprecated_count, Some(1));
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = watch.next().await {
            if let WatchEvent::Added(e) = e.unwrap()
                && e.metadata.name.as_deref() == Some("noted.core")
            {
                return e;
            }
        }
        panic!("the events.k8s.io watch ended");
    })
    .await
    .expect("the events.k8s.io watch saw the core/v1 Event within 10 s");
    assert_eq!(seen.note.as_deref(), Some("written through core/v1"));
    let selected = v1
        .list(&ListParams::default().fields("regarding.name=noted,reason=Started"))
        .await
        .unwrap()
        .items;
    assert_eq!(selected.len(), 1, "{selected:?}");
    assert_eq!(selected[0].metadata.name.as_deref(), Some("noted.core"));

    // Deleting through one view removes it from both.
    v1.delete("noted.core", &Default::default()).await.unwrap();
    assert!(core.get_opt("noted.core").await.unwrap().is_none());
}

/// A core/v1 Event last seen `ago` seconds before now.
fn event_seen(name: &str, ago: i64) -> CoreEvent {
    let at = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(ago)).to_string();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Task", "name": "t", "namespace": "default"},
        "reason": "Tested", "message": "an event", "type": "Normal",
        "firstTimestamp": at, "lastTimestamp": at, "count": 1}))
    .unwrap()
}

#[tokio::test]
async fn events_expire_after_the_event_ttl_as_in_kube_apiserver() {
    let s = TestServer::start_with(&["--event-ttl", "6s"]).unwrap();
    let api: Api<CoreEvent> = Api::namespaced(s.client().await.unwrap(), "default");
    let pp = PostParams::default();
    // The TTL runs from when an Event was last seen, its creation included: one
    // created now lives six seconds, however old a lastTimestamp it reports.
    api.create(&pp, &event_seen("first", 3600)).await.unwrap();
    let first_at = std::time::Instant::now();
    // Time must pass between the two writes for their TTLs to differ.
    tokio::time::sleep(Duration::from_secs(3)).await;
    api.create(&pp, &event_seen("second", 0)).await.unwrap();
    let wait = |name: &'static str, secs| {
        let api = api.clone();
        async move {
            crate::support::wait_for(Duration::from_secs(secs), name, || async {
                api.get_opt(name).await.unwrap().is_none()
            })
            .await
        }
    };
    wait("first", 10).await.unwrap();
    let lived = first_at.elapsed();
    assert!(
        lived >= Duration::from_secs(4),
        "the first event went after {lived:?}"
    );
    assert!(
        api.get_opt("second").await.unwrap().is_some(),
        "the second event went with the first"
    );
    wait("second", 10).await.unwrap();
}
