//! The scheduler's incremental view against a rebuild, in milliseconds: a
//! view brought up to date change by change holds what a view built afresh
//! from the same caches holds (the tasks queued, what each agent holds), with
//! the fake API ([`crate::fake_api`]) behind the writes the view may call for.

use crate::binder::Binder;
use crate::view::{Caches, TaskCx, View};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher;
use mosaic_crds::{Agent, Framework, Offer, Reservation, Role, Task};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

fn store<K>(objects: Vec<K>) -> (Store<K>, Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (reader, writer)
}

fn agent(name: &str) -> Agent {
    serde_json::from_value(json!({
    "apiVersion": "mosaic.dev/v1alpha1", "kind": "Agent",
    "metadata": {"name": name, "generation": 1},
    "spec": {},
    "status": {
        "capacity": {"cpus": "4", "memory": "8Gi"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Heartbeating",
                        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }}))
    .expect("a valid Agent")
}

fn task(name: &str, status: serde_json::Value) -> Task {
    serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"),
                     "resourceVersion": "1", "generation": 1},
        "spec": {"command": "sleep 60", "resources": {"cpus": "500m", "memory": "64Mi"}},
        "status": status}))
    .expect("a valid Task")
}

/// What a view holds that the scheduler acts on.
fn held(v: &View) -> (usize, Vec<String>, BTreeSet<String>) {
    let mut on = v.tasks_on("a1");
    on.sort();
    (v.queued(), on, v.held_tasks().into_iter().collect())
}

#[tokio::test]
async fn a_view_kept_up_to_date_holds_what_a_rebuilt_one_does() {
    let (client, _api) = crate::fake_api::client();
    let mut binder = Binder::new(client.clone(), crate::binding::Path::Subresource);
    let mut missing = BTreeSet::new();
    let running = json!({"phase": "Running", "agent": "a1"});
    let (tasks, mut tasks_w) = store(vec![
        task("p1", json!({"phase": "Pending"})),
        task("r1", running.clone()),
        task("r2", running),
    ]);
    let (agents, _aw) = store(vec![agent("a1"), agent("a2")]);
    let (frameworks, _fw) = store::<Framework>(Vec::new());
    let (roles, _rw) = store::<Role>(Vec::new());
    let (reservations, _resw) = store::<Reservation>(Vec::new());
    let (offers, _ow) = store::<Offer>(Vec::new());
    let caches = Caches {
        tasks: &tasks,
        agents: &agents,
        frameworks: &frameworks,
        roles: &roles,
        reservations: &reservations,
        offers: &offers,
    };
    let live = |_: &str| true;
    let mut cx = TaskCx {
        client: &client,
        binder: &mut binder,
        missing_defaults: &mut missing,
    };
    let mut view = View::build(&caches, &live, &mut cx);
    assert_eq!(
        held(&view),
        (
            1,
            vec!["default/r1".to_string(), "default/r2".to_string()],
            ["default/r1".to_string(), "default/r2".to_string()].into()
        )
    );

    // r1 ends, p2 comes, p1 goes, r2 moves on: each change applied as the
    // scheduler applies what its watches say changed.
    let changes = [
        (
            Some(task("r1", json!({"phase": "Finished", "agent": "a1"}))),
            "r1",
        ),
        (Some(task("p2", json!({"phase": "Pending"}))), "p2"),
        (None, "p1"),
    ];
    for (new, name) in changes {
        match &new {
            Some(t) => tasks_w.apply_watcher_event(&watcher::Event::Apply(t.clone())),
            None => tasks_w.apply_watcher_event(&watcher::Event::Delete(task(name, json!({})))),
        }
        let key = format!("default/{name}");
        let now = tasks.get(&crate::keys::task_ref(&key));
        assert_eq!(now.is_some(), new.is_some());
        view.task(&key, now.as_ref().map(Arc::clone).as_ref(), &mut cx);
    }
    let rebuilt = View::build(&caches, &live, &mut cx);
    assert_eq!(held(&view), held(&rebuilt));
    assert_eq!(
        held(&view),
        (
            1,
            vec!["default/r2".to_string()],
            ["default/r2".to_string()].into()
        )
    );
}
