//! A Task's conditions are a list keyed by type, and each writer owns its
//! own: the binder's `Scheduled` survives the agent's `Ready` writes (which
//! are server-side applies as `mosaic-agent`), and a condition whose status
//! did not change keeps its `lastTransitionTime`.

use crate::support::{TestServer, tasks_api, wait_task};
use kube::api::PostParams;
use serde_json::{Value, json};
use std::time::Duration;

fn condition<'a>(st: &'a Value, type_: &str) -> Option<&'a Value> {
    st["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test]
async fn a_healthy_task_keeps_its_scheduled_condition_and_its_transition_times() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-c", "cpus=2,memory=1Gi");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = tasks_api(s.client().await.unwrap());
    let t: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "served"},
        "spec": {"command": format!("exec python3 -m http.server {port} --bind 127.0.0.1"),
                 "resources": {"cpus": "200m", "memory": "64Mi"},
                 "healthCheck": {"http": {"port": port, "path": "/"}, "initialDelaySeconds": 1,
                                 "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 3}}}))
    .unwrap();
    api.create(&PostParams::default(), &t).await.unwrap();
    // Running, health check pending: the agent's Ready=False and the binder's Scheduled.
    let pending = wait_task(&api, "served", Duration::from_secs(30), |st| {
        st["phase"] == "Running"
    })
    .await
    .unwrap();
    let scheduled = condition(&pending, "Scheduled")
        .unwrap_or_else(|| panic!("no Scheduled condition once Running: {pending}"))
        .clone();
    assert_eq!(scheduled["status"], "True", "{pending}");
    // Healthy: Ready=True, written by the agent alone.
    let healthy = wait_task(&api, "served", Duration::from_secs(30), |st| {
        condition(st, "Ready").is_some_and(|c| c["status"] == "True")
    })
    .await
    .unwrap();
    let types = s.kubectl_ok(&[
        "get",
        "task",
        "served",
        "-o",
        "jsonpath={.status.conditions[*].type}",
    ]);
    let mut types: Vec<&str> = types.split_whitespace().collect();
    types.sort();
    assert_eq!(types, ["Ready", "Scheduled"], "{healthy}");
    assert_eq!(
        condition(&healthy, "Scheduled"),
        Some(&scheduled),
        "the Scheduled condition changed though its status did not: {healthy}"
    );
    // Each writer shows as the manager of its own fields.
    let managed = s.kubectl_ok(&[
        "get",
        "task",
        "served",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation}/{.subresource} {end}",
    ]);
    assert!(managed.contains("mosaic-agent/Apply/status"), "{managed}");
    assert!(
        managed.contains("mosaic-controllers/Update/status"),
        "the bind is the scheduler's: {managed}"
    );
    // The usage samples (every few seconds) do not move Ready's transition time.
    let ready_since = condition(&healthy, "Ready").unwrap()["lastTransitionTime"].clone();
    let later = wait_task(&api, "served", Duration::from_secs(30), |st| {
        st["usage"].is_object()
    })
    .await
    .unwrap();
    assert_eq!(
        condition(&later, "Ready").unwrap()["lastTransitionTime"],
        ready_since,
        "{later}"
    );
    assert_eq!(condition(&later, "Scheduled"), Some(&scheduled), "{later}");
}
