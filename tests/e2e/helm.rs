//! The example workload chart (charts/examples/batch-pipeline) with the real
//! Helm 4 against `mosaic server` and a real agent: `helm install --wait`
//! (server-side apply, releases in Secrets), `helm upgrade` with changed values
//! reaching the objects, `helm list`, and `helm uninstall` removing every object
//! it made, running tasks included.

use crate::support::*;
use std::time::Duration;

fn helm_ok(s: &TestServer, args: &[&str]) -> String {
    let out = s.helm(args);
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(s: &TestServer, what: &str) -> Vec<String> {
    let out = s.kubectl_ok(&["get", what, "-o", "name"]);
    out.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn the_example_chart_installs_upgrades_lists_and_uninstalls() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("helm-node", "cpus=4,memory=4Gi");
    let chart = "charts/examples/batch-pipeline";
    let out = helm_ok(
        &s,
        &["install", "pipe", chart, "--wait", "--timeout", "60s"],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    let tasks = tasks_api(s.client().await.unwrap());
    wait_task(&tasks, "pipe-report", Duration::from_secs(30), |st| {
        st["phase"] == "Finished"
    })
    .await
    .unwrap();
    for w in ["pipe-worker-0", "pipe-worker-1"] {
        wait_task(&tasks, w, Duration::from_secs(30), |st| {
            st["phase"] == "Running"
        })
        .await
        .unwrap();
    }
    assert_eq!(names(&s, "roles.mosaic.dev"), ["role.mosaic.dev/pipe"]);
    assert_eq!(names(&s, "frameworks"), ["framework.mosaic.dev/pipe"]);
    assert_eq!(names(&s, "reservations"), ["reservation.mosaic.dev/pipe"]);
    let phase = s.kubectl_ok(&[
        "get",
        "reservation",
        "pipe",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Bound");
    // Helm applied them server-side.
    let mf = s.kubectl_ok(&[
        "get",
        "task",
        "pipe-report",
        "-o",
        "jsonpath={.metadata.managedFields[0].manager}",
        "--show-managed-fields",
    ]);
    assert_eq!(mf, "helm");

    // A changed value reaches the objects.
    helm_ok(
        &s,
        &[
            "upgrade",
            "pipe",
            chart,
            "--set",
            "role.weight=5",
            "--set",
            "workers.count=3",
            "--wait",
            "--timeout",
            "60s",
        ],
    );
    let weight = s.kubectl_ok(&[
        "get",
        "roles.mosaic.dev",
        "pipe",
        "-o",
        "jsonpath={.spec.weight}",
    ]);
    assert_eq!(weight, "5");
    wait_task(&tasks, "pipe-worker-2", Duration::from_secs(30), |st| {
        st["phase"] == "Running"
    })
    .await
    .unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&helm_ok(&s, &["list", "-o", "json"])).unwrap();
    assert_eq!(list[0]["name"], "pipe", "{list}");
    assert_eq!(list[0]["revision"], "2", "{list}");
    assert_eq!(list[0]["status"], "deployed", "{list}");

    // Uninstall removes everything it made, the running workers included.
    helm_ok(&s, &["uninstall", "pipe", "--wait", "--timeout", "60s"]);
    for what in ["tasks", "roles.mosaic.dev", "frameworks", "reservations"] {
        assert!(
            names(&s, what).is_empty(),
            "{what} left: {:?}",
            names(&s, what)
        );
    }
    let secrets = s.kubectl_ok(&["get", "secrets", "-l", "owner=helm", "-o", "name"]);
    assert_eq!(secrets, "", "release records left");
    let list: serde_json::Value =
        serde_json::from_str(&helm_ok(&s, &["list", "-o", "json"])).unwrap();
    assert_eq!(list, serde_json::json!([]));
}
