//! `mosaic logs`: a task's output over the agent's HTTPS endpoint, guarded by
//! the cluster's credentials; and the agent's Prometheus `/metrics`.

use crate::support::{TestServer, mosaic_bin, tasks_api, wait_task};
use kube::api::PostParams;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn logs(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(mosaic_bin())
        .arg("logs")
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("running mosaic logs")
}

#[tokio::test]
async fn logs_follow_a_task_to_its_end_and_refuse_whoever_may_not_read_them() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-l", "cpus=2,memory=1Gi");
    let client = s.client().await.unwrap();
    let api = tasks_api(client.clone());
    let t: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "counter"},
        "spec": {"command": "for i in 1 2 3 4 5; do echo line $i; echo oops $i >&2; sleep 0.3; done",
                 "resources": {"cpus": "100m", "memory": "32Mi"}}}))
    .unwrap();
    api.create(&PostParams::default(), &t).await.unwrap();
    wait_task(&api, "counter", Duration::from_secs(30), |s| {
        s["phase"] == "Running"
    })
    .await
    .unwrap();
    // Started while the task runs, -f prints everything and ends when the task does.
    let out = logs(&s.kubeconfig(), &["-f", "counter"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line 1\nline 2\nline 3\nline 4\nline 5\n"
    );
    // -f ends when the task's process has ended; its status says so a moment later.
    wait_task(&api, "counter", Duration::from_secs(10), |s| {
        s["phase"] == "Finished"
    })
    .await
    .unwrap();
    let out = logs(&s.kubeconfig(), &["counter", "--stderr"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "oops 1\noops 2\noops 3\noops 4\noops 5\n"
    );

    // The agent identity may not even read the task.
    let out = logs(&s.agent_kubeconfig(), &["counter"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("Forbidden"), "{err}");
    // A user who may read Tasks but not their output (`get tasks/log`) is
    // refused by the API server, which serves the log subresource.
    let reader = s.service_account_kubeconfig("default", "reader");
    s.kubectl_ok(&[
        "create",
        "role",
        "task-reader",
        "--verb=get",
        "--resource=tasks.mosaic.dev",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "task-reader",
        "--role=task-reader",
        "--serviceaccount=default:reader",
    ]);
    // (`mosaic logs` also reads the Agent, for its endpoint.)
    s.kubectl_ok(&[
        "create",
        "clusterrole",
        "agent-reader",
        "--verb=get",
        "--resource=agents.mosaic.dev",
    ]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "agent-reader",
        "--clusterrole=agent-reader",
        "--serviceaccount=default:reader",
    ]);
    let out = logs(&reader, &["counter"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("Forbidden") && err.contains("tasks/log"),
        "{err}"
    );
    // A task that does not exist, said plainly.
    let out = logs(&s.kubeconfig(), &["missing"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("there is no task missing in namespace default"),
        "{err}"
    );

    // /metrics, with the admin's credentials; the agent's endpoint is
    // verified against the agent CA, which signed it at join (as the API server does).
    let agent: kube::api::DynamicObject =
        kube::Api::all_with(client, &crate::support::mosaic("Agent", "agents"))
            .get("node-l")
            .await
            .unwrap();
    let status = &agent.data["status"];
    let kc = kube::config::Kubeconfig::read_from(s.kubeconfig()).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.cluster_url = status["address"].as_str().unwrap().parse().unwrap();
    let agent_ca = std::fs::read_to_string(s.dir.path().join("pki/agent-ca.crt")).unwrap();
    cfg.root_cert = Some(vec![mosaic_agent::certificate_der(&agent_ca).unwrap()]);
    let agent_client = kube::Client::try_from(cfg).unwrap();
    let metrics = agent_client
        .request_text(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert!(
        metrics.contains("mosaic_agent_launches_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mosaic_agent_runs_ended_total{phase=\"Finished\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mosaic_agent_launch_duration_seconds_count 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_ended_runs_sandbox_is_removed_after_the_gc_delay() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent_with("node-gc", "cpus=1,memory=1Gi", &["--gc-delay", "1s"]);
    let api = tasks_api(s.client().await.unwrap());
    let t: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "brief"},
        "spec": {"command": "echo short-lived", "resources": {"cpus": "100m", "memory": "32Mi"}}}))
    .unwrap();
    api.create(&PostParams::default(), &t).await.unwrap();
    wait_task(&api, "brief", Duration::from_secs(30), |s| {
        s["phase"] == "Finished"
    })
    .await
    .unwrap();
    let sandboxes = s.dir.path().join("agents/node-gc/sandboxes/default");
    let executors = s.dir.path().join("agents/node-gc/executors");
    crate::support::wait_for(
        Duration::from_secs(15),
        "the sandbox and run record to go",
        || async {
            std::fs::read_dir(&sandboxes).map_or(true, |mut d| d.next().is_none())
                && std::fs::read_dir(&executors).map_or(true, |mut d| d.next().is_none())
        },
    )
    .await
    .unwrap();
    let out = logs(&s.kubeconfig(), &["brief"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("has no stdout on this agent"),
        "{err}"
    );
}
