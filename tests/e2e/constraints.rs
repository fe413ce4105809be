//! Placement constraints (Marathon's operators) on Apps, against a real
//! `mosaic server` and real agents, applied with kubectl: `UNIQUE hostname`
//! leaves an instance waiting with a reason naming the constraint until an
//! agent comes that it can go to; `GROUP_BY` a zone label spreads instances
//! evenly over the zones (and never onto an agent without the label), where
//! plain spreading would have put most on the largest agent; and the CRD's
//! rules refuse a constraint that makes no sense.

use crate::support::{TestServer, mosaic, wait_for, write_file};
use kube::api::{Api, DynamicObject, ListParams};
use std::collections::BTreeMap;
use std::time::Duration;

const ZONE: &str = "topology.mosaic.dev/zone";

fn app_yaml(name: &str, replicas: u32, constraints: &str) -> String {
    format!(
        r#"apiVersion: mosaic.dev/v1alpha1
kind: App
metadata:
  name: {name}
spec:
  replicas: {replicas}
  constraints: {constraints}
  template:
    spec:
      command: sleep 3600
      resources:
        cpus: 100m
        memory: 16Mi
      killGracePeriodSeconds: 1
"#
    )
}

/// An App's instances that are not deleted.
async fn instances(tasks: &Api<DynamicObject>, app: &str) -> Vec<DynamicObject> {
    tasks
        .list(&ListParams::default().labels(&format!("mosaic.dev/app={app}")))
        .await
        .expect("listing instances")
        .items
        .into_iter()
        .filter(|t| t.metadata.deletion_timestamp.is_none())
        .collect()
}

fn field<'a>(t: &'a DynamicObject, f: &str) -> &'a str {
    t.data["status"][f].as_str().unwrap_or("")
}

/// Running instances per agent.
fn running_on(all: &[DynamicObject]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in all.iter().filter(|t| field(t, "phase") == "Running") {
        *m.entry(field(t, "agent").to_string()).or_default() += 1;
    }
    m
}

fn summary(all: &[DynamicObject]) -> Vec<String> {
    all.iter()
        .map(|t| {
            format!(
                "{} {} on {:?}: {}",
                t.metadata.name.as_deref().unwrap_or(""),
                field(t, "phase"),
                field(t, "agent"),
                field(t, "message")
            )
        })
        .collect()
}

/// Fails with what the App's instances say if a wait failed.
async fn shown(r: Result<(), String>, tasks: &Api<DynamicObject>, app: &str) {
    if let Err(e) = r {
        panic!("{e}: {:?}", summary(&instances(tasks, app).await));
    }
}

#[tokio::test]
async fn unique_waits_with_the_constraint_named_and_group_by_spreads_over_zones() {
    let s = TestServer::start().unwrap();
    let _u1 = s.spawn_agent("uniq-1", "cpus=2,memory=1Gi");
    let _u2 = s.spawn_agent("uniq-2", "cpus=2,memory=1Gi");
    let client = s.client().await.unwrap();
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("Task", "tasks"));
    let dir = s.dir.path();

    // The CRD refuses what makes no sense, naming the field.
    let bad = write_file(
        dir,
        "bad.yaml",
        &app_yaml(
            "bad",
            1,
            "[{field: hostname, operator: UNIQUE, value: x}, {field: rack, operator: MAX_PER, value: two}]",
        ),
    );
    let out = s.kubectl(&["apply", "-f", &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(
        err.contains("spec.constraints[0].value") && err.contains("UNIQUE takes no value"),
        "{err}"
    );
    assert!(
        err.contains("spec.constraints[1].value") && err.contains("is a count"),
        "{err}"
    );

    // UNIQUE hostname, 3 replicas, 2 agents: 2 run, 1 waits saying why.
    let f = write_file(
        dir,
        "uniq.yaml",
        &app_yaml("uniq", 3, "[{field: hostname, operator: UNIQUE}]"),
    );
    s.kubectl_ok(&["apply", "-f", &f]);
    let r = wait_for(
        Duration::from_secs(60),
        "2 instances running on 2 agents and 1 waiting on UNIQUE",
        || async {
            let all = instances(&tasks, "uniq").await;
            let on = running_on(&all);
            // Waiting, not Stalled: kstatus (helm --wait) waits on it as on
            // a Pending Pod.
            let waiting = all.iter().filter(|t| {
                field(t, "phase") == "Pending"
                    && field(t, "reason") == "Unschedulable"
                    && field(t, "message").contains("hostname UNIQUE")
                    && t.data["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Stalled" && c["status"] == "False")
                    })
            });
            on.len() == 2 && on.values().all(|n| *n == 1) && waiting.count() == 1
        },
    )
    .await
    .map_err(|e| e.to_string());
    shown(r, &tasks, "uniq").await;
    // It says so in Events, as kube-scheduler's FailedScheduling does.
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Unschedulable",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("hostname UNIQUE"), "{events}");
    // A new agent is where the waiting one goes.
    let _u3 = s.spawn_agent("uniq-3", "cpus=2,memory=1Gi");
    let r = wait_for(
        Duration::from_secs(60),
        "3 instances running, one per agent",
        || async {
            let on = running_on(&instances(&tasks, "uniq").await);
            on.len() == 3 && on.values().all(|n| *n == 1)
        },
    )
    .await
    .map_err(|e| e.to_string());
    shown(r, &tasks, "uniq").await;

    // GROUP_BY zone over (at least) 2 zones: two small agents in z1, a large
    // one in z2, and the three without a zone. Spreading by load alone would
    // put all six on the large one; the constraint puts 3 in each zone and
    // none without one (the count makes it wait for both zones, however the
    // agents' registrations interleave).
    let _z1a = s.spawn_agent_with(
        "zone-1a",
        "cpus=1,memory=1Gi",
        &["--labels", &format!("{ZONE}=z1")],
    );
    let _z1b = s.spawn_agent_with(
        "zone-1b",
        "cpus=1,memory=1Gi",
        &["--labels", &format!("{ZONE}=z1")],
    );
    let _z2 = s.spawn_agent_with(
        "zone-2",
        "cpus=8,memory=4Gi",
        &["--labels", &format!("{ZONE}=z2")],
    );
    wait_for(
        Duration::from_secs(30),
        "the zone agents registered",
        || async {
            let out = s.kubectl(&["get", "agents", "-l", ZONE, "-o", "name"]);
            String::from_utf8_lossy(&out.stdout).lines().count() == 3
        },
    )
    .await
    .unwrap();
    let f = write_file(
        dir,
        "spread.yaml",
        &app_yaml(
            "spread",
            6,
            &format!("[{{field: {ZONE}, operator: GROUP_BY, value: \"2\"}}]"),
        ),
    );
    s.kubectl_ok(&["apply", "-f", &f]);
    let zone_of = |agent: &str| match agent {
        "zone-1a" | "zone-1b" => "z1",
        "zone-2" => "z2",
        _ => "none",
    };
    let r = wait_for(Duration::from_secs(60), "6 instances running", || async {
        running_on(&instances(&tasks, "spread").await)
            .values()
            .sum::<usize>()
            == 6
    })
    .await
    .map_err(|e| e.to_string());
    shown(r, &tasks, "spread").await;
    let all = instances(&tasks, "spread").await;
    let mut per_zone = BTreeMap::<&str, usize>::new();
    for (agent, n) in running_on(&all) {
        *per_zone.entry(zone_of(&agent)).or_default() += n;
    }
    assert_eq!(
        per_zone,
        BTreeMap::from([("z1", 3), ("z2", 3)]),
        "{:?}",
        summary(&all)
    );
}
