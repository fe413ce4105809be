//! kube-rs watchers and reflectors against `mosaic server`: ordered events,
//! streaming lists, and recovery by relisting after 410 Expired.

use crate::support::{TestServer, mosaic, task, tasks_api, wait_for};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a watcher delivered, as short strings ("init", "apply a 1", "delete a").
type Log = Arc<Mutex<Vec<String>>>;

/// Starts a watcher + reflector and waits for its initial list.
async fn spawn_watch(
    api: Api<DynamicObject>,
    cfg: watcher::Config,
) -> (Log, reflector::Store<DynamicObject>) {
    let writer = reflector::store::Writer::new(mosaic("Task", "tasks"));
    let reader = writer.as_reader();
    let log: Log = Default::default();
    let l = log.clone();
    let stream = watcher(api, cfg).default_backoff().reflect(writer);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let entry = match ev {
                Ok(watcher::Event::Init) => "init".to_string(),
                Ok(watcher::Event::InitApply(o)) => {
                    format!("initapply {}", o.metadata.name.unwrap_or_default())
                }
                Ok(watcher::Event::InitDone) => "initdone".to_string(),
                Ok(watcher::Event::Apply(o)) => format!(
                    "apply {} {}",
                    o.metadata.name.unwrap_or_default(),
                    o.metadata.generation.unwrap_or_default()
                ),
                Ok(watcher::Event::Delete(o)) => {
                    format!("delete {}", o.metadata.name.unwrap_or_default())
                }
                Err(e) => format!("error {e}"),
            };
            l.lock().unwrap().push(entry);
        }
    });
    wait_for(Duration::from_secs(20), "the initial list", || async {
        count(&log, "initdone") == 1
    })
    .await
    .unwrap();
    (log, reader)
}

fn count(log: &Log, what: &str) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with(what))
        .count()
}

async fn check_ordered_events(cfg: watcher::Config) {
    let s = TestServer::start().unwrap();
    let api = tasks_api(s.client().await.unwrap());
    api.create(&PostParams::default(), &task("before"))
        .await
        .unwrap();
    let (log, store) = spawn_watch(api.clone(), cfg).await;
    api.create(&PostParams::default(), &task("a"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"backoffLimit": 9}})),
    )
    .await
    .unwrap();
    api.delete("a", &Default::default()).await.unwrap();
    wait_for(Duration::from_secs(20), "the delete event", || async {
        count(&log, "delete a") == 1
    })
    .await
    .unwrap();
    let events: Vec<String> = log.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            "init",
            "initapply before",
            "initdone",
            "apply a 1",
            "apply a 2",
            "delete a"
        ]
    );
    let names: Vec<String> = store
        .state()
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["before"]);
}

#[tokio::test]
async fn reflector_sees_create_update_delete_in_order() {
    check_ordered_events(watcher::Config::default()).await;
}

#[tokio::test]
async fn streaming_list_sends_initial_events_then_changes() {
    check_ordered_events(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn watcher_relists_after_410_expired() {
    // History older than one second is compacted; watches end every 3 s, and
    // resume from a revision that churn elsewhere has pushed out of history.
    let s = TestServer::start_with(&["--compaction-interval", "1"]).unwrap();
    let client = s.client().await.unwrap();
    let api = tasks_api(client.clone());
    let (log, store) = spawn_watch(api.clone(), watcher::Config::default().timeout(3)).await;
    api.create(&PostParams::default(), &task("a"))
        .await
        .unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "default");
    let mut i = 0;
    let churn = wait_for(Duration::from_secs(30), "a relist after 410", || {
        i += 1;
        let cms = cms.clone();
        let log = log.clone();
        async move {
            let cm: k8s_openapi::api::core::v1::ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("churn-{i}")}}))
                    .unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
            count(&log, "init") >= 2 && count(&log, "initdone") >= 2
        }
    });
    churn.await.unwrap();
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("410") || e.contains("Expired") || e.contains("too old")),
        "the relist followed a 410: {:?}",
        log.lock().unwrap()
    );
    api.create(&PostParams::default(), &task("b"))
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), "b in the reflector", || async {
        let mut names: Vec<String> = store
            .state()
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names == ["a", "b"]
    })
    .await
    .unwrap();
}
