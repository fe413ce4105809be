//! A burst that fills the cluster exactly: binds are written in the background
//! while later cycles already count them (assumed placements), so this checks
//! that no agent is ever given more than it has, no task is bound twice, and
//! freed room goes to the task left waiting.

use crate::support::{TestServer, tasks_api, wait_for};
use futures::StreamExt;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// (Running, Pending, cpus in thousandths bound to each agent) of the live tasks.
async fn census(
    api: &kube::Api<kube::api::DynamicObject>,
) -> (usize, usize, BTreeMap<String, u64>) {
    let list = api.list(&ListParams::default()).await.unwrap();
    let (mut running, mut pending, mut per_agent) = (0, 0, BTreeMap::new());
    for t in list.items {
        let st = &t.data["status"];
        match st["phase"].as_str() {
            Some("Running") => running += 1,
            None | Some("Pending") => pending += 1,
            _ => {}
        }
        let active = matches!(
            st["phase"].as_str(),
            Some("Staging" | "Starting" | "Running")
        );
        if let (true, Some(agent)) = (active, st["agent"].as_str()) {
            *per_agent.entry(agent.to_string()).or_default() += 100;
        }
    }
    (running, pending, per_agent)
}

#[tokio::test]
async fn a_burst_that_fills_the_cluster_never_overcommits_an_agent() {
    let s = TestServer::start().unwrap();
    // Four simulated agents of 20 cpus: room for exactly 800 tasks of 0.1 cpu,
    // enough that binds are still being written when the next cycles run.
    let _agents = s.spawn_agent_with(
        "burst",
        "cpus=20,memory=256Gi",
        &["--simulate", "--count", "4", "--heartbeat-seconds", "10"],
    );
    let client = s.client().await.unwrap();
    let api = tasks_api(client.clone());
    let agent_api: kube::Api<kube::api::DynamicObject> =
        kube::Api::all_with(client.clone(), &crate::support::mosaic("Agent", "agents"));
    wait_for(Duration::from_secs(60), "4 agents Ready", || async {
        agent_api.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items
                .iter()
                .filter(|a| {
                    a.data["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count()
                == 4
        })
    })
    .await
    .unwrap();

    // 801 tasks at once, from 32 concurrent clients.
    let created: Vec<_> = futures::stream::iter(0..801)
        .map(|i| {
            let api = api.clone();
            async move {
                let t = json!({
                    "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": format!("b{i}")},
                    "spec": {"command": "never runs", "resources": {"cpus": "100m", "memory": "64Mi"}}});
                api.create(&PostParams::default(), &serde_json::from_value(t).unwrap())
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        created.iter().all(Result::is_ok),
        "a create failed: {created:?}"
    );

    wait_for(Duration::from_secs(60), "800 tasks Running", || async {
        census(&api).await.0 >= 800
    })
    .await
    .unwrap();
    // Over several cycles (and status rounds), the 801st stays Pending and no
    // agent holds more than its 20 cpus.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (running, pending, per_agent) = census(&api).await;
        assert_eq!((running, pending), (800, 1), "per agent: {per_agent:?}");
        assert!(
            per_agent.values().all(|&m| m <= 20_000),
            "an agent holds more than it has: {per_agent:?}"
        );
        assert_eq!(per_agent.len(), 4, "{per_agent:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Each task was bound once: one Scheduled event each.
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), "default");
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    let mut bound: BTreeMap<String, usize> = BTreeMap::new();
    for e in evs
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Scheduled"))
    {
        *bound
            .entry(e.involved_object.name.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(bound.len(), 800, "Scheduled events: {bound:?}");
    assert!(
        bound.values().all(|&n| n == 1),
        "a task was bound twice: {bound:?}"
    );

    // Freeing one task's room lets the waiting one run.
    let (_, _, before) = census(&api).await;
    let victim = bound.keys().next().unwrap().clone();
    api.delete(&victim, &DeleteParams::default()).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "the 801st task Running",
        || async {
            let (running, pending, _) = census(&api).await;
            running == 800 && pending == 0
        },
    )
    .await
    .unwrap();
    let (_, _, after) = census(&api).await;
    assert!(
        after.values().all(|&m| m <= 20_000),
        "before {before:?}, after {after:?}"
    );
}
