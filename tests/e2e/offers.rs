//! External frameworks: the test plays the framework (a kube-rs client) that
//! watches its Offers, accepts one by creating a Task with spec.offer,
//! declines another by deleting it, and leaves one unanswered.

use crate::support::{TestServer, mosaic, tasks_api, wait_for, wait_task};
use kube::api::{DynamicObject, ListParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

async fn offers(api: &kube::Api<DynamicObject>) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = api
        .list(&ListParams::default().fields("spec.framework=ext"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| {
            (
                o.metadata.name.clone().unwrap(),
                o.data["spec"]["agent"].as_str().unwrap().to_string(),
                o.data["spec"]["resources"]["cpus"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

#[tokio::test]
async fn an_external_framework_accepts_declines_and_lets_offers_expire() {
    let s = TestServer::start().unwrap();
    let _agents = s.spawn_agent_with("sim", "cpus=2,memory=4Gi", &["--simulate", "--count", "2"]);
    let client = s.client().await.unwrap();
    let fw: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Framework", "metadata": {"name": "ext"},
        "spec": {"scheduler": "External", "refuseSeconds": 5, "offerTimeoutSeconds": 3}}))
    .unwrap();
    kube::Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &mosaic("Framework", "frameworks"),
    )
    .create(&PostParams::default(), &fw)
    .await
    .unwrap();
    let api = kube::Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &mosaic("Offer", "offers"),
    );
    wait_for(
        Duration::from_secs(30),
        "an offer of each agent",
        || async { offers(&api).await.len() == 2 },
    )
    .await
    .unwrap();
    let first = offers(&api).await;
    assert_eq!(
        first
            .iter()
            .map(|o| (o.1.as_str(), o.2.as_str()))
            .collect::<Vec<_>>(),
        [("sim-0", "2"), ("sim-1", "2")],
        "each agent's whole 2 cpus are offered"
    );

    // Accept sim-0's offer with a task of 1 cpu; decline sim-1's.
    let tasks = tasks_api(client.clone());
    let t: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "on-offer"},
        "spec": {"framework": "ext", "offer": first[0].0, "command": "simulated",
                 "resources": {"cpus": "1", "memory": "1Gi"}}}))
    .unwrap();
    tasks.create(&PostParams::default(), &t).await.unwrap();
    api.delete(&first[1].0, &Default::default()).await.unwrap();
    let declined_at = Instant::now();
    let st = wait_task(&tasks, "on-offer", Duration::from_secs(30), |s| {
        s["phase"] == "Running"
    })
    .await
    .unwrap();
    assert_eq!(st["agent"], "sim-0", "{st}");

    // The unused cpu of sim-0 comes back as a new offer; sim-1 is not offered
    // again while the refusal lasts (5 s).
    let mut reoffered = None;
    while declined_at.elapsed() < Duration::from_secs(4) {
        let now = offers(&api).await;
        assert!(
            now.iter().all(|o| o.1 != "sim-1"),
            "sim-1 was offered again {:?} after the decline: {now:?}",
            declined_at.elapsed()
        );
        if let Some(o) = now.iter().find(|o| o.1 == "sim-0" && o.0 != first[0].0) {
            assert_eq!(o.2, "1", "the rest of sim-0 is offered: {now:?}");
            reoffered.get_or_insert((o.0.clone(), Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (left, offered_at) = reoffered.expect("the unused part of the accepted offer came back");
    wait_for(
        Duration::from_secs(15),
        "sim-1 to be offered again after refuseSeconds",
        || async { offers(&api).await.iter().any(|o| o.1 == "sim-1") },
    )
    .await
    .unwrap();
    assert!(
        declined_at.elapsed() >= Duration::from_secs(5),
        "re-offered after {:?}",
        declined_at.elapsed()
    );

    // Unanswered, the leftover offer is rescinded after offerTimeoutSeconds (3 s).
    wait_for(
        Duration::from_secs(15),
        "the unanswered offer to be rescinded",
        || async { offers(&api).await.iter().all(|o| o.0 != left) },
    )
    .await
    .unwrap();
    let lived = offered_at.elapsed();
    assert!(
        lived >= Duration::from_millis(2500),
        "rescinded after only {lived:?}"
    );

    // A task naming an offer that is gone is an Error, not a launch.
    let t: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "stale"},
        "spec": {"framework": "ext", "offer": left, "command": "simulated",
                 "resources": {"cpus": "1", "memory": "1Gi"}}}))
    .unwrap();
    tasks.create(&PostParams::default(), &t).await.unwrap();
    let st = wait_task(&tasks, "stale", Duration::from_secs(30), |s| {
        s["phase"] == "Error"
    })
    .await
    .unwrap();
    assert_eq!(st["reason"], "InvalidOffer", "{st}");
}

/// The offer an External framework has of `agent` (none of `not`), once there is one.
async fn offer_of(api: &kube::Api<DynamicObject>, agent: &str, not: &[String]) -> DynamicObject {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = api
            .list(&ListParams::default().fields("spec.framework=ext"))
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|o| {
                o.data["spec"]["agent"] == agent && !not.contains(o.metadata.name.as_ref().unwrap())
            });
        if let Some(o) = found {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "no offer of {agent} (other than {not:?}) within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_offer_carries_the_agents_free_ports_and_its_tasks_get_theirs_from_it() {
    let s = TestServer::start().unwrap();
    let _agents = s.spawn_agent_with(
        "sim",
        "cpus=2,memory=4Gi,ports=[31000-31009]",
        &["--simulate", "--count", "1"],
    );
    let client = s.client().await.unwrap();
    let fw: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Framework", "metadata": {"name": "ext"},
        "spec": {"scheduler": "External", "refuseSeconds": 1}}))
    .unwrap();
    kube::Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &mosaic("Framework", "frameworks"),
    )
    .create(&PostParams::default(), &fw)
    .await
    .unwrap();
    let api = kube::Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "default",
        &mosaic("Offer", "offers"),
    );
    let first = offer_of(&api, "sim", &[]).await;
    let first_name = first.metadata.name.clone().unwrap();
    assert_eq!(
        first.data["spec"]["resources"]["ports"], "[31000-31009]",
        "the offer carries all the agent's ports: {:?}",
        first.data
    );

    // What the control plane offered cannot be edited into more.
    let grab = json!({"spec": {"resources": {"cpus": "64", "ports": "[1-65535]"}}});
    let err = api
        .patch(
            &first_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&grab),
        )
        .await
        .expect_err("an Offer's spec is immutable");
    assert!(
        err.to_string().contains("an Offer's spec is immutable"),
        "{err}"
    );

    // Nor can an Offer be forged: one the control plane did not make is
    // rescinded, and a task launched on it is refused.
    let forged: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Offer", "metadata": {"name": "forged"},
        "spec": {"framework": "ext", "agent": "sim",
                 "resources": {"cpus": "64", "memory": "64Gi", "ports": "[1-65535]"}}}))
    .unwrap();
    api.create(&PostParams::default(), &forged).await.unwrap();
    let tasks = tasks_api(client.clone());
    let t: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "on-forged"},
        "spec": {"framework": "ext", "offer": "forged", "command": "simulated",
                 "resources": {"cpus": "32", "memory": "1Gi"},
                 "ports": [{"name": "ssh", "hostPort": 22}]}}))
    .unwrap();
    tasks.create(&PostParams::default(), &t).await.unwrap();
    let st = wait_task(&tasks, "on-forged", Duration::from_secs(30), |s| {
        s["phase"] == "Error"
    })
    .await
    .unwrap();
    assert_eq!(st["reason"], "InvalidOffer", "{st}");
    assert!(st.get("agent").is_none(), "never bound: {st}");
    wait_for(
        Duration::from_secs(15),
        "the forged offer rescinded",
        || async { api.get_opt("forged").await.unwrap().is_none() },
    )
    .await
    .unwrap();

    // Accept with a task asking for one port of the offer's choosing and one fixed.
    let t: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "web"},
        "spec": {"framework": "ext", "offer": first_name, "command": "simulated",
                 "resources": {"cpus": "1", "memory": "1Gi"},
                 "ports": [{"name": "http"}, {"name": "admin", "hostPort": 31005}]}}))
    .unwrap();
    tasks.create(&PostParams::default(), &t).await.unwrap();
    let st = wait_task(&tasks, "web", Duration::from_secs(30), |s| {
        s["phase"] == "Running"
    })
    .await
    .unwrap();
    assert_eq!(
        st["ports"],
        json!([{"name": "http", "port": 31000}, {"name": "admin", "port": 31005}]),
        "{st}"
    );

    // The rest of the agent comes back as a new offer, without the task's ports.
    let rest = offer_of(&api, "sim", std::slice::from_ref(&first_name)).await;
    assert_eq!(
        rest.data["spec"]["resources"]["ports"], "[31001-31004,31006-31009]",
        "{:?}",
        rest.data
    );

    // A port the offer does not carry is refused with a reason naming it.
    let t: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task", "metadata": {"name": "taken"},
        "spec": {"framework": "ext", "offer": rest.metadata.name, "command": "simulated",
                 "resources": {"cpus": "500m", "memory": "1Gi"},
                 "ports": [{"name": "admin", "hostPort": 31005}]}}))
    .unwrap();
    tasks.create(&PostParams::default(), &t).await.unwrap();
    let st = wait_task(&tasks, "taken", Duration::from_secs(30), |s| {
        s["phase"] == "Error"
    })
    .await
    .unwrap();
    assert_eq!(st["reason"], "InvalidOffer", "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("host port 31005 is not among the ports it has left"),
        "{st}"
    );
}
