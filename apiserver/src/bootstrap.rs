//! The objects every server has before its first request: the namespaces
//! `default`, `kube-system` and `mosaic-system` (their `default`
//! ServiceAccounts are made just after, by `default_sa`), the bootstrap RBAC policy
//! ([`crate::rbac::bootstrap`]), and Mosaic's CRDs (updated in place when this
//! version of Mosaic changes them). Stored CRDs are served.

use crate::registry::Registry;
use crate::store::{ListRequest, Precondition, Store, StoreError};
use serde_json::{Value, json};

fn stamp(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!(crate::stamps::new_uid());
    obj["metadata"]["creationTimestamp"] = json!(crate::stamps::now());
    obj["metadata"]["generation"] = json!(1);
    obj
}

/// Creates `want` at `key` when missing; otherwise lets `update` bring the stored
/// object up to date (it returns whether it changed anything).
/// Servers sharing one etcd may start together: a write that loses the race
/// to another server's reads again and retries.
pub(crate) async fn ensure(
    store: &dyn Store,
    key: String,
    want: Value,
    update: impl Fn(&mut Value, &Value) -> bool,
) -> Result<(), String> {
    for _ in 0..5 {
        let written = match store.get(&key).await.map_err(|e| e.to_string())? {
            None => {
                store
                    .create(
                        key.clone(),
                        serde_json::to_vec(&stamp(want.clone())).expect("JSON"),
                    )
                    .await
            }
            Some(kv) => {
                let mut have: Value =
                    serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                if !update(&mut have, &want) {
                    return Ok(());
                }
                store
                    .update(
                        key.clone(),
                        serde_json::to_vec(&have).expect("JSON"),
                        Precondition::ModRevision(kv.mod_revision),
                    )
                    .await
            }
        };
        match written {
            Ok(_) => return Ok(()),
            Err(StoreError::AlreadyExists(_) | StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("{key} kept changing under the bootstrap"))
}

/// Writes what is missing and registers every stored CRD.
pub async fn run(store: &dyn Store, registry: &Registry) -> Result<(), String> {
    let ns_info = registry.get("", "v1", "namespaces").expect("built in");
    for ns in ["default", "kube-system", "mosaic-system"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}});
        ensure(store, ns_info.key(None, ns), obj, |_, _| false).await?;
    }
    for want in crate::rbac::bootstrap::objects() {
        let key = crate::rbac::bootstrap::key(&want);
        ensure(store, key, want, |have, want| {
            if !crate::rbac::bootstrap::needs_update(have, want) {
                return false;
            }
            for f in ["rules", "roleRef", "subjects"] {
                match want.get(f) {
                    Some(v) => have[f] = v.clone(),
                    None => {
                        if let Some(m) = have.as_object_mut() {
                            m.remove(f);
                        }
                    }
                }
            }
            true
        })
        .await?;
    }
    let crd_info = registry
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("built in");
    for crd in mosaic_crds::all_crds() {
        let mut want = serde_json::to_value(&crd).map_err(|e| e.to_string())?;
        crate::apiextensions::prepare(&mut want, registry)
            .map_err(|c| format!("{}: {}", c.field, c.message))?;
        let name = want["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ensure(store, crd_info.key(None, &name), want, |have, want| {
            if have["spec"] == want["spec"] {
                return false;
            }
            let g = have["metadata"]["generation"].as_i64().unwrap_or(1);
            have["spec"] = want["spec"].clone();
            have["status"] = want["status"].clone();
            have["metadata"]["generation"] = json!(g + 1);
            true
        })
        .await?;
    }
    let prefix = format!("{}/", crd_info.storage_prefix);
    let stored = store
        .list(ListRequest {
            prefix: &prefix,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    for kv in stored.items {
        let crd: Value = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
        if let Err(e) = registry.apply_crd(&crd) {
            tracing::warn!(key = %kv.key, error = %e, "stored CRD cannot be served");
        }
    }
    Ok(())
}
