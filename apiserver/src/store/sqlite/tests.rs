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
