//! Every namespace has a ServiceAccount named `default`, as Kubernetes's
//! ServiceAccount controller keeps one: charts and tools that name it (or
//! `kubectl create token default`) find it. Made with the namespace, for every
//! live namespace at start (so namespaces made by older servers get one), and
//! again when it is deleted from a live namespace.

use crate::registry::Registry;
use crate::store::{ListRequest, Store, StoreError};
use serde_json::{Value, json};

/// Why the default ServiceAccount could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DefaultSaError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bootstrap write gave up.
    #[error("{0}")]
    Write(String),
}

/// Makes `default` in `namespace` unless it exists.
pub async fn ensure(
    store: &dyn Store,
    registry: &Registry,
    namespace: &str,
) -> Result<(), DefaultSaError> {
    let info = registry.get("", "v1", "serviceaccounts").expect("built in");
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": namespace}});
    crate::bootstrap::ensure(store, info.key(Some(namespace), "default"), sa, |_, _| {
        false
    })
    .await
    .map_err(DefaultSaError::Write)
}

/// Makes `default` in `namespace` if the namespace exists and is not terminating.
pub async fn ensure_if_live(
    store: &dyn Store,
    registry: &Registry,
    namespace: &str,
) -> Result<(), DefaultSaError> {
    let info = registry.get("", "v1", "namespaces").expect("built in");
    let Some(kv) = store.get(&info.key(None, namespace)).await? else {
        return Ok(());
    };
    if is_live(&kv.value) {
        ensure(store, registry, namespace).await?;
    }
    Ok(())
}

/// Makes `default` in every live namespace that lacks one.
pub async fn ensure_all(store: &dyn Store, registry: &Registry) -> Result<(), DefaultSaError> {
    let info = registry.get("", "v1", "namespaces").expect("built in");
    let prefix = info.collection_prefix(None);
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(ListRequest {
                prefix: &prefix,
                after: after.as_deref(),
                limit: 500,
                revision: None,
            })
            .await?;
        for kv in &page.items {
            if is_live(&kv.value)
                && let Some(name) = kv.key.strip_prefix(&prefix)
            {
                ensure(store, registry, name).await?;
            }
        }
        match page.more_after {
            Some(k) => after = Some(k),
            None => return Ok(()),
        }
    }
}

/// Whether a stored namespace is not being deleted.
fn is_live(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .is_ok_and(|ns| ns["metadata"]["deletionTimestamp"].is_null())
}
