//! Simulated agents: a thousand in one `mosaic agent --simulate` process
//! register and heartbeat, and run tasks through the real control plane
//! without processes.

use crate::support::{TestServer, mosaic, tasks_api, wait_for};
use kube::api::{ListParams, PostParams};
use serde_json::json;
use std::time::Duration;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_thousand_simulated_agents_in_one_process_run_tasks() {
    let s = TestServer::start().unwrap();
    let agents = s.spawn_agent_with(
        "sim",
        "cpus=4,memory=8Gi",
        &["--simulate", "--count", "1000", "--heartbeat-seconds", "10"],
    );
    let client = s.client().await.unwrap();
    let agent_api: kube::Api<kube::api::DynamicObject> =
        kube::Api::all_with(client.clone(), &mosaic("Agent", "agents"));
    wait_for(
        Duration::from_secs(120),
        "1000 simulated agents to register",
        || async {
            agent_api.list(&ListParams::default()).await.is_ok_and(|l| {
                l.items
                    .iter()
                    .filter(|a| a.data["status"]["capacity"]["cpus"] == "4")
                    .count()
                    == 1000
            })
        },
    )
    .await
    .unwrap();
    let api = tasks_api(client);
    for i in 0..50 {
        let mut t = json!({
            "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": format!("sim-{i}")},
            "spec": {"command": "never runs", "resources": {"cpus": "1", "memory": "1Gi"}}});
        if i < 40 {
            t["metadata"]["annotations"] = json!({"mosaic.dev/simulate-duration": "1s"});
        }
        api.create(&PostParams::default(), &serde_json::from_value(t).unwrap())
            .await
            .unwrap();
    }
    let phases = || async {
        let list = api.list(&ListParams::default()).await.unwrap();
        let mut finished = 0;
        let mut running = 0;
        for t in list.items {
            match t.data["status"]["phase"].as_str() {
                Some("Finished") => finished += 1,
                Some("Running") => running += 1,
                _ => {}
            }
        }
        (finished, running)
    };
    let waited = wait_for(
        Duration::from_secs(60),
        "40 timed tasks Finished, 10 Running",
        || async { phases().await == (40, 10) },
    )
    .await;
    if let Err(e) = waited {
        panic!("{e}: (finished, running) = {:?}", phases().await);
    }
    // A simulated task without a duration runs until deleted, then is Killed and goes.
    api.delete("sim-45", &Default::default()).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "the deleted simulated task to go",
        || async { matches!(api.get("sim-45").await, Err(kube::Error::Api(e)) if e.code == 404) },
    )
    .await
    .unwrap();
    let rss = rss_kib(agents.0.id());
    eprintln!("1000 simulated agents: RSS {} MiB", rss / 1024);
    assert!(
        rss > 0 && rss < 512 * 1024,
        "1000 simulated agents use {rss} KiB"
    );
}
