//! `tasks/<name>/binding`: Mosaic's API server binds a Task in one write (the
//! kill-before-delete finalizer and the Staging status together), refuses a
//! stale, repeated or malformed binding with a Kubernetes Status, lists the
//! subresource in discovery, and lets only callers granted it use it.

use crate::support::{TestServer, client_from};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

fn binding(name: &str, rv: Option<&str>, agent: &str) -> Value {
    json!({"apiVersion": "mosaic.dev/v1alpha1", "kind": "TaskBinding",
        "metadata": {"name": name, "resourceVersion": rv}, "target": {"agent": agent}})
}

async fn bind(
    api: &Api<DynamicObject>,
    name: &str,
    body: &Value,
) -> Result<kube::core::Status, kube::core::Status> {
    match api
        .create_subresource::<_, kube::core::Status>("binding", name, &PostParams::default(), body)
        .await
    {
        Ok(s) => Ok(s),
        Err(kube::Error::Api(e)) => Err(*e),
        Err(e) => panic!("binding {name}: {e}"),
    }
}

#[tokio::test]
async fn a_binding_sets_the_finalizer_and_the_status_in_one_write_and_only_once() {
    let s = TestServer::start_with(&["--no-controllers"]).unwrap();
    let client = s.client().await.unwrap();
    // Discovery names it (legacy and aggregated), so controllers know to use it.
    let raw = s.kubectl_ok(&["get", "--raw", "/apis/mosaic.dev/v1alpha1"]);
    let list: Value = serde_json::from_str(&raw).unwrap();
    let entry = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "tasks/binding")
        .unwrap_or_else(|| panic!("tasks/binding is not in discovery: {raw}"));
    assert_eq!(entry["verbs"], json!(["create"]));
    assert_eq!(entry["kind"], "TaskBinding");

    let api = crate::support::tasks_api(client.clone());
    let t: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "t"},
        "spec": {"command": "true", "resources": {"cpus": "100m", "memory": "16Mi"}}}))
    .unwrap();
    let created = api.create(&PostParams::default(), &t).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();

    // A stale resourceVersion: 409, nothing written.
    let e = bind(&api, "t", &binding("t", Some("1"), "a1"))
        .await
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e:?}");
    // No agent: 422 naming the field.
    let e = bind(&api, "t", &binding("t", Some(&rv), ""))
        .await
        .unwrap_err();
    assert_eq!(e.code, 422, "{e:?}");
    let raw = s.kubectl(&[
        "create",
        "--raw",
        "/apis/mosaic.dev/v1alpha1/namespaces/default/tasks/t/binding",
        "-f",
        &crate::support::write_file(s.dir.path(), "b.json", &binding("t", None, "").to_string()),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&raw.stdout),
        String::from_utf8_lossy(&raw.stderr)
    );
    assert!(
        !raw.status.success() && text.contains("target.agent"),
        "the error names the field: {text}"
    );
    // Another object's name: 400.
    let e = bind(&api, "t", &binding("u", None, "a1"))
        .await
        .unwrap_err();
    assert_eq!(e.code, 400, "{e:?}");
    let unchanged = api.get("t").await.unwrap();
    assert_eq!(unchanged.metadata.resource_version.as_deref(), Some(&*rv));

    // The binding: one new revision holding both the finalizer and the status.
    let ok = bind(&api, "t", &binding("t", Some(&rv), "a1"))
        .await
        .unwrap();
    assert_eq!(ok.code, 201);
    let bound = api.get("t").await.unwrap();
    assert_eq!(
        bound
            .metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse::<i64>()
            .unwrap(),
        rv.parse::<i64>().unwrap() + 1,
        "one write"
    );
    assert_eq!(
        bound.metadata.finalizers,
        Some(vec!["mosaic.dev/kill-before-delete".to_string()])
    );
    let st = &bound.data["status"];
    assert_eq!(st["phase"], "Staging");
    assert_eq!(st["agent"], "a1");
    assert_eq!(st["observedGeneration"], 1);
    let scheduled = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Scheduled")
        .unwrap();
    assert_eq!(scheduled["status"], "True");
    // Ownership as the two writes it stands for would have recorded it.
    let managed = bound.metadata.managed_fields.clone().unwrap();
    let by_sub = |sub: Option<&str>| {
        managed
            .iter()
            .find(|m| m.operation.as_deref() == Some("Update") && m.subresource.as_deref() == sub)
            .and_then(|m| m.fields_v1.clone())
            .map(|f| f.0)
    };
    let main = by_sub(None).expect("an Update entry for the finalizer");
    assert!(main["f:metadata"]["f:finalizers"].is_object(), "{main}");
    let status = by_sub(Some("status")).expect("a status Update entry");
    assert!(status["f:status"]["f:agent"].is_object(), "{status}");

    // Bound once: a second binding is a 409 that names the agent.
    let e = bind(&api, "t", &binding("t", None, "a2"))
        .await
        .unwrap_err();
    assert_eq!(e.code, 409, "{e:?}");
    assert!(e.message.contains("already bound to agent a1"), "{e:?}");
    // Only POST.
    let get = s.kubectl(&[
        "get",
        "--raw",
        "/apis/mosaic.dev/v1alpha1/namespaces/default/tasks/t/binding",
    ]);
    assert!(!get.status.success(), "GET on binding must fail: {get:?}");
    // A dry run writes nothing.
    let t2: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "t2"},
        "spec": {"command": "true"}}))
    .unwrap();
    let c2 = api.create(&PostParams::default(), &t2).await.unwrap();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create_subresource::<_, kube::core::Status>(
        "binding",
        "t2",
        &dry,
        &binding("t2", None, "a1"),
    )
    .await
    .unwrap();
    let after = api.get("t2").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        c2.metadata.resource_version
    );
    assert!(after.data["status"]["agent"].is_null());

    // The agent identity may not bind.
    let agent = client_from(&s.agent_kubeconfig()).await.unwrap();
    let as_agent = crate::support::tasks_api(agent);
    let e = bind(&as_agent, "t2", &binding("t2", None, "a1"))
        .await
        .unwrap_err();
    assert_eq!(e.code, 403, "{e:?}");
}
