//! Garbage collection by ownerReferences with each propagation policy, and
//! namespace termination, driven by the real kubectl: what Kubernetes does to
//! dependents when their owner goes, and to a namespace's content.

use crate::support::*;
use std::time::Duration;

fn owner_and_dependent(s: &TestServer, ns: &str, hold: bool) -> String {
    s.kubectl_ok(&["create", "configmap", "owner", "-n", ns]);
    let uid = s.kubectl_ok(&[
        "get",
        "configmap",
        "owner",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let finalizers = if hold {
        "\n  finalizers: [test.mosaic.dev/hold]"
    } else {
        ""
    };
    let task = format!(
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: child\n  namespace: {ns}{finalizers}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: owner\n    uid: {uid}\n    blockOwnerDeletion: true\nspec:\n  command: echo child\n  framework: nowhere\n"
    );
    let f = write_file(s.dir.path(), &format!("child-{ns}.yaml"), &task);
    s.kubectl_ok(&["apply", "-f", &f]);
    uid
}

fn exists(s: &TestServer, what: &[&str]) -> bool {
    let mut args = vec!["get"];
    args.extend(what);
    args.extend(["-o", "name"]);
    s.kubectl(&args).status.success()
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    wait_for(Duration::from_secs(20), what, || {
        let ok = cond();
        async move { ok }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn background_deletion_removes_dependents_after_the_owner() {
    let s = TestServer::start().unwrap();
    owner_and_dependent(&s, "default", false);
    s.kubectl_ok(&["delete", "configmap", "owner", "--cascade=background"]);
    assert!(
        !exists(&s, &["configmap", "owner"]),
        "the owner goes at once"
    );
    until("the dependent task to be collected", || {
        !exists(&s, &["task", "child"])
    })
    .await;
}

#[tokio::test]
async fn foreground_deletion_keeps_the_owner_until_its_dependents_are_gone() {
    let s = TestServer::start().unwrap();
    owner_and_dependent(&s, "default", true);
    s.kubectl_ok(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=foreground",
        "--wait=false",
    ]);
    until("the dependent to be marked for deletion", || {
        !s.kubectl_ok(&[
            "get",
            "task",
            "child",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .is_empty()
    })
    .await;
    let owner = s.kubectl_ok(&[
        "get",
        "configmap",
        "owner",
        "-o",
        "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
    ]);
    assert!(
        owner.contains("foregroundDeletion") && owner.len() > 30,
        "{owner}"
    );
    // The dependent's own finalizer holds it, and so the owner.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        exists(&s, &["configmap", "owner"]),
        "the owner waits for its dependent"
    );
    s.kubectl_ok(&[
        "patch",
        "task",
        "child",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    until("the dependent, then the owner, to go", || {
        !exists(&s, &["task", "child"]) && !exists(&s, &["configmap", "owner"])
    })
    .await;
}

#[tokio::test]
async fn orphan_deletion_leaves_dependents_without_the_reference() {
    let s = TestServer::start().unwrap();
    owner_and_dependent(&s, "default", false);
    s.kubectl_ok(&["delete", "configmap", "owner", "--cascade=orphan"]);
    until("the owner to go", || !exists(&s, &["configmap", "owner"])).await;
    let refs = s.kubectl_ok(&[
        "get",
        "task",
        "child",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(refs, "", "the orphan keeps no reference to its owner");
    std::thread::sleep(Duration::from_millis(600));
    assert!(exists(&s, &["task", "child"]), "and is not collected");
}

#[tokio::test]
async fn a_deleted_namespace_terminates_refuses_new_content_and_empties() {
    let s = TestServer::start().unwrap();
    s.kubectl_ok(&["create", "namespace", "doomed"]);
    owner_and_dependent(&s, "doomed", true);
    s.kubectl_ok(&["create", "configmap", "plain", "-n", "doomed"]);
    s.kubectl_ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let phase = s.kubectl_ok(&[
        "get",
        "namespace",
        "doomed",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Terminating");
    until("the content without finalizers to go", || {
        !exists(&s, &["configmap", "plain", "-n", "doomed"])
    })
    .await;
    let f = write_file(s.dir.path(), "late.yaml", &task_yaml("late", "100m"));
    let out = s.kubectl(&["apply", "-n", "doomed", "-f", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Forbidden") && err.contains("because it is being terminated"),
        "{err}"
    );
    // The held task keeps the namespace Terminating; released, everything goes.
    assert!(exists(&s, &["namespace", "doomed"]));
    s.kubectl_ok(&[
        "patch",
        "task",
        "child",
        "-n",
        "doomed",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    until("the namespace to go", || {
        !exists(&s, &["namespace", "doomed"])
    })
    .await;
    assert!(!exists(&s, &["task", "child", "-n", "doomed"]));
}
