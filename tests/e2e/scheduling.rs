//! Two-level scheduling through the API: Roles, Frameworks and Tasks applied
//! with kubectl, placed by the controllers in `mosaic server` on real agents.

use crate::support::{TestServer, tasks_api, wait_for, write_file};
use std::time::Duration;

fn count_running(s: &TestServer, framework: &str) -> usize {
    let out = s.kubectl_ok(&[
        "get",
        "tasks",
        "-o",
        "jsonpath={range .items[*]}{.spec.framework} {.status.phase}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter(|l| *l == format!("{framework} Running"))
        .count()
}

fn tasks_yaml(framework: &str, n: usize, cpus: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "---\napiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: {framework}-{i}\nspec:\n  framework: {framework}\n  command: sleep 300\n  killGracePeriodSeconds: 1\n  resources: {{cpus: \"{cpus}\", memory: 16Mi}}\n"
            )
        })
        .collect()
}

#[tokio::test]
async fn weighted_roles_split_a_full_cluster_one_to_three() {
    let s = TestServer::start().unwrap();
    let setup = "---\napiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata: {name: light}\nspec: {weight: 1}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata: {name: heavy}\nspec: {weight: 3}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: fa}\nspec: {role: light}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: fb}\nspec: {role: heavy}\n";
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(s.dir.path(), "setup.yaml", setup),
    ]);
    // Both frameworks have far more work queued than fits before the agents come.
    let mut both = tasks_yaml("fa", 20, "1");
    both.push_str(&tasks_yaml("fb", 20, "1"));
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(s.dir.path(), "tasks.yaml", &both),
    ]);
    let _agents: Vec<_> = (0..4)
        .map(|i| s.spawn_agent(&format!("n{i}"), "cpus=4,memory=4Gi"))
        .collect();
    let full = wait_for(Duration::from_secs(60), "16 running tasks", || async {
        count_running(&s, "fa") + count_running(&s, "fb") == 16
    })
    .await;
    if let Err(e) = full {
        let tasks = s.kubectl_ok(&["get", "tasks", "-o", "wide"]);
        let agents = s.kubectl_ok(&["get", "agents", "-o", "wide"]);
        let mut logs = crate::support::log_tail(&s.dir.path().join("server.log"), 40);
        for i in 0..4 {
            let tail = crate::support::log_tail(&s.dir.path().join(format!("agent-n{i}.log")), 10);
            logs.push_str(&format!("\n--- agent n{i}:\n{tail}"));
        }
        panic!("{e}\ntasks:\n{tasks}\nagents:\n{agents}\nlogs:\n{logs}");
    }
    let (a, b) = (count_running(&s, "fa"), count_running(&s, "fb"));
    assert!(
        a.abs_diff(4) <= 1 && b.abs_diff(12) <= 1,
        "split {a}:{b}, want 4:12 ±1"
    );
    s.kubectl_ok(&["delete", "tasks", "--all", "--wait=false"]);
    let api = tasks_api(s.client().await.unwrap());
    wait_for(Duration::from_secs(30), "all tasks gone", || async {
        api.list(&Default::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_quota_limit_holds_on_an_idle_cluster() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("big", "cpus=8,memory=8Gi");
    let setup = "---\napiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata: {name: capped}\nspec:\n  quota:\n    limit: {cpus: \"2\", memory: 8Gi}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: fc}\nspec: {role: capped}\n";
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(s.dir.path(), "setup.yaml", setup),
    ]);
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(s.dir.path(), "tasks.yaml", &tasks_yaml("fc", 6, "1")),
    ]);
    wait_for(Duration::from_secs(30), "two running tasks", || async {
        count_running(&s, "fc") == 2
    })
    .await
    .unwrap();
    // Later cycles must not place more: watch for a while (the scheduler runs every second).
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(count_running(&s, "fc"), 2, "the role's limit is cpus=2");
    }
    let pending = s.kubectl_ok(&["get", "tasks", "-o", "jsonpath={.items[*].status.phase}"]);
    assert_eq!(
        pending
            .split_whitespace()
            .filter(|p| *p == "Running")
            .count(),
        2,
        "{pending}"
    );
    s.kubectl_ok(&["delete", "tasks", "--all", "--wait=false"]);
}

fn phase_of(s: &TestServer, kind: &str, name: &str) -> String {
    s.kubectl_ok(&["get", kind, name, "-o", "jsonpath={.status.phase}"])
}

#[tokio::test]
async fn reserved_resources_go_only_to_their_role_until_the_reservation_is_deleted() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent_with("sim", "cpus=4,memory=8Gi", &["--simulate"]);
    let setup = "---\napiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata: {name: a}\nspec: {weight: 1}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata: {name: b}\nspec: {weight: 1}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: fa}\nspec: {role: a}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: fb}\nspec: {role: b}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Reservation\nmetadata: {name: for-a}\n\
        spec: {role: a, agent: sim, resources: {cpus: \"3\", memory: 1Gi}}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Reservation\nmetadata: {name: too-big}\n\
        spec: {role: a, agentSelector: {matchLabels: {mosaic.dev/hostname: sim}}, resources: {cpus: \"2\", memory: 1Gi}}\n";
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(s.dir.path(), "setup.yaml", setup),
    ]);
    wait_for(
        Duration::from_secs(30),
        "reservation for-a Bound",
        || async { phase_of(&s, "reservation", "for-a") == "Bound" },
    )
    .await
    .unwrap();
    // 3 of 4 cpus are reserved: a second reservation of 2 cannot be held.
    wait_for(
        Duration::from_secs(30),
        "reservation too-big Unsatisfiable",
        || async { phase_of(&s, "reservation", "too-big") == "Unsatisfiable" },
    )
    .await
    .unwrap();
    let why = s.kubectl_ok(&[
        "get",
        "reservation",
        "too-big",
        "-o",
        "jsonpath={.status.conditions[0].message}",
    ]);
    assert!(why.contains("no matching agent has room"), "{why}");
    s.kubectl_ok(&["delete", "reservation", "too-big"]);

    // Role b is starved (4 tasks of 1 cpu) while role a is idle: b gets only the unreserved cpu.
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(s.dir.path(), "b.yaml", &tasks_yaml("fb", 4, "1")),
    ]);
    wait_for(Duration::from_secs(30), "one task of b Running", || async {
        count_running(&s, "fb") == 1
    })
    .await
    .unwrap();
    // Further cycles (one at least every second) change nothing: look for three seconds.
    for _ in 0..30 {
        assert_eq!(count_running(&s, "fb"), 1, "role b got reserved resources");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Role a's tasks use the reservation.
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(s.dir.path(), "a.yaml", &tasks_yaml("fa", 3, "1")),
    ]);
    wait_for(
        Duration::from_secs(30),
        "three tasks of a Running",
        || async { count_running(&s, "fa") == 3 },
    )
    .await
    .unwrap();
    s.kubectl_ok(&["delete", "tasks", "fa-0", "fa-1", "fa-2"]);
    // Deleting the reservation frees its cpus for b.
    s.kubectl_ok(&["delete", "reservation", "for-a"]);
    wait_for(
        Duration::from_secs(30),
        "all four tasks of b Running",
        || async { count_running(&s, "fb") == 4 },
    )
    .await
    .unwrap();
    let _ = tasks_api(s.client().await.unwrap());
}

/// Simulated tasks of `framework` (no duration: they run until deleted).
fn sim_tasks_yaml(framework: &str, n: usize, cpus: &str, memory: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "---\napiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: {framework}-{i}\nspec:\n  framework: {framework}\n  command: simulated\n  resources: {{cpus: \"{cpus}\", memory: {memory}}}\n"
            )
        })
        .collect()
}

#[tokio::test]
async fn a_guarantee_is_served_first_and_unweighted_drf_equalises_dominant_shares() {
    let s = TestServer::start().unwrap();
    // Apply everything before the agent registers, so every framework has work pending at once.
    let setup = "---\napiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata: {name: guaranteed}\n\
        spec: {quota: {guarantee: {cpus: \"3\", memory: 3Gi}}}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata: {name: other}\nspec: {weight: 1}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: g}\nspec: {role: guaranteed}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: o}\nspec: {role: other}\n";
    let mut tasks = setup.to_string();
    tasks.push_str(&sim_tasks_yaml("o", 8, "1", "1Gi"));
    tasks.push_str(&sim_tasks_yaml("g", 4, "1", "1Gi"));
    s.kubectl_ok(&["apply", "-f", &write_file(s.dir.path(), "g.yaml", &tasks)]);
    let _agent = s.spawn_agent_with("sim", "cpus=4,memory=8Gi", &["--simulate"]);
    // Equal weights alone would split 2:2; the guarantee of 3 cpus comes first.
    wait_for(Duration::from_secs(30), "g 3 and o 1 Running", || async {
        count_running(&s, "g") == 3 && count_running(&s, "o") == 1
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: g {} o {}",
            count_running(&s, "g"),
            count_running(&s, "o")
        )
    });
    // Clear the stage: cordon that agent and let its tasks be killed and go.
    s.kubectl_ok(&[
        "patch",
        "agent",
        "sim",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"unschedulable":true}}"#,
    ]);
    s.kubectl_ok(&["delete", "tasks", "--all", "--wait=false"]);
    wait_for(Duration::from_secs(30), "every task to go", || async {
        s.kubectl_ok(&["get", "tasks", "-o", "name"])
            .trim()
            .is_empty()
    })
    .await
    .unwrap();

    // Without weights, a CPU-heavy and a memory-heavy framework reach equal
    // dominant shares: 7 tasks each on 8 cpus and 16Gi.
    let setup = "---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: cpu-heavy}\nspec: {role: other}\n\
        ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: mem-heavy}\nspec: {role: guaranteed}\n";
    let mut tasks = setup.to_string();
    tasks.push_str(&sim_tasks_yaml("cpu-heavy", 12, "1", "256Mi"));
    tasks.push_str(&sim_tasks_yaml("mem-heavy", 12, "100m", "2Gi"));
    s.kubectl_ok(&["delete", "roles.mosaic.dev", "guaranteed"]);
    s.kubectl_ok(&["apply", "-f", &write_file(s.dir.path(), "drf.yaml", &tasks)]);
    let _agent = s.spawn_agent_with("sim2", "cpus=8,memory=16Gi", &["--simulate"]);
    wait_for(
        Duration::from_secs(30),
        "7 tasks of each Running",
        || async { count_running(&s, "cpu-heavy") == 7 && count_running(&s, "mem-heavy") == 7 },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: cpu-heavy {} mem-heavy {}",
            count_running(&s, "cpu-heavy"),
            count_running(&s, "mem-heavy")
        )
    });
}

fn allocated(s: &TestServer, agent: &str) -> String {
    s.kubectl_ok(&[
        "get",
        "agent",
        agent,
        "-o",
        "jsonpath={.status.allocated.cpus} {.status.allocated.memory}",
    ])
}

#[tokio::test]
async fn an_agents_allocated_status_follows_its_tasks() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent_with("sim", "cpus=4,memory=4Gi", &["--simulate"]);
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(s.dir.path(), "tasks.yaml", &tasks_yaml("default", 3, "1")),
    ]);
    wait_for(Duration::from_secs(30), "three tasks Running", || async {
        count_running(&s, "default") == 3
    })
    .await
    .unwrap();
    // Each component's writes are owned by its name, as kubectl's are by "kubectl-...".
    let managers = s.kubectl_ok(&[
        "get",
        "task",
        "default-2",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.subresource}{\"\\n\"}{end}",
    ]);
    for want in [
        "mosaic-controllers/",
        "mosaic-controllers/status",
        "mosaic-agent/status",
    ] {
        assert!(
            managers.lines().any(|l| l == want),
            "no {want} in the managers:\n{managers}"
        );
    }
    let want = "3 48Mi".to_string();
    let held = wait_for(Duration::from_secs(10), "allocated = 3 tasks", || async {
        allocated(&s, "sim") == want
    })
    .await;
    assert!(
        held.is_ok(),
        "allocated {:?}, want {want:?}",
        allocated(&s, "sim")
    );
    s.kubectl_ok(&["delete", "task", "default-0", "default-1"]);
    let want = "1 16Mi".to_string();
    let freed = wait_for(Duration::from_secs(10), "allocated = 1 task", || async {
        allocated(&s, "sim") == want
    })
    .await;
    assert!(
        freed.is_ok(),
        "allocated {:?}, want {want:?}",
        allocated(&s, "sim")
    );
    s.kubectl_ok(&["delete", "tasks", "--all", "--wait=false"]);
}
