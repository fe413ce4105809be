//! Reservations bound (or found unsatisfiable) against a fake API
//! ([`crate::fake_api`]): each status write is checked for its path, field
//! manager, resourceVersion guard and typed body, in milliseconds.

use crate::allocator::{AgentSpec, Allocator, Resources, RoleSpec};
use kube::runtime::reflector;
use kube::runtime::watcher;
use mosaic_crds::{Agent, Reservation};
use serde_json::json;
use std::sync::Arc;

fn reservation(name: &str, cpus: &str) -> Arc<Reservation> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "mosaic.dev/v1alpha1", "kind": "Reservation",
            "metadata": {"name": name, "resourceVersion": "3", "generation": 1},
            "spec": {"role": "team", "resources": {"cpus": cpus, "memory": "1Gi"}}}))
        .expect("a valid Reservation"),
    )
}

#[tokio::test]
async fn a_reservation_that_fits_is_bound_and_one_that_never_can_says_why() {
    let (client, mut api) = crate::fake_api::client();
    let mut alloc = Allocator::new();
    alloc.set_role(RoleSpec::new("team"));
    alloc.set_agent(AgentSpec::new(
        "a1",
        Resources::new(4000, 8 * 1024 * 1024 * 1024),
    ));
    let (agents, mut w) = reflector::store::<Agent>();
    let a1: Agent = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": "a1"}, "spec": {}}))
    .unwrap();
    w.apply_watcher_event(&watcher::Event::Init);
    w.apply_watcher_event(&watcher::Event::InitApply(a1));
    w.apply_watcher_event(&watcher::Event::InitDone);
    let unbound = vec![reservation("small", "1"), reservation("huge", "64")];
    let binding = tokio::spawn(async move {
        let left = crate::reservations::bind_pending(&client, &mut alloc, &agents, unbound).await;
        (left, alloc)
    });
    let bound = api.next(200, json!({})).await;
    assert_eq!(bound.method, http::Method::PATCH);
    assert!(
        bound
            .uri
            .starts_with("/apis/mosaic.dev/v1alpha1/reservations/small/status?"),
        "{bound:?}"
    );
    assert!(
        bound.uri.contains("fieldManager=mosaic-controllers"),
        "{bound:?}"
    );
    assert_eq!(bound.body["metadata"]["resourceVersion"], "3");
    assert_eq!(bound.body["status"]["phase"], "Bound");
    assert_eq!(bound.body["status"]["agent"], "a1");
    let refused = api.next(200, json!({})).await;
    assert!(
        refused.uri.contains("/reservations/huge/status?"),
        "{refused:?}"
    );
    assert_eq!(refused.body["status"]["phase"], "Unsatisfiable");
    let why = refused.body["status"]["conditions"].to_string();
    assert!(why.contains("no matching agent has room"), "{why}");
    let (left, mut alloc) = binding.await.unwrap();
    let left: Vec<String> = left
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    assert_eq!(left, ["huge"], "the unsatisfiable one is tried again");
    // small's cpu is held on a1: 3.5 more do not fit beside it.
    assert!(
        alloc
            .reserve("team", "a1", Resources::new(3500, 0))
            .is_err()
    );
    assert!(alloc.reserve("team", "a1", Resources::new(3000, 0)).is_ok());
}
