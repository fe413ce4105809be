//! Every namespace has a ServiceAccount named `default`, as Kubernetes's
//! ServiceAccount controller keeps one: charts and tools that name it (or
//! `kubectl create token default`) find it. Made with the namespace (and at
//! the first start for the namespaces the server makes itself).

use crate::registry::Registry;
use crate::store::Store;
use serde_json::json;

/// Makes `default` in `namespace` unless it exists.
pub async fn ensure(store: &dyn Store, registry: &Registry, namespace: &str) -> Result<(), String> {
    let info = registry.get("", "v1", "serviceaccounts").expect("built in");
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": namespace}});
    crate::bootstrap::ensure(store, info.key(Some(namespace), "default"), sa, |_, _| {
        false
    })
    .await
}
