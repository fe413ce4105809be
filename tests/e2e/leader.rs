//! Two `mosaic controllers` replicas elect a leader on a Lease: only it acts,
//! and when it is killed the other takes over within the lease duration,
//! with no task ever placed twice. One replica binds with two writes (as on
//! Kubernetes), the other through `tasks/binding`, so the tasks placed before
//! and after the hand-over are bound each way.

use crate::support::{ChildGuard, TestServer, mosaic_bin, tasks_api, wait_for};
use kube::api::{ListParams, PostParams};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LEASE_SECONDS: u64 = 3;

fn controllers(s: &TestServer, n: usize) -> ChildGuard {
    let binding = if n == 0 { "two-writes" } else { "subresource" };
    let child = Command::new(mosaic_bin())
        .args([
            "controllers",
            "--binding",
            binding,
            "--leader-lease-seconds",
            &LEASE_SECONDS.to_string(),
            "--kubeconfig",
        ])
        .arg(s.kubeconfig())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(s.dir.path().join(format!("controllers-{n}.log"))).unwrap())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

/// Who holds the controllers' leader Lease.
pub(crate) async fn holder(client: &kube::Client) -> Option<String> {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), "mosaic-system");
    leases
        .get_opt("mosaic-controllers")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// Creates simulated tasks `t<from>` .. `t<to>`.
pub(crate) async fn create_tasks(
    api: &kube::Api<kube::api::DynamicObject>,
    from: usize,
    to: usize,
) {
    for i in from..to {
        let t = serde_json::from_value(json!({
            "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": format!("t{i}")},
            "spec": {"command": "simulated", "resources": {"cpus": "100m", "memory": "16Mi"}}}))
        .unwrap();
        api.create(&PostParams::default(), &t).await.unwrap();
    }
}

/// Waits (at most `secs`) until exactly `n` tasks are Running.
pub(crate) async fn wait_running(api: &kube::Api<kube::api::DynamicObject>, n: usize, secs: u64) {
    wait_for(
        Duration::from_secs(secs),
        &format!("{n} tasks Running"),
        || all_running(api, n),
    )
    .await
    .unwrap();
}

/// Whether exactly `n` tasks are Running.
async fn all_running(api: &kube::Api<kube::api::DynamicObject>, n: usize) -> bool {
    api.list(&ListParams::default()).await.is_ok_and(|l| {
        l.items
            .iter()
            .filter(|t| t.data["status"]["phase"] == "Running")
            .count()
            == n
    })
}

#[tokio::test]
async fn the_leader_hands_over_when_killed_and_no_task_is_placed_twice() {
    let s = TestServer::start_with(&["--no-controllers"]).unwrap();
    let _agent = s.spawn_agent_with("sim", "cpus=8,memory=8Gi", &["--simulate"]);
    let mut replicas = vec![controllers(&s, 0), controllers(&s, 1)];
    let client = s.client().await.unwrap();
    wait_for(Duration::from_secs(30), "a leader", || async {
        holder(&client).await.is_some()
    })
    .await
    .unwrap();
    let leader = holder(&client).await.unwrap();
    let which = replicas
        .iter()
        .position(|r| leader.ends_with(&format!("-{}", r.0.id())))
        .unwrap_or_else(|| panic!("the leader {leader} is neither replica"));
    let api = tasks_api(client.clone());
    create_tasks(&api, 0, 5).await;
    wait_running(&api, 5, 30).await;

    // Kill the leader outright: it cannot hand over politely.
    let mut dead = replicas.remove(which);
    dead.0.kill().unwrap();
    dead.0.wait().unwrap();
    let killed_at = Instant::now();
    create_tasks(&api, 5, 10).await;
    takes_over(&client, replicas[0].0.id(), killed_at, LEASE_SECONDS, 1500).await;
    wait_running(&api, 10, 30).await;
    bound_once(&client, 10).await;
}

/// Waits for the process `pid` to hold the leader Lease; fails unless that
/// happened within the lease duration (plus `slack_ms`) of `killed_at`.
pub(crate) async fn takes_over(
    client: &kube::Client,
    pid: u32,
    killed_at: Instant,
    lease_seconds: u64,
    slack_ms: u64,
) {
    wait_for(
        Duration::from_secs(30),
        "the other replica to lead",
        || async {
            holder(client)
                .await
                .is_some_and(|h| h.ends_with(&format!("-{pid}")))
        },
    )
    .await
    .unwrap();
    let took = killed_at.elapsed();
    assert!(
        took <= Duration::from_secs(lease_seconds) + Duration::from_millis(slack_ms),
        "the takeover took {took:?} with a {lease_seconds} s lease"
    );
}

/// Each of the tasks `t0` .. `t<n>` was bound once: one Scheduled event each.
pub(crate) async fn bound_once(client: &kube::Client, n: usize) {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), "default");
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    for i in 0..n {
        let name = format!("t{i}");
        let n = evs
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some("Scheduled")
                    && e.involved_object.name.as_deref() == Some(&name)
            })
            .count();
        assert_eq!(n, 1, "task {name} was bound {n} times");
    }
    // However bound, each holds the kill-before-delete finalizer.
    let tasks = crate::support::tasks_api(client.clone());
    for t in tasks.list(&ListParams::default()).await.unwrap().items {
        assert!(
            t.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == "mosaic.dev/kill-before-delete"),
            "task {:?} has no finalizer: {:?}",
            t.metadata.name,
            t.metadata.finalizers
        );
    }
}
