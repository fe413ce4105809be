//! Limits enforced through real cgroups (v1 on the CI machines; v2 where the
//! host has it): memory, CPU quota, pids. These need root and a cgroup
//! hierarchy; set MOSAIC_SKIP_CGROUP_TESTS=1 to skip them elsewhere.

use crate::support::{TestServer, tasks_api, wait_for, wait_task};
use kube::api::PostParams;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn cgroups_available() -> bool {
    if std::env::var_os("MOSAIC_SKIP_CGROUP_TESTS").is_some() {
        eprintln!("MOSAIC_SKIP_CGROUP_TESTS is set: skipping a cgroup test");
        return false;
    }
    true
}

fn task(name: &str, command: &str, cpus: &str, memory: &str) -> kube::api::DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": command, "resources": {"cpus": cpus, "memory": memory}, "killGracePeriodSeconds": 1}}))
    .unwrap()
}

fn millicores(q: &serde_json::Value) -> Option<f64> {
    let s = q.as_str()?;
    match s.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => s.parse::<f64>().ok().map(|c| c * 1000.0),
    }
}

#[tokio::test]
async fn the_agent_reports_its_cgroup_mode() {
    if !cgroups_available() {
        return;
    }
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-m", "cpus=2,memory=2Gi");
    let mut mode = String::new();
    for _ in 0..200 {
        mode = s.kubectl_ok(&["get", "agent", "node-m", "-o", "jsonpath={.status.cgroup}"]);
        if !mode.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        mode == "v1" || mode == "v2",
        "the agent drives cgroups here (got {mode:?})"
    );
}

#[tokio::test]
async fn memory_over_the_limit_is_memory_limit_exceeded_and_the_agent_goes_on() {
    if !cgroups_available() {
        return;
    }
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-mem", "cpus=2,memory=2Gi");
    let api = tasks_api(s.client().await.unwrap());
    let hog = "python3 -c 'x = b\"m\" * (256 << 20); import time; time.sleep(5)'";
    api.create(&PostParams::default(), &task("hog", hog, "500m", "64Mi"))
        .await
        .unwrap();
    let st = wait_task(&api, "hog", Duration::from_secs(60), |s| {
        s["phase"] == "Failed"
    })
    .await
    .unwrap();
    assert_eq!(st["reason"], "MemoryLimitExceeded", "{st}");
    api.create(
        &PostParams::default(),
        &task("after", "echo still here", "100m", "32Mi"),
    )
    .await
    .unwrap();
    let st = wait_task(&api, "after", Duration::from_secs(30), |s| {
        s["phase"] == "Finished"
    })
    .await
    .unwrap();
    assert_eq!(st["exitCode"], 0, "the agent keeps running tasks: {st}");
}

#[tokio::test]
async fn half_a_cpu_is_half_a_cpu_even_with_two_spinning_processes() {
    if !cgroups_available() {
        return;
    }
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-cpu", "cpus=2,memory=2Gi");
    let api = tasks_api(s.client().await.unwrap());
    // Long enough for two usage samples (every 2 s) on a busy machine; deleted once measured.
    let spin =
        "timeout 20 sh -c 'while :; do :; done' & timeout 20 sh -c 'while :; do :; done'; wait";
    api.create(&PostParams::default(), &task("spin", spin, "500m", "64Mi"))
        .await
        .unwrap();
    wait_task(&api, "spin", Duration::from_secs(30), |s| {
        s["phase"] == "Running"
    })
    .await
    .unwrap();
    // The first sample covers the first interval; take the second, a full one.
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while samples.len() < 2 && Instant::now() < deadline {
        let t = api.get("spin").await.unwrap();
        if let Some(m) = millicores(&t.data["status"]["usage"]["cpus"])
            && samples.last() != Some(&m)
        {
            samples.push(m);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        samples.len() == 2,
        "status.usage was not sampled twice: {samples:?}"
    );
    let used = samples[1];
    eprintln!("cpu samples of the 500m task: {samples:?}");
    assert!(
        (350.0..=650.0).contains(&used),
        "cpu use {used}m for a 500m task (samples {samples:?})"
    );
    api.delete("spin", &Default::default()).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "the spinning task killed",
        || async { api.get_opt("spin").await.is_ok_and(|t| t.is_none()) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_fork_bomb_is_contained_by_the_pids_limit() {
    if !cgroups_available() {
        return;
    }
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-fb", "cpus=2,memory=2Gi");
    let api = tasks_api(s.client().await.unwrap());
    api.create(
        &PostParams::default(),
        &task("bomb", "f(){ f | f & }; f; sleep 60", "200m", "256Mi"),
    )
    .await
    .unwrap();
    wait_task(&api, "bomb", Duration::from_secs(30), |s| {
        s["phase"] == "Running"
    })
    .await
    .unwrap();
    let uid = api.get("bomb").await.unwrap().metadata.uid.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids_current = ["/sys/fs/cgroup/pids/mosaic", "/sys/fs/cgroup/mosaic"]
        .iter()
        .map(|p| Path::new(p).join(format!("{uid}-0")).join("pids.current"))
        .find_map(|p| std::fs::read_to_string(p).ok())
        .expect("the task's pids cgroup exists");
    let n: u64 = pids_current.trim().parse().unwrap();
    assert!(n <= 1024, "{n} processes in the task's cgroup");
    // The machine stays usable: processes start and the API answers.
    let out = std::process::Command::new("true").status().unwrap();
    assert!(out.success());
    api.delete("bomb", &Default::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ["/sys/fs/cgroup/pids/mosaic", "/sys/fs/cgroup/mosaic"]
        .iter()
        .any(|p| Path::new(p).join(&uid).exists())
    {
        assert!(
            Instant::now() < deadline,
            "the fork bomb's cgroup is still there 20 s after deletion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
