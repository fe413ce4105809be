//! Health checks: a task is Ready only once its check passes, and a check
//! that starts failing kills the task with reason HealthCheckFailed.

use crate::support::{TestServer, tasks_api, wait_task};
use kube::api::PostParams;
use serde_json::{Value, json};
use std::time::Duration;

fn ready(st: &Value) -> Option<&str> {
    st["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?["status"]
        .as_str()
}

/// Runs a task whose check passes at first and then fails; asserts Ready, then the kill.
async fn healthy_then_killed(s: &TestServer, name: &str, command: &str, check: Value) {
    let api = tasks_api(s.client().await.unwrap());
    let t: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": command, "resources": {"cpus": "200m", "memory": "64Mi"},
                 "killGracePeriodSeconds": 2,
                 "healthCheck": check}}))
    .unwrap();
    api.create(&PostParams::default(), &t).await.unwrap();
    let st = wait_task(&api, name, Duration::from_secs(30), |s| {
        s["phase"] == "Running" && ready(s) == Some("True")
    })
    .await
    .unwrap_or_else(|e| panic!("{name} never became Ready: {e}"));
    let group = st["message"]
        .as_str()
        .and_then(|m| m.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .and_then(rustix::process::Pid::from_raw)
        .unwrap_or_else(|| panic!("no process id in {st}"));
    let st = wait_task(&api, name, Duration::from_secs(30), |s| {
        s["phase"] == "Failed"
    })
    .await
    .unwrap_or_else(|e| panic!("{name} was not killed by its failing check: {e}"));
    assert_eq!(st["reason"], "HealthCheckFailed", "{st}");
    assert_eq!(ready(&st), Some("False"), "{st}");
    assert!(
        rustix::process::test_kill_process_group(group).is_err(),
        "the unhealthy task's processes remain"
    );
}

#[tokio::test]
async fn an_exec_check_that_starts_failing_kills_the_task() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-h", "cpus=2,memory=1Gi");
    healthy_then_killed(
        &s,
        "exec-checked",
        // Healthy for three seconds (the check runs in the sandbox), then not.
        "touch ok; sleep 3; rm ok; sleep 300",
        json!({"exec": {"command": "test -e ok"}, "initialDelaySeconds": 0,
               "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 2}),
    )
    .await;
}

#[tokio::test]
async fn an_http_check_against_a_server_that_stops_kills_the_task() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-h2", "cpus=2,memory=1Gi");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    healthy_then_killed(
        &s,
        "http-checked",
        &format!("timeout 6 python3 -m http.server {port} --bind 127.0.0.1; sleep 300"),
        // Python takes a moment to start serving.
        json!({"http": {"port": port, "path": "/"}, "initialDelaySeconds": 2,
               "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 2}),
    )
    .await;
}
