//! The index registry's dispatch, fed a watch's events by hand: every
//! subscriber sees each change once the cache holds it, a late one starts
//! from the cache, a dropped one is forgotten, and a controller's stream
//! hands on each changed object once however often it changed.

use super::*;
use futures::channel::mpsc;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use mosaic_crds::task::TaskSpec;
use std::time::Duration;

fn task(name: &str, owner: Option<&str>, rv: &str) -> Task {
    let owner_references = owner.map(|uid| {
        vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "mosaic.dev/v1alpha1".into(),
                kind: "App".into(),
                name: "web".into(),
                uid: uid.into(),
                ..Default::default()
            },
        ]
    });
    Task {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(rv.into()),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: serde_json::from_value::<TaskSpec>(serde_json::json!({"command": "true"}))
            .expect("a valid spec"),
        status: None,
    }
}

type Tx = mpsc::UnboundedSender<Result<watcher::Event<Task>, watcher::Error>>;

fn started() -> (Tx, Shared<Task>, tokio::task::AbortHandle) {
    let (tx, rx) = mpsc::unbounded();
    let (shared, handle) = Shared::start(rx);
    (tx, shared, handle)
}

fn send(tx: &Tx, ev: watcher::Event<Task>) {
    tx.unbounded_send(Ok(ev)).expect("the dispatcher runs");
}

/// Waits (at most 5 s) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn names(refs: &[ObjectRef<Task>]) -> Vec<String> {
    let mut v: Vec<String> = refs.iter().map(|r| r.name.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn subscribers_share_one_cache_and_a_late_one_starts_from_it() {
    let (tx, shared, _h) = started();
    let notify = Arc::new(Notify::new());
    let early = crate::watches::Changes::of(&shared, notify.clone());
    let by_app = ByOwner::of(&shared, "App");
    send(&tx, watcher::Event::Init);
    send(&tx, watcher::Event::InitApply(task("a", Some("u1"), "1")));
    send(&tx, watcher::Event::InitApply(task("b", None, "2")));
    send(&tx, watcher::Event::InitDone);
    let store = shared.store();
    until("the first list", || store.state().len() == 2).await;
    until("the reset", || early.take().1).await;
    assert_eq!(names(&by_app.owned("u1")), ["a"]);

    // A late subscriber is reset with the cache at once.
    let late = ByOwner::of(&shared, "App");
    assert_eq!(names(&late.owned("u1")), ["a"]);

    send(&tx, watcher::Event::Apply(task("c", Some("u1"), "3")));
    until("c in both indexes", || {
        names(&by_app.owned("u1")) == ["a", "c"] && names(&late.owned("u1")) == ["a", "c"]
    })
    .await;
    let (changed, relisted) = early.take();
    assert!(!relisted);
    assert_eq!(
        changed.into_iter().map(|r| r.name).collect::<Vec<_>>(),
        ["c"]
    );
    assert!(
        store.get(&ObjectRef::new("c").within("ns")).is_some(),
        "the cache holds c first"
    );

    send(&tx, watcher::Event::Delete(task("a", Some("u1"), "4")));
    until("a gone from the index", || {
        names(&by_app.owned("u1")) == ["c"]
    })
    .await;
    assert!(store.get(&ObjectRef::new("a").within("ns")).is_none());
}

#[tokio::test]
async fn a_dropped_index_is_forgotten() {
    let (tx, shared, _h) = started();
    send(&tx, watcher::Event::Init);
    send(&tx, watcher::Event::InitDone);
    let kept = ByOwner::of(&shared, "App");
    let dropped = ByOwner::of(&shared, "App");
    let weak = Arc::downgrade(&dropped);
    drop(dropped);
    assert!(weak.upgrade().is_none());
    send(&tx, watcher::Event::Apply(task("a", Some("u1"), "1")));
    until("a in the kept index", || names(&kept.owned("u1")) == ["a"]).await;
    assert_eq!(shared.subscribers.lock().expect("lock").indexes.len(), 1);
}

#[tokio::test]
async fn a_stream_hands_on_each_changed_object_once_and_deletions_too() {
    let (tx, shared, _h) = started();
    send(&tx, watcher::Event::Init);
    send(&tx, watcher::Event::InitApply(task("a", Some("u1"), "1")));
    send(&tx, watcher::Event::InitDone);
    let store = shared.store();
    until("the first list", || store.state().len() == 1).await;
    let stream = shared.stream(|t| !t.owner_references().is_empty());
    futures::pin_mut!(stream);
    // What the cache held when it subscribed comes first.
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the cache's objects")
        .expect("an object");
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
    // Three changes of b and one of an unowned task: b once, at its latest.
    for rv in ["2", "3", "4"] {
        send(&tx, watcher::Event::Apply(task("b", Some("u1"), rv)));
    }
    send(&tx, watcher::Event::Apply(task("x", None, "5")));
    send(&tx, watcher::Event::Delete(task("a", Some("u1"), "6")));
    until("the cache sees all", || store.state().len() == 2).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let o = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a change")
            .expect("an object");
        seen.push((
            o.metadata.name.clone().unwrap_or_default(),
            o.resource_version().unwrap_or_default(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [("a".to_string(), "6".to_string()), ("b".into(), "4".into())]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .is_err(),
        "nothing else is pending"
    );
}

#[tokio::test]
async fn every_task_waiting_for_the_first_list_is_woken() {
    let (tx, shared, _h) = started();
    // Four waiters at once (the scheduler and three controllers share the
    // Agent cache): each must see the list done.
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let s = shared.clone();
            tokio::spawn(async move { s.ready().await })
        })
        .collect();
    tokio::task::yield_now().await;
    send(&tx, watcher::Event::Init);
    send(&tx, watcher::Event::InitApply(task("a", None, "1")));
    send(&tx, watcher::Event::InitDone);
    for w in waiters {
        let ready = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a waiter was not woken")
            .expect("the waiter ran");
        assert!(ready);
    }
    assert_eq!(shared.store().state().len(), 1);
}
