//! Keeps a current [`Policy`]: built from the store at start, rebuilt when a
//! watch on the RBAC objects or ServiceAccounts reports a change (milliseconds
//! after the write, as kube-apiserver's informer-fed authorizer). A request
//! that would be refused, or a token naming an unknown account, first rebuilds
//! the view if the store has moved on since, so a client that has just written
//! a binding sees it take effect on its next request.

use super::Policy;
use crate::store::{ListRequest, Store, StoreError};
use std::sync::{Arc, RwLock};

/// Where the objects the policy is built from are stored.
pub const PREFIXES: [&str; 5] = [
    "/rbac.authorization.k8s.io/clusterroles/",
    "/rbac.authorization.k8s.io/roles/",
    "/rbac.authorization.k8s.io/clusterrolebindings/",
    "/rbac.authorization.k8s.io/rolebindings/",
    "/core/serviceaccounts/",
];

/// The current policy, shared by every request.
pub struct PolicyCache {
    store: Arc<dyn Store>,
    current: RwLock<Arc<Policy>>,
    rebuilding: tokio::sync::Mutex<()>,
}

impl PolicyCache {
    /// Builds the first view and starts watching for changes.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let cache = Arc::new(Self {
            store,
            current: RwLock::new(Arc::new(Policy::default())),
            rebuilding: Default::default(),
        });
        cache.rebuild().await?;
        let from = cache.current().revision;
        for prefix in PREFIXES {
            tokio::spawn(watch(Arc::downgrade(&cache), prefix, from));
        }
        Ok(cache)
    }

    /// The view as of the last rebuild.
    pub fn current(&self) -> Arc<Policy> {
        self.current.read().expect("policy lock").clone()
    }

    /// Rebuilds the view if the store has written anything since it was built;
    /// returns the view to use.
    pub async fn refresh_if_stale(&self) -> Arc<Policy> {
        if self.current().revision < self.store.revision()
            && let Err(e) = self.rebuild().await
        {
            tracing::warn!(error = %e, "reading the RBAC objects failed");
        }
        self.current()
    }

    async fn rebuild(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let revision = self.store.revision();
        if self.current().revision >= revision && revision > 0 {
            return Ok(());
        }
        let mut policy = Policy {
            revision,
            ..Default::default()
        };
        for prefix in PREFIXES {
            let listed = self
                .store
                .list(ListRequest {
                    prefix,
                    ..Default::default()
                })
                .await?;
            for kv in listed.items {
                if let Err(e) = policy.add(&kv.value) {
                    tracing::warn!(key = %kv.key, error = %e, "skipping an RBAC object that does not parse");
                }
            }
        }
        *self.current.write().expect("policy lock") = Arc::new(policy);
        Ok(())
    }
}

/// Rebuilds the cache on every change under `prefix`, until the cache is dropped.
async fn watch(cache: std::sync::Weak<PolicyCache>, prefix: &'static str, mut from: i64) {
    loop {
        let Some(c) = cache.upgrade() else { return };
        let mut stream = match c.store.watch(prefix.to_string(), from).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(prefix, error = %e, "watching RBAC objects failed; retrying");
                drop(c);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Some(c) = cache.upgrade() {
                    let _ = c.rebuild().await;
                    from = c.current().revision;
                }
                continue;
            }
        };
        drop(c);
        while let Some(ev) = stream.recv().await {
            from = from.max(ev.kv.mod_revision);
            while let Ok(ev) = stream.try_recv() {
                from = from.max(ev.kv.mod_revision);
            }
            let Some(c) = cache.upgrade() else { return };
            if let Err(e) = c.rebuild().await {
                tracing::warn!(error = %e, "reading the RBAC objects failed");
            }
        }
        // The store dropped a slow watcher: resume from the last change seen.
    }
}
