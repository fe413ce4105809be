//! `mosaic backup` copies a running server's embedded store and identity; a
//! server started on the copy holds every object written before the backup
//! (none written after it) and accepts the same credentials.

use crate::support::{TestServer, mosaic_bin, task, tasks_api};
use kube::api::{ListParams, PostParams};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[tokio::test]
async fn an_online_backup_restores_into_a_working_server() {
    let s = TestServer::start().unwrap();
    let api = tasks_api(s.client().await.unwrap());
    let before: BTreeSet<String> = (0..100).map(|i| format!("before-{i}")).collect();
    for n in &before {
        api.create(&PostParams::default(), &task(n)).await.unwrap();
    }

    // Writers keep going while the backup runs: it is online.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (api, stop) = (api.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                api.create(&PostParams::default(), &task(&format!("during-{i}")))
                    .await
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    let out = tempfile::tempdir().unwrap();
    let backup = tokio::process::Command::new(mosaic_bin())
        .arg("backup")
        .arg("--data-dir")
        .arg(s.dir.path())
        .arg(out.path())
        .output()
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let during = writer.await.unwrap();
    assert!(
        backup.status.success(),
        "mosaic backup failed: {}",
        String::from_utf8_lossy(&backup.stderr)
    );
    for n in ["after-1", "after-2"] {
        api.create(&PostParams::default(), &task(n)).await.unwrap();
    }

    // Backing up into a directory that is not empty is refused.
    let again = std::process::Command::new(mosaic_bin())
        .arg("backup")
        .arg("--data-dir")
        .arg(s.dir.path())
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // Restore: a server on the backup, reached with the original admin token.
    let restored = TestServer::start_in(out, &["--no-controllers"]).unwrap();
    assert_eq!(
        std::fs::read(restored.dir.path().join("pki/admin.token")).unwrap(),
        std::fs::read(s.dir.path().join("pki/admin.token")).unwrap()
    );
    let rapi = tasks_api(restored.client().await.unwrap());
    let names: BTreeSet<String> = rapi
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|t| t.metadata.name)
        .collect();
    let missing: Vec<_> = before.difference(&names).collect();
    assert!(missing.is_empty(), "lost by the backup: {missing:?}");
    assert!(!names.contains("after-1") && !names.contains("after-2"));
    // One consistent snapshot: of the writes made one after another during
    // the backup, it holds a prefix (the first k), with no gap.
    let kept_during = names.iter().filter(|n| n.starts_with("during-")).count();
    assert!(kept_during <= during, "{kept_during} of {during}");
    for i in 0..kept_during {
        assert!(
            names.contains(&format!("during-{i}")),
            "the snapshot has {kept_during} concurrent writes but not during-{i}"
        );
    }
    // It works: a write and a read on the restored server.
    rapi.create(&PostParams::default(), &task("restored"))
        .await
        .unwrap();
    assert!(rapi.get_opt("restored").await.unwrap().is_some());
}
