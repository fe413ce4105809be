//! The controllers' writes of a Task, against a fake API ([`crate::fake_api`]):
//! each is checked for its verb, path, field manager and typed body, in
//! milliseconds.

use crate::fake_api::{self, FakeApi, Sent};
use mosaic_crds::Task;
use mosaic_crds::ports::TaskPort;
use mosaic_crds::task::{TaskPhase, TaskStatus};
use serde_json::{Value, json};
use std::time::Duration;

const TASKS: &str = "/apis/mosaic.dev/v1alpha1/namespaces/default/tasks/t";

fn task(status: Option<TaskStatus>) -> Task {
    let mut t: Task = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "t", "namespace": "default", "resourceVersion": "7",
                     "generation": 1, "uid": "u-1"},
        "spec": {"command": "true"}}))
    .unwrap();
    t.status = status;
    t
}

fn types_and_statuses(status: &Value) -> Vec<(String, String)> {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The next request, answered as a status write is (with the Task).
async fn status_write(api: &mut FakeApi, t: &Task) -> Sent {
    api.next(200, serde_json::to_value(t).unwrap()).await
}

fn assert_guarded_status_patch(sent: &Sent) {
    assert_eq!(sent.method, http::Method::PATCH, "{sent:?}");
    assert!(
        sent.uri.starts_with(&format!("{TASKS}/status?")),
        "{sent:?}"
    );
    assert!(
        sent.uri.contains("fieldManager=mosaic-controllers"),
        "{sent:?}"
    );
    assert_eq!(sent.content_type, "application/merge-patch+json");
    assert_eq!(
        sent.body["metadata"],
        json!({"resourceVersion": "7"}),
        "guarded by the revision read: {sent:?}"
    );
}

#[tokio::test]
async fn a_task_on_an_offer_it_cannot_have_is_marked_error() {
    let (client, mut api) = fake_api::client();
    let t = task(None);
    let write = tokio::spawn({
        let (client, t) = (client.clone(), t.clone());
        async move { crate::offers::invalid(&client, &t, "it is gone").await }
    });
    let sent = status_write(&mut api, &t).await;
    assert_guarded_status_patch(&sent);
    let st = &sent.body["status"];
    assert_eq!(st["phase"], "Error");
    assert_eq!(st["reason"], "InvalidOffer");
    assert_eq!(st["message"], "cannot launch on the offer: it is gone");
    assert_eq!(st["observedGeneration"], 1);
    assert_eq!(
        types_and_statuses(st),
        [
            ("Ready".into(), "False".into()),
            ("Stalled".into(), "True".into())
        ]
    );
    write.await.unwrap();
}

#[tokio::test]
async fn a_restart_unbinds_the_task_clears_its_run_and_says_after_what() {
    let (client, mut api) = fake_api::client();
    let t = task(Some(TaskStatus {
        phase: Some(TaskPhase::Failed),
        agent: Some("a1".into()),
        ports: vec![TaskPort {
            name: "http".into(),
            port: 31000,
        }],
        start_time: Some("2026-12-07T00:00:00Z".into()),
        message: Some("the task exited 1".into()),
        ..TaskStatus::default()
    }));
    let write = tokio::spawn({
        let (client, t) = (client.clone(), t.clone());
        async move { crate::task_writes::restart(&client, &t, 2).await }
    });
    let sent = status_write(&mut api, &t).await;
    assert_guarded_status_patch(&sent);
    let st = sent.body["status"].as_object().unwrap();
    for cleared in ["agent", "ports", "startTime", "usage"] {
        assert_eq!(st.get(cleared), Some(&Value::Null), "{cleared}: {st:?}");
    }
    assert_eq!(st["phase"], "Pending");
    assert_eq!(st["attempt"], 2);
    assert_eq!(st["reason"], "Restarting");
    assert_eq!(st["message"], "restart 2 after: the task exited 1");
    assert_eq!(
        types_and_statuses(&sent.body["status"]),
        [
            ("Scheduled".into(), "False".into()),
            ("Ready".into(), "False".into())
        ]
    );
    // Then the Event that says so.
    let ev = api.next(201, json!({})).await;
    assert_eq!(ev.method, http::Method::POST);
    assert!(
        ev.uri
            .starts_with("/apis/events.k8s.io/v1/namespaces/default/events"),
        "{ev:?}"
    );
    assert_eq!(ev.body["reason"], "Restarting");
    assert_eq!(ev.body["regarding"]["name"], "t");
    assert_eq!(ev.body["regarding"]["uid"], "u-1");
    assert_eq!(ev.body["reportingController"], "mosaic-controllers");
    write.await.unwrap();
}

#[tokio::test]
async fn an_unschedulable_task_is_marked_once_and_stalls_only_when_it_never_fits() {
    let (client, mut api) = fake_api::client();
    let t = task(None);
    let message = "no agent could ever run this task: too big";
    let write = tokio::spawn({
        let (client, t) = (client.clone(), t.clone());
        async move {
            crate::task_writes::mark_unschedulable(&client, &t, message, "too big", false).await
        }
    });
    let ev = api.next(201, json!({})).await;
    assert_eq!(ev.body["type"], "Warning");
    assert_eq!(ev.body["reason"], "Unschedulable");
    let sent = status_write(&mut api, &t).await;
    assert_guarded_status_patch(&sent);
    let st = &sent.body["status"];
    assert_eq!(
        (st["phase"].as_str(), st["reason"].as_str()),
        (Some("Pending"), Some("Unschedulable"))
    );
    assert_eq!(
        types_and_statuses(st),
        [
            ("Scheduled".into(), "False".into()),
            ("Stalled".into(), "True".into()),
            ("Ready".into(), "False".into())
        ]
    );
    write.await.unwrap();
    // A task that says so already is not written again (it is looked at every cycle).
    let marked = task(Some(TaskStatus {
        reason: Some("Unschedulable".into()),
        message: Some(message.into()),
        observed_generation: Some(1),
        ..TaskStatus::default()
    }));
    tokio::time::timeout(
        Duration::from_secs(2),
        crate::task_writes::mark_unschedulable(&client, &marked, message, "too big", false),
    )
    .await
    .expect("no request sent (it would wait for an answer)");
}

#[tokio::test]
async fn a_bind_is_one_post_of_the_binding_subresource_as_the_scheduler() {
    let (client, mut api) = fake_api::client();
    let t = task(None);
    let placed = crate::metrics::METRICS.placements.get();
    let ports = vec![TaskPort {
        name: "http".into(),
        port: 31005,
    }];
    let write = tokio::spawn({
        let (client, t) = (client.clone(), t.clone());
        async move {
            crate::binding::bind_to(&client, crate::binding::Path::Subresource, &t, "a1", ports)
                .await
        }
    });
    let sent = api
        .next(
            201,
            serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
                status: Some("Success".into()),
                code: Some(201),
                ..Default::default()
            })
            .unwrap(),
        )
        .await;
    assert_eq!(sent.method, http::Method::POST);
    assert!(
        sent.uri.starts_with(&format!("{TASKS}/binding?")),
        "{sent:?}"
    );
    assert!(
        sent.uri.contains("fieldManager=mosaic-controllers"),
        "{sent:?}"
    );
    assert_eq!(sent.body["kind"], "TaskBinding");
    assert_eq!(sent.body["metadata"]["resourceVersion"], "7");
    assert_eq!(
        sent.body["target"],
        json!({"agent": "a1", "ports": [{"name": "http", "port": 31005}]})
    );
    let ev = api.next(201, json!({})).await;
    assert_eq!(ev.body["reason"], "Scheduled");
    assert_eq!(ev.body["note"], "bound to agent a1");
    assert!(write.await.unwrap(), "bound");
    assert!(crate::metrics::METRICS.placements.get() > placed);
    assert!(crate::metrics::text().contains("mosaic_scheduler_bind_duration_seconds_count"));
}
