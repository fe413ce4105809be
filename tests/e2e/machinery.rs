//! API machinery through kubectl: CRDs served on creation, paging, field
//! selectors on selectable fields, dry runs, finalizers, and a stuck client
//! that does not hold up others.

use crate::support::{TestServer, task_yaml, tasks_api, wait_for, write_file};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn applying_a_crd_starts_serving_it() {
    let s = TestServer::start().unwrap();
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, default: 3}
"#;
    let f = write_file(s.dir.path(), "crd.yaml", crd);
    s.kubectl_ok(&["apply", "-f", &f]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let w = write_file(
        s.dir.path(),
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec: {}\n",
    );
    s.kubectl_ok(&["apply", "-f", &w]);
    let size = s.kubectl_ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.size}"]);
    assert_eq!(size, "3", "the CRD's default applies");
    s.kubectl_ok(&["delete", "crd", "widgets.example.com"]);
    let out = s.kubectl(&["get", "widgets"]);
    assert!(!out.status.success(), "deleting the CRD stops serving it");
}

#[tokio::test]
async fn paging_and_field_selectors() {
    let s = TestServer::start().unwrap();
    let api = tasks_api(s.client().await.unwrap());
    for i in 0..7 {
        let mut t: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": format!("t{i}")},
            "spec": {"command": "true", "framework": if i % 2 == 0 { "even" } else { "odd" }}}))
        .unwrap();
        t.metadata.labels = Some([("parity".to_string(), (i % 2).to_string())].into());
        api.create(&PostParams::default(), &t).await.unwrap();
    }
    // kubectl pages with limit/continue; every object comes back once.
    let out = s.kubectl_ok(&["get", "tasks", "--chunk-size=2", "-o", "name"]);
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 7, "{out}");
    let out = s.kubectl_ok(&[
        "get",
        "tasks",
        "--field-selector=spec.framework=odd",
        "-o",
        "name",
    ]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let out = s.kubectl_ok(&["get", "tasks", "-l", "parity in (0)", "-o", "name"]);
    assert_eq!(out.lines().count(), 4, "{out}");
    let bad = s.kubectl(&["get", "tasks", "--field-selector=spec.command=x"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("field label not supported"));
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let s = TestServer::start().unwrap();
    let f = write_file(s.dir.path(), "t.yaml", &task_yaml("d", "1"));
    let out = s.kubectl_ok(&["apply", "-f", &f, "--dry-run=server"]);
    assert!(out.contains("(server dry run)"), "{out}");
    assert!(
        !s.kubectl(&["get", "task", "d"]).status.success(),
        "dry-run create stored nothing"
    );
    s.kubectl_ok(&["apply", "-f", &f]);
    let api = tasks_api(s.client().await.unwrap());
    let before = api.get("d").await.unwrap();
    let f2 = write_file(s.dir.path(), "t.yaml", &task_yaml("d", "2"));
    s.kubectl_ok(&["apply", "-f", &f2, "--dry-run=server"]);
    s.kubectl_ok(&["delete", "task", "d", "--dry-run=server"]);
    let after = api.get("d").await.unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
    assert_eq!(after.data["spec"]["resources"]["cpus"], json!(1));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let s = TestServer::start().unwrap();
    let api = tasks_api(s.client().await.unwrap());
    let t: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "f", "finalizers": ["mosaic.dev/kill"]}, "spec": {"command": "true"}}))
    .unwrap();
    api.create(&PostParams::default(), &t).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = api.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let add = json!({"metadata": {"finalizers": ["mosaic.dev/kill", "other"]}});
    let err = api
        .patch("f", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no new finalizers"), "{err}");
    let clear = json!({"metadata": {"finalizers": null}});
    api.patch("f", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    wait_for(Duration::from_secs(5), "the object to go", || async {
        api.get_opt("f").await.unwrap().is_none()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_stuck_client_does_not_block_others() {
    let s = TestServer::start().unwrap();
    // A connection that never completes its TLS handshake, and a watch that is never read.
    let _stuck = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let client = s.client().await.unwrap();
    let req = http::Request::get("/apis/mosaic.dev/v1alpha1/tasks?watch=1")
        .body(Vec::new())
        .unwrap();
    let _unread = client.send(req.map(Into::into)).await.unwrap();
    let api = tasks_api(client);
    for i in 0..200 {
        let t: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": format!("s{i}")}, "spec": {"command": "true"}}))
        .unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            api.create(&PostParams::default(), &t),
        )
        .await
        .expect("a create was held up")
        .unwrap();
    }
    let out = s.kubectl_ok(&["get", "tasks", "-o", "name"]);
    assert_eq!(out.lines().count(), 200);
}
