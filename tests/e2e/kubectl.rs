//! The real kubectl against `mosaic server`: discovery, explain, apply, get,
//! watch, wait and delete, with kubectl's default validation on.

use crate::support::{TestServer, task_yaml, tasks_api, write_file};
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[tokio::test]
async fn api_resources_and_explain_with_only_the_kubeconfig() {
    let s = TestServer::start().unwrap();
    let out = s.kubectl_ok(&["api-resources"]);
    for r in [
        "agents",
        "frameworks",
        "roles",
        "reservations",
        "tasks",
        "offers",
    ] {
        assert!(
            out.lines().any(
                |l| l.split_whitespace().next() == Some(r) && l.contains("mosaic.dev/v1alpha1")
            ),
            "api-resources lacks {r}:\n{out}"
        );
    }
    let out = s.kubectl_ok(&["explain", "task.spec.resources"]);
    assert!(
        out.contains("What is allocated to the task and enforced on it"),
        "{out}"
    );
    assert!(out.contains("cpus") && out.contains("memory"), "{out}");
}

#[tokio::test]
async fn apply_get_edit_roundtrip_delete() {
    let s = TestServer::start().unwrap();
    let file = write_file(s.dir.path(), "task.yaml", &task_yaml("hello", "500m"));
    let out = s.kubectl_ok(&["apply", "-f", &file]);
    assert!(out.contains("task.mosaic.dev/hello created"), "{out}");

    let out = s.kubectl_ok(&["get", "tasks"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "AGENT", "FRAMEWORK", "EXIT", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.first(), Some(&"hello"), "{out}");
    assert!(
        row.contains(&"default"),
        "framework column shows the default: {out}"
    );

    // -o yaml round-trips: it parses to exactly the object the API serves, and
    // replacing the object with it leaves spec and generation as they were.
    let yaml = s.kubectl_ok(&["get", "task", "hello", "-o", "yaml"]);
    let from_kubectl: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    let api = tasks_api(s.client().await.unwrap());
    let served = serde_json::to_value(api.get("hello").await.unwrap()).unwrap();
    // (kubectl leaves out managedFields unless --show-managed-fields.)
    let mut shown = served.clone();
    shown["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    assert_eq!(from_kubectl, shown);
    let rt = write_file(s.dir.path(), "roundtrip.yaml", &yaml);
    s.kubectl_ok(&["replace", "-f", &rt]);
    let after = serde_json::to_value(api.get("hello").await.unwrap()).unwrap();
    assert_eq!(after["spec"], served["spec"]);
    assert_eq!(after["metadata"]["generation"], 1);
    assert_eq!(
        after["spec"]["backoffLimit"], 3,
        "defaults applied from the schema"
    );

    // An edited manifest patches the object.
    let file = write_file(s.dir.path(), "task.yaml", &task_yaml("hello", "250m"));
    let out = s.kubectl_ok(&["apply", "-f", &file]);
    assert!(out.contains("configured"), "{out}");
    let t = api.get("hello").await.unwrap();
    assert_eq!(t.data["spec"]["resources"]["cpus"], "250m");
    assert_eq!(t.metadata.generation, Some(2));

    let out = s.kubectl_ok(&["delete", "task", "hello"]);
    assert!(out.contains("deleted"), "{out}");
    let out = s.kubectl(&["get", "task", "hello"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{out:?}"
    );
}

#[tokio::test]
async fn get_watch_prints_another_clients_change_within_a_second() {
    let s = TestServer::start().unwrap();
    let api = tasks_api(s.client().await.unwrap());
    let mut child = s
        .kubectl_cmd(&["get", "tasks", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    // Make sure the watch is established: an object created now must show up.
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "first"}, "spec": {"command": "true"}}))
    .unwrap();
    api.create(&Default::default(), &obj).await.unwrap();
    let seen = |rx: &std::sync::mpsc::Receiver<(Instant, String)>,
                needle: &str|
     -> Option<Instant> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Ok((t, l)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if l.contains(needle) {
                return Some(t);
            }
        }
        None
    };
    assert!(
        seen(&rx, "first").is_some(),
        "kubectl get -w never showed the first task"
    );
    let mut obj2 = obj.clone();
    obj2.metadata.name = Some("second".into());
    let t0 = Instant::now();
    api.create(&Default::default(), &obj2).await.unwrap();
    let t1 = seen(&rx, "second").expect("kubectl get -w never showed the second task");
    let _ = child.kill();
    let _ = child.wait();
    let delay = t1.duration_since(t0);
    assert!(
        delay < Duration::from_secs(1),
        "the change took {delay:?} to show"
    );
}

#[tokio::test]
async fn wait_for_ready_set_through_status_and_generation_rules() {
    let s = TestServer::start().unwrap();
    let file = write_file(s.dir.path(), "task.yaml", &task_yaml("w", "100m"));
    s.kubectl_ok(&["apply", "-f", &file]);
    let api = tasks_api(s.client().await.unwrap());
    let waiter = s
        .kubectl_cmd(&["wait", "--for=condition=Ready", "task/w", "--timeout=60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let kubectl's watch start, then set the condition through /status.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = json!({"status": {"phase": "Running", "observedGeneration": 1, "conditions": [{
        "type": "Ready", "status": "True", "reason": "Running", "message": "running",
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}});
    let after_status = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || waiter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl wait failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "a status update does not bump generation"
    );
    // A status sent to the main resource is ignored; a spec change bumps generation.
    let spec = json!({"spec": {"backoffLimit": 5}, "status": {"phase": "Failed"}});
    let after_spec = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert_eq!(after_spec.data["status"]["phase"], "Running");
}

#[tokio::test]
async fn bad_manifests_are_rejected_naming_the_field() {
    let s = TestServer::start().unwrap();
    let wrong_type = "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: bad\nspec:\n  command: x\n  backoffLimit: three\n";
    let f = write_file(s.dir.path(), "bad.yaml", wrong_type);
    let out = s.kubectl(&["apply", "-f", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("is invalid") && err.contains("spec.backoffLimit"),
        "{err}"
    );
    assert!(err.contains("must be of type integer"), "{err}");

    let unknown = "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: unk\nspec:\n  command: x\n  bogusField: 1\n";
    let f = write_file(s.dir.path(), "unk.yaml", unknown);
    let out = s.kubectl(&["apply", "-f", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unknown field \"spec.bogusField\""), "{err}");

    let neither = "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: none\nspec:\n  resources: {cpus: lots}\n";
    let f = write_file(s.dir.path(), "none.yaml", neither);
    let out = s.kubectl(&["apply", "-f", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.command") && err.contains("spec.resources.cpus"),
        "{err}"
    );

    // Nothing was stored, and the server still serves.
    let out = s.kubectl_ok(&["get", "tasks", "-o", "name"]);
    assert_eq!(out.trim(), "", "no task was stored: {out}");
}
