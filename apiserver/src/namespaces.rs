//! Which namespaces are active, as a watch of the store reports them, so that a
//! create in a namespace known to be active needs no read of the store (on etcd
//! that read is a consensus round; kube-apiserver's namespace lifecycle
//! admission reads an informer the same way). Only "active" is trusted: a
//! namespace not seen yet (just created) or terminating is read from the store.

use crate::store::{EventKind, ListRequest, Store};
use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};

const PREFIX: &str = "/core/namespaces/";

/// The active namespaces, kept current by a watch.
#[derive(Default)]
pub struct ActiveNamespaces {
    active: RwLock<HashSet<String>>,
}

fn is_terminating(value: &[u8]) -> bool {
    memchr::memmem::find(value, b"\"deletionTimestamp\"").is_some()
}

impl ActiveNamespaces {
    /// An empty view, filled and kept current by a task watching `store`.
    pub fn start(store: Arc<dyn Store>) -> Arc<Self> {
        let me = Arc::new(Self::default());
        tokio::spawn(follow(Arc::downgrade(&me), store));
        me
    }

    /// Whether `name` is known to exist and not to be terminating.
    pub fn is_active(&self, name: &str) -> bool {
        self.active.read().expect("namespace lock").contains(name)
    }

    /// Stops trusting `name` as active (its deletion is being written): creates
    /// in it read the store until the watch says otherwise.
    pub fn forget(&self, name: &str) {
        self.active.write().expect("namespace lock").remove(name);
    }

    fn set(&self, key: &str, active: bool) {
        let Some(name) = key.strip_prefix(PREFIX) else {
            return;
        };
        let mut set = self.active.write().expect("namespace lock");
        if active {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }
}

/// Lists, then watches from the list's revision; starts over (after a pause)
/// whenever the watch ends or the store fails, until the view is dropped.
async fn follow(me: Weak<ActiveNamespaces>, store: Arc<dyn Store>) {
    loop {
        let listed = store
            .list(ListRequest {
                prefix: PREFIX,
                ..Default::default()
            })
            .await;
        if let Ok(listed) = listed
            && let Ok(mut events) = store.watch(PREFIX.into(), listed.revision).await
        {
            {
                let Some(view) = me.upgrade() else { return };
                let fresh: HashSet<String> = listed
                    .items
                    .iter()
                    .filter(|kv| !is_terminating(&kv.value))
                    .filter_map(|kv| kv.key.strip_prefix(PREFIX).map(str::to_string))
                    .collect();
                *view.active.write().expect("namespace lock") = fresh;
            }
            while let Some(e) = events.recv().await {
                let Some(view) = me.upgrade() else { return };
                let active = e.kind == EventKind::Put && !is_terminating(&e.kv.value);
                view.set(&e.kv.key, active);
            }
        }
        if me.strong_count() == 0 {
            return;
        }
        // Nothing is trusted while the view may be stale.
        if let Some(view) = me.upgrade() {
            view.active.write().expect("namespace lock").clear();
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Precondition, sqlite::SqliteStore};
    use std::time::Duration;

    async fn eventually(view: &ActiveNamespaces, name: &str, active: bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while view.is_active(name) != active {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never became active={active}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn follows_creates_terminations_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        store
            .create(format!("{PREFIX}before"), br#"{"metadata":{}}"#.to_vec())
            .await
            .unwrap();
        let view = ActiveNamespaces::start(store.clone());
        eventually(&view, "before", true).await;
        store
            .create(format!("{PREFIX}after"), br#"{"metadata":{}}"#.to_vec())
            .await
            .unwrap();
        eventually(&view, "after", true).await;
        store
            .update(
                format!("{PREFIX}after"),
                br#"{"metadata":{"deletionTimestamp":"2026-01-01T00:00:00Z"}}"#.to_vec(),
                Precondition::None,
            )
            .await
            .unwrap();
        eventually(&view, "after", false).await;
        store
            .delete(format!("{PREFIX}before"), Precondition::None)
            .await
            .unwrap();
        eventually(&view, "before", false).await;
    }
}
