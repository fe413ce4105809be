//! What every [`Store`] backend must do, as tests run against each of them
//! (the embedded store, and etcd when built with the `etcd` feature). Revisions
//! are relative to the store's revision at the start: etcd's do not start at 0.

use super::*;

/// Create, compare-and-swap update, delete, with the revisions etcd would give.
pub async fn writes_and_revisions(s: &dyn Store) {
    let r0 = s.revision();
    let a = s.create("/g/r/ns/a".into(), b"1".to_vec()).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (r0 + 1, r0 + 1));
    assert!(matches!(
        s.create("/g/r/ns/a".into(), b"x".to_vec()).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let a2 = s
        .update(
            "/g/r/ns/a".into(),
            b"2".to_vec(),
            Precondition::ModRevision(r0 + 1),
        )
        .await
        .unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (r0 + 1, r0 + 2));
    let stale = s
        .update(
            "/g/r/ns/a".into(),
            b"3".to_vec(),
            Precondition::ModRevision(r0 + 1),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current, .. }) if current == r0 + 2),
        "{stale:?}"
    );
    assert!(matches!(
        s.update("/g/r/ns/none".into(), b"x".to_vec(), Precondition::None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete("/g/r/ns/none".into(), Precondition::None).await,
        Err(StoreError::NotFound(_))
    ));
    let gone = s
        .delete("/g/r/ns/a".into(), Precondition::None)
        .await
        .unwrap();
    assert_eq!(&*gone.value, b"2");
    assert_eq!(gone.create_revision, r0 + 1);
    assert_eq!(gone.mod_revision, r0 + 3);
    assert!(s.get("/g/r/ns/a").await.unwrap().is_none());
    assert_eq!(s.revision(), r0 + 3);
}

/// Pages of a list at one revision do not see later writes.
pub async fn list_pages_at_a_past_revision(s: &dyn Store) {
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
    assert_eq!(first.revision, s.revision());
    let rev = first.revision;
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

/// A watch from a past revision replays what followed it, then follows live
/// changes, each once and in order, only under its prefix.
pub async fn watch_replays_then_follows(s: &dyn Store) {
    let r0 = s.revision();
    s.create("/g/r/ns/a".into(), b"1".to_vec()).await.unwrap();
    s.update("/g/r/ns/a".into(), b"2".to_vec(), Precondition::None)
        .await
        .unwrap();
    s.create("/g/q/ns/b".into(), b"x".to_vec()).await.unwrap();
    let mut w = s.watch("/g/r/".into(), r0 + 1).await.unwrap();
    s.delete("/g/r/ns/a".into(), Precondition::None)
        .await
        .unwrap();
    let e1 = w.recv().await.unwrap();
    assert_eq!(
        (e1.kind, e1.kv.mod_revision, &*e1.kv.value),
        (EventKind::Put, r0 + 2, &b"2"[..])
    );
    assert_eq!(e1.prev.as_ref().map(|p| p.mod_revision), Some(r0 + 1));
    let e2 = w.recv().await.unwrap();
    assert_eq!((e2.kind, e2.kv.mod_revision), (EventKind::Delete, r0 + 4));
    assert_eq!(&*e2.kv.value, b"2", "a delete carries the last value");
}

/// A field-filtered watch gets, from history and then live, exactly the changes
/// whose new or previous value has the field's value, in order.
pub async fn field_watch_replays_then_follows(s: &dyn Store) {
    let on = |agent: &str| format!(r#"{{"status":{{"agent":"{agent}"}}}}"#).into_bytes();
    let r0 = s.revision();
    s.create("/g/t/ns/a".into(), on("")).await.unwrap(); // r0+1: not for n1
    s.update("/g/t/ns/a".into(), on("n1"), Precondition::None) // r0+2: bound to n1
        .await
        .unwrap();
    s.create("/g/t/ns/b".into(), on("n2")).await.unwrap(); // r0+3: another agent's
    let filter = FieldFilter {
        path: "status.agent".into(),
        value: "n1".into(),
    };
    let mut w = s.watch_field("/g/t/".into(), r0, filter).await.unwrap();
    s.update("/g/t/ns/b".into(), on("n2"), Precondition::None) // r0+4: still n2's
        .await
        .unwrap();
    s.update("/g/t/ns/a".into(), on("n2"), Precondition::None) // r0+5: moved off n1
        .await
        .unwrap();
    s.create("/g/t/ns/c".into(), on("n1")).await.unwrap(); // r0+6
    let (mut seen, mut last) = (Vec::new(), r0);
    while seen.len() < 3 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), w.recv())
            .await
            .expect("the filtered watch's events within 10 s")
            .expect("the watch goes on");
        // Progress may come between changes, never behind what was delivered.
        assert!(e.kv.mod_revision >= last, "revisions go forward");
        last = e.kv.mod_revision;
        if e.kind != EventKind::Progress {
            seen.push((e.kv.key.clone(), e.kv.mod_revision - r0));
        }
    }
    let k = |n: &str| format!("/g/t/ns/{n}");
    assert_eq!(seen, [(k("a"), 2), (k("a"), 5), (k("c"), 6)]);
}

/// After compaction, a watch or a read from before it is refused as compacted.
pub async fn compaction(s: &dyn Store) {
    let r0 = s.revision();
    for i in 0..20 {
        s.create(format!("/g/c/ns/k{i:02}"), vec![1]).await.unwrap();
    }
    s.compact(r0 + 10).await.unwrap();
    assert!(s.compacted_revision() >= r0 + 10);
    assert!(matches!(
        s.watch("/g/".into(), r0 + 2).await,
        Err(StoreError::Compacted { .. })
    ));
    let old = s
        .list(ListRequest {
            prefix: "/g/c/",
            revision: Some(r0 + 2),
            ..Default::default()
        })
        .await;
    assert!(matches!(old, Err(StoreError::Compacted { .. })), "{old:?}");
    // What is newer is still there.
    let live = s
        .list(ListRequest {
            prefix: "/g/c/",
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(live.items.len(), 20);
}
