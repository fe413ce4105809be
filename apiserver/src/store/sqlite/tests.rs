//! Unit tests of the embedded store: the conformance suite every backend
//! passes, and what only this one does (reopen).

use super::*;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn writes_and_revisions() {
    let (_d, s) = open();
    crate::store::conformance::writes_and_revisions(&s).await;
}

#[tokio::test]
async fn list_pages_at_a_past_revision() {
    let (_d, s) = open();
    crate::store::conformance::list_pages_at_a_past_revision(&s).await;
}

#[tokio::test]
async fn watch_replays_history_then_follows_live() {
    let (_d, s) = open();
    crate::store::conformance::watch_replays_then_follows(&s).await;
}

#[tokio::test]
async fn field_watch_replays_then_follows() {
    let (_d, s) = open();
    crate::store::conformance::field_watch_replays_then_follows(&s).await;
}

#[tokio::test]
async fn compaction() {
    let (_d, s) = open();
    crate::store::conformance::compaction(&s).await;
}

#[tokio::test]
async fn survives_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        let futs: Vec<_> = (0..100)
            .map(|i| s.create(format!("/g/r/ns/k{i:03}"), vec![1; 10]))
            .collect();
        for r in futures::future::join_all(futs).await {
            r.unwrap();
        }
        s.update("/g/r/ns/k000".into(), vec![2], Precondition::None)
            .await
            .unwrap();
        s.compact(50).await.unwrap();
        assert!(matches!(
            s.watch("/g/".into(), 10).await,
            Err(StoreError::Compacted { .. })
        ));
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(s.revision(), 101);
    assert_eq!(s.compacted_revision(), 50);
    assert_eq!(s.key_count(), 100);
    assert_eq!(&*s.get("/g/r/ns/k000").await.unwrap().unwrap().value, &[2]);
}

/// Under writes that never pause, the log still starts again from its
/// beginning once it passes its limit, instead of growing with every write
/// (a second connection's checkpoints alone never let it restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stays_short_under_continuous_writes() {
    const LIMIT_FRAMES: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open_with_log_limit(dir.path(), LIMIT_FRAMES).unwrap();
    let value = vec![7u8; 4000];
    let writers: Vec<_> = (0..32)
        .map(|w| {
            let (s, value) = (s.clone(), value.clone());
            tokio::spawn(async move {
                for i in 0..100 {
                    s.create(format!("/g/r/ns/w{w}-{i}"), value.clone())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    // 3,200 values of 4 KB: more than 12 MiB went through the log.
    let log = std::fs::metadata(dir.path().join("store.db-wal"))
        .unwrap()
        .len();
    assert!(
        log < 4 * 1024 * 1024,
        "the log grew to {log} bytes; it should start again past {LIMIT_FRAMES} frames"
    );
    drop(s);
    let s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        s.key_count(),
        3200,
        "every acknowledged write is still there"
    );
}
