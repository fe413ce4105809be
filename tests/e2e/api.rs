//! The API's error contract through kube-rs and raw HTTPS: Status objects with
//! reasons and field causes, 401, 403, 413, 409, and a server that keeps serving.

use crate::support::{TestServer, client_from, mosaic, task, tasks_api};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;

fn status_of(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API Status error, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_objects_get_422_with_field_causes_and_nothing_is_stored() {
    let s = TestServer::start().unwrap();
    let api = tasks_api(s.client().await.unwrap());
    let mut bad = task("bad");
    bad.data["spec"]["restartPolicy"] = json!("Sometimes");
    bad.data["spec"]["env"] = json!([{"name": 7}]);
    let st = status_of(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"));
    let causes = st.details.unwrap().causes;
    let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
    assert!(fields.contains(&"spec.restartPolicy"), "{causes:?}");
    assert!(fields.contains(&"spec.env[0].name"), "{causes:?}");
    let st = status_of(api.get("bad").await.unwrap_err());
    assert_eq!(st.code, 404);
}

#[tokio::test]
async fn stale_updates_conflict_and_missing_namespaces_are_404() {
    let s = TestServer::start().unwrap();
    let client = s.client().await.unwrap();
    let api = tasks_api(client.clone());
    let created = api
        .create(&PostParams::default(), &task("a"))
        .await
        .unwrap();
    let mut first = created.clone();
    first.data["spec"]["backoffLimit"] = json!(1);
    api.replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.data["spec"]["backoffLimit"] = json!(2);
    let st = status_of(
        api.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    let st = status_of(
        api.create(&PostParams::default(), &task("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "AlreadyExists"));

    let elsewhere: Api<DynamicObject> =
        Api::namespaced_with(client, "nowhere", &mosaic("Task", "tasks"));
    let st = status_of(
        elsewhere
            .create(&PostParams::default(), &task("b"))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 404);
    assert!(
        st.message.contains("namespaces \"nowhere\" not found"),
        "{}",
        st.message
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_keeps_serving() {
    let s = TestServer::start().unwrap();
    let client = s.client().await.unwrap();
    let mut big = task("big");
    big.data["spec"]["command"] = json!("x".repeat(10 * 1024 * 1024));
    let body = serde_json::to_vec(&big).unwrap();
    let req = http::Request::post("/apis/mosaic.dev/v1alpha1/namespaces/default/tasks")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let st = status_of(client.request_text(req).await.unwrap_err());
    assert_eq!(
        (st.code, st.reason.as_str()),
        (413, "RequestEntityTooLarge")
    );
    let api = tasks_api(client);
    api.create(&PostParams::default(), &task("small"))
        .await
        .unwrap();
    assert!(api.get("big").await.is_err());
    assert_eq!(api.list(&Default::default()).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn unsupported_patch_and_malformed_json_are_clear_errors() {
    let s = TestServer::start().unwrap();
    let client = s.client().await.unwrap();
    tasks_api(client.clone())
        .create(&PostParams::default(), &task("p"))
        .await
        .unwrap();
    let req = http::Request::patch("/apis/mosaic.dev/v1alpha1/namespaces/default/tasks/p")
        .header("content-type", "application/strategic-merge-patch+json")
        .body(b"{}".to_vec())
        .unwrap();
    let st = status_of(client.request_text(req).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (415, "UnsupportedMediaType"));
    let req = http::Request::post("/apis/mosaic.dev/v1alpha1/namespaces/default/tasks")
        .header("content-type", "application/json")
        .body(b"{\"apiVersion\": \"mosaic.dev/v1alpha1\",\n \"kind\": ".to_vec())
        .unwrap();
    let st = status_of(client.request_text(req).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (400, "BadRequest"));
    assert!(st.message.contains("line 2"), "{}", st.message);
}

#[tokio::test]
async fn no_credentials_401_and_agent_identity_403() {
    let s = TestServer::start().unwrap();
    let kc = kube::config::Kubeconfig::read_from(s.kubeconfig()).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.auth_info = Default::default();
    let anonymous = kube::Client::try_from(cfg).unwrap();
    let st = status_of(
        tasks_api(anonymous)
            .list(&Default::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (401, "Unauthorized"));

    let agent = client_from(&s.agent_kubeconfig()).await.unwrap();
    let fws: Api<DynamicObject> =
        Api::namespaced_with(agent.clone(), "default", &mosaic("Framework", "frameworks"));
    let fw: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Framework", "metadata": {"name": "f"}, "spec": {}}))
    .unwrap();
    let st = status_of(fws.create(&PostParams::default(), &fw).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert!(
        st.message.contains("cannot create resource \"frameworks\""),
        "{}",
        st.message
    );
    // The bootstrap credential is for joining agents (docs/security.md): it
    // may neither register an Agent nor read Tasks itself.
    let agents: Api<DynamicObject> = Api::all_with(agent.clone(), &mosaic("Agent", "agents"));
    let ag: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "node-1"}, "spec": {}}))
    .unwrap();
    let st = status_of(
        agents
            .create(&PostParams::default(), &ag)
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 403);
    let st = status_of(
        tasks_api(agent.clone())
            .list(&Default::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 403);
    assert!(
        mosaic_agent::join::request(&agent, "node-1", &[])
            .await
            .unwrap()
            .is_some()
    );
    let st = status_of(
        tasks_api(agent)
            .create(&PostParams::default(), &task("t"))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 403);
}
