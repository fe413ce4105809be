//! Acknowledged writes survive SIGKILL: many concurrent clients write, the
//! server is killed mid-stream, and after a restart on the same data dir every
//! acknowledged object is there, whole.

use crate::support::{TestServer, tasks_api, wait_for};
use kube::api::{DynamicObject, PostParams};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn payload(name: &str) -> String {
    format!("echo {}", name.repeat(40))
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let mut s = TestServer::start().unwrap();
    let client = s.client().await.unwrap();
    let acked: Arc<Mutex<BTreeSet<String>>> = Default::default();
    let mut workers = Vec::new();
    for w in 0..64 {
        let api = tasks_api(client.clone());
        let acked = acked.clone();
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": name, "labels": {"worker": w.to_string()}},
                    "spec": {"command": payload(&name)}}))
                .unwrap();
                match api.create(&PostParams::default(), &obj).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(name);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    wait_for(
        Duration::from_secs(60),
        "1,000 acknowledged writes",
        || async { acked.lock().unwrap().len() >= 1000 },
    )
    .await
    .unwrap();
    s.kill9();
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let acked = acked.lock().unwrap().clone();

    s.restart().unwrap();
    let api = tasks_api(s.client().await.unwrap());
    let stored = api.list(&Default::default()).await.unwrap().items;
    let names: BTreeSet<String> = stored
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    let lost: Vec<_> = acked.difference(&names).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // At most one in-flight write per client may have been stored unacknowledged.
    assert!(
        names.len() <= acked.len() + 64,
        "{} stored vs {} acknowledged",
        names.len(),
        acked.len()
    );
    for o in &stored {
        let name = o.metadata.name.as_deref().unwrap();
        assert_eq!(
            o.data["spec"]["command"],
            payload(name),
            "object {name} is whole"
        );
        assert!(
            o.metadata.uid.is_some() && o.metadata.resource_version.is_some(),
            "{name} has its metadata"
        );
    }
}
