//! Maintenance windows (issue 24, "Drain and maintenance") against a real
//! `mosaic server` and agents, set with kubectl: before the window the
//! Agent's status shows it (`status.maintenance`, `Maintenance=False
//! Scheduled`); at its start the agent is cordoned and drained, so an App's
//! instances start elsewhere and a plain task is killed by the window's end;
//! at its end the agent is uncordoned and takes work again. The Maintenance
//! condition sits beside the agent's own Ready (each writer owns its own).

use crate::support::{TestServer, mosaic, wait_for, write_file};
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use std::time::Duration;

fn condition(agent: &Value, type_: &str) -> Option<(String, String)> {
    agent["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
}

#[tokio::test]
async fn a_window_drains_its_agent_at_the_start_and_lets_it_go_at_the_end() {
    let s = TestServer::start().unwrap();
    let _m1 = s.spawn_agent_with("maint-1", "cpus=2,memory=1Gi", &["--labels", "pool=m1"]);
    let _m2 = s.spawn_agent("maint-2", "cpus=2,memory=1Gi");
    let client = s.client().await.unwrap();
    let agents: Api<DynamicObject> = Api::all_with(client.clone(), &mosaic("Agent", "agents"));
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("Task", "tasks"));
    let dir = s.dir.path();
    wait_for(Duration::from_secs(30), "both agents ready", || async {
        let out = s.kubectl(&["get", "agents", "-o", "name"]);
        String::from_utf8_lossy(&out.stdout).lines().count() == 2
    })
    .await
    .unwrap();
    // A plain task held on maint-1, and an App with an instance on each agent.
    let work = write_file(
        dir,
        "work.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata: {name: batch}\n\
         spec: {command: sleep 3600, agentSelector: {matchLabels: {pool: m1}}, killGracePeriodSeconds: 1, resources: {cpus: 100m, memory: 16Mi}}\n\
         ---\napiVersion: mosaic.dev/v1alpha1\nkind: App\nmetadata: {name: svc}\n\
         spec: {replicas: 2, constraints: [{field: hostname, operator: UNIQUE}], upgradeStrategy: {minimumHealthCapacity: 0.5},\n\
         \x20 template: {spec: {command: sleep 3600, killGracePeriodSeconds: 1, resources: {cpus: 100m, memory: 16Mi}}}}\n",
    );
    s.kubectl_ok(&["apply", "-f", &work]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "app/svc",
        "--timeout=60s",
    ]);
    s.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Running",
        "task/batch",
        "--timeout=60s",
    ]);

    // A window from 4 s from now, for 8 s.
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(4);
    let start = start.round(jiff::Unit::Second).unwrap();
    let patch =
        format!(r#"{{"spec":{{"maintenance":{{"start":"{start}","durationSeconds":8}}}}}}"#);
    s.kubectl_ok(&["patch", "agent", "maint-1", "--type=merge", "-p", &patch]);
    let end = (start + jiff::SignedDuration::from_secs(8)).to_string();
    wait_for(Duration::from_secs(10), "the window shown", || async {
        let a = agents.get("maint-1").await.unwrap().data;
        a["status"]["maintenance"]["end"] == end.as_str()
            && condition(&a, "Maintenance") == Some(("False".into(), "Scheduled".into()))
            && a["spec"]["unschedulable"] != true
    })
    .await
    .unwrap();

    // At the start: cordoned and drained, the App's instance moved off
    // (UNIQUE lets it go nowhere but... maint-2 holds one: it waits) and the
    // task killed by the window's end.
    wait_for(Duration::from_secs(20), "cordoned and drained", || async {
        let a = agents.get("maint-1").await.unwrap().data;
        a["spec"]["unschedulable"] == true
            && a["spec"]["drain"]["deadline"].is_string()
            && condition(&a, "Maintenance") == Some(("True".into(), "InMaintenance".into()))
            && condition(&a, "Ready") == Some(("True".into(), "Heartbeating".into()))
    })
    .await
    .unwrap();
    let on_m1 = || async {
        tasks
            .list(&ListParams::default().fields("status.agent=maint-1"))
            .await
            .unwrap()
            .items
    };
    let drained = wait_for(
        Duration::from_secs(30),
        "nothing left on maint-1",
        || async {
            on_m1().await.iter().all(|t| {
                matches!(
                    t.data["status"]["phase"].as_str(),
                    Some("Killed" | "Finished" | "Failed")
                )
            })
        },
    )
    .await;
    if let Err(e) = drained {
        let left: Vec<_> = on_m1()
            .await
            .into_iter()
            .map(|t| {
                (
                    t.metadata.name,
                    t.metadata.deletion_timestamp,
                    t.data["status"].clone(),
                )
            })
            .collect();
        panic!("{e}: {left:#?}");
    }

    // At the end: uncordoned, and the App's second instance comes back to it.
    wait_for(
        Duration::from_secs(30),
        "uncordoned after the window",
        || async {
            let a = agents.get("maint-1").await.unwrap().data;
            a["spec"]["unschedulable"] != true
                && a["spec"]["drain"].is_null()
                && a["metadata"]["annotations"]["mosaic.dev/maintenance-drain"].is_null()
                && condition(&a, "Maintenance") == Some(("False".into(), "WindowEnded".into()))
        },
    )
    .await
    .unwrap();
    s.kubectl_ok(&["wait", "--for=condition=Ready", "app/svc", "--timeout=60s"]);
    let on_m1 = tasks
        .list(
            &ListParams::default()
                .labels("mosaic.dev/app=svc")
                .fields("status.agent=maint-1"),
        )
        .await
        .unwrap()
        .items;
    assert!(
        on_m1.iter().any(|t| t.data["status"]["phase"] == "Running"),
        "the App is back on maint-1"
    );
}
