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

/// The name of the one Task labelled `selector`.
fn task_named(s: &TestServer, selector: &str) -> String {
    let out = s.kubectl_ok(&["get", "tasks", "-l", selector, "-o", "name"]);
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 1, "tasks labelled {selector}: {out}");
    names[0].trim_start_matches("task.mosaic.dev/").to_string()
}

fn worker(s: &TestServer, i: usize) -> String {
    task_named(
        s,
        &format!("pipeline.mosaic.dev/part=worker,pipeline.mosaic.dev/index={i}"),
    )
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
    let report = task_named(&s, "pipeline.mosaic.dev/part=report");
    wait_task(&tasks, &report, Duration::from_secs(30), |st| {
        st["phase"] == "Finished"
    })
    .await
    .unwrap();
    for i in 0..2 {
        wait_task(&tasks, &worker(&s, i), Duration::from_secs(30), |st| {
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
        &report,
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
    let kept = worker(&s, 0);
    wait_task(&tasks, &worker(&s, 2), Duration::from_secs(30), |st| {
        st["phase"] == "Running"
    })
    .await
    .unwrap();

    // A changed command (a bound Task's spec cannot change): the chart names
    // Tasks after a hash of their spec, so the upgrade makes new workers and
    // Helm deletes the old ones; the release stays deployed.
    helm_ok(
        &s,
        &[
            "upgrade",
            "pipe",
            chart,
            "--reuse-values",
            "--set",
            "workers.command=sleep 3599",
            "--wait",
            "--timeout",
            "60s",
        ],
    );
    let renamed = worker(&s, 0);
    assert_ne!(renamed, kept, "the changed worker kept its name");
    let command = s.kubectl_ok(&["get", "task", &renamed, "-o", "jsonpath={.spec.command}"]);
    assert_eq!(command, "sleep 3599");
    wait_for(Duration::from_secs(30), "the old workers to go", || async {
        tasks.get_opt(&kept).await.is_ok_and(|t| t.is_none())
    })
    .await
    .unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&helm_ok(&s, &["list", "-o", "json"])).unwrap();
    assert_eq!(list[0]["name"], "pipe", "{list}");
    assert_eq!(list[0]["revision"], "3", "{list}");
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

#[tokio::test]
async fn ordered_steps_run_in_order_and_stop_at_the_first_failure() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("steps-node", "cpus=2,memory=2Gi");
    let chart = "charts/examples/ordered-steps";
    helm_ok(&s, &["install", "ok", chart, "--wait", "--timeout", "60s"]);
    let finished = |release: &str, phase: &str| {
        s.kubectl(&[
            "wait",
            &format!("--for=jsonpath={{.status.phase}}={phase}"),
            "task",
            "-l",
            &format!("app.kubernetes.io/instance={release}"),
            "--timeout=60s",
        ])
    };
    let out = finished("ok", "Finished");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = task_named(&s, "app.kubernetes.io/instance=ok");
    let logs = std::process::Command::new(mosaic_bin())
        .args(["logs", &name])
        .env("KUBECONFIG", s.kubeconfig())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "step migrate",
            "migrated",
            "step load",
            "loaded",
            "step report",
            "reported"
        ],
        "{text}"
    );
    // A failing step ends the run: the Task fails with its exit code, later steps never run.
    let values = write_file(
        s.dir.path(),
        "failing.yaml",
        "steps:\n- {name: migrate, command: echo migrated}\n- {name: load, command: exit 3}\n\
         - {name: report, command: echo reported}\n",
    );
    helm_ok(&s, &["install", "bad", chart, "-f", &values]);
    let out = finished("bad", "Failed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = task_named(&s, "app.kubernetes.io/instance=bad");
    let code = s.kubectl_ok(&["get", "task", &name, "-o", "jsonpath={.status.exitCode}"]);
    assert_eq!(code, "3");
}
