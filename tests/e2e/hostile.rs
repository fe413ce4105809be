//! A client trying to break the server for everyone (issue 21, items 3 to 5):
//! each test is the attack, then a check that other clients are still served.

use crate::support::*;
use std::time::Duration;

/// `{"f:k": {"f:k": ... {}}}`, `levels` deep.
fn nested(levels: usize) -> serde_json::Value {
    let mut v = serde_json::json!({});
    for _ in 0..levels {
        v = serde_json::json!({ "f:k": v });
    }
    v
}

#[tokio::test]
async fn a_patch_that_would_make_an_object_unreadable_is_refused() {
    let s = TestServer::start().unwrap();
    let f = write_file(s.dir.path(), "t.yaml", &task_yaml("victim", "100m"));
    s.kubectl_ok(&["apply", "-f", &f]);
    // Two adds, each within the reader's limit, together far past it: the
    // patch that once left every list and watch of Tasks failing with 500.
    let base = "/metadata/managedFields/0/fieldsV1/f:x";
    let deeper = format!("{base}{}", "/f:k".repeat(90));
    let ops = serde_json::json!([
        {"op": "add", "path": base, "value": nested(90)},
        {"op": "add", "path": deeper, "value": nested(90)},
    ]);
    let out = s.kubectl(&[
        "patch",
        "task",
        "victim",
        "--type=json",
        "-p",
        &ops.to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the patch was accepted");
    assert!(
        err.contains("Invalid")
            && err.contains("nested more than 100 levels")
            && err.contains("metadata.managedFields[0].fieldsV1.f:x"),
        "{err}"
    );
    // Everything still reads: get, list, a watch from the start, delete.
    s.kubectl_ok(&["get", "task", "victim", "-o", "json"]);
    let list = s.kubectl_ok(&["get", "tasks", "-o", "name"]);
    assert!(list.contains("task.mosaic.dev/victim"), "{list}");
    let api = tasks_api(s.client().await.unwrap());
    let lp = kube::api::WatchParams::default().timeout(1);
    use futures::StreamExt;
    let mut events = api.watch(&lp, "0").await.unwrap().boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("a watch event")
        .expect("the stream is open")
        .expect("a readable event");
    assert!(
        matches!(first, kube::api::WatchEvent::Added(_)),
        "{first:?}"
    );
    s.kubectl_ok(&["delete", "task", "victim", "--wait=false"]);
}
