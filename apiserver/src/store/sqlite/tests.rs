//! Unit tests of the embedded store: compare-and-swap, history, watch replay, reopen.

use super::*;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn create_update_delete_with_revisions() {
    let (_d, s) = open();
    let a = s.create("/g/r/ns/a".into(), b"1".to_vec()).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (1, 1));
    assert!(matches!(
        s.create("/g/r/ns/a".into(), b"x".to_vec()).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let a2 = s
        .update(
            "/g/r/ns/a".into(),
            b"2".to_vec(),
            Precondition::ModRevision(1),
        )
        .await
        .unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (1, 2));
    let stale = s
        .update(
            "/g/r/ns/a".into(),
            b"3".to_vec(),
            Precondition::ModRevision(1),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current: 2, .. })),
        "{stale:?}"
    );
    let gone = s
        .delete("/g/r/ns/a".into(), Precondition::None)
        .await
        .unwrap();
    assert_eq!(&*gone.value, b"2");
    assert_eq!(gone.mod_revision, 3);
    assert!(s.get("/g/r/ns/a").await.unwrap().is_none());
    assert_eq!(s.revision(), 3);
}

#[tokio::test]
async fn list_pages_at_a_past_revision() {
    let (_d, s) = open();
    for i in 0..5 {
        s.create(format!("/g/r/ns/k{i}"), vec![b'0' + i])
            .await
            .unwrap();
    }
    s.create("/g/other/x".into(), b"o".to_vec()).await.unwrap();
    let first = s
        .list(ListRequest {
            prefix: "/g/r/",
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let rev = first.revision;
    // Changes after the first page must not show in later pages.
    s.delete("/g/r/ns/k3".into(), Precondition::None)
        .await
        .unwrap();
    s.create("/g/r/ns/k9".into(), b"9".to_vec()).await.unwrap();
    let second = s
        .list(ListRequest {
            prefix: "/g/r/",
            after: first.more_after.as_deref(),
            limit: 10,
            revision: Some(rev),
        })
        .await
        .unwrap();
    let keys: Vec<_> = second.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/g/r/ns/k2", "/g/r/ns/k3", "/g/r/ns/k4"]);
    assert!(second.more_after.is_none());
}

#[tokio::test]
async fn watch_replays_history_then_follows_live() {
    let (_d, s) = open();
    s.create("/g/r/ns/a".into(), b"1".to_vec()).await.unwrap();
    s.update("/g/r/ns/a".into(), b"2".to_vec(), Precondition::None)
        .await
        .unwrap();
    s.create("/g/q/ns/b".into(), b"x".to_vec()).await.unwrap();
    let mut w = s.watch("/g/r/".into(), 1).await.unwrap();
    s.delete("/g/r/ns/a".into(), Precondition::None)
        .await
        .unwrap();
    let e1 = w.recv().await.unwrap();
    assert_eq!(
        (e1.kind, e1.kv.mod_revision, &*e1.kv.value),
        (EventKind::Put, 2, &b"2"[..])
    );
    assert_eq!(e1.prev.as_ref().map(|p| p.mod_revision), Some(1));
    let e2 = w.recv().await.unwrap();
    assert_eq!((e2.kind, e2.kv.mod_revision), (EventKind::Delete, 4));
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
