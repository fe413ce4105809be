//! CustomResourceDefinitions as kube-apiserver serves them: checked and given
//! an `Established` status when stored, their objects removed with them; and
//! namespaces, whose deletion removes what they hold.

use crate::core::Core;
use crate::error::{ApiError, Cause};
use crate::registry;
use crate::store::Precondition;
use serde_json::{Value, json};

/// Checks a CRD and fills in the status that says it is served. A CRD may
/// not take the place of a kind the server serves itself (`served`).
pub fn prepare(crd: &mut Value, served: &registry::Registry) -> Result<(), Cause> {
    let infos = registry::from_crd(crd).map_err(|e| Cause {
        reason: "FieldValueInvalid",
        message: e.message,
        field: e.field,
    })?;
    for info in infos {
        if let Some(s) = served.get(&info.group, &info.version, &info.plural)
            && s.builtin != registry::Builtin::Custom
        {
            return Err(Cause {
                reason: "FieldValueForbidden",
                message: format!(
                    "Forbidden: {}/{} {} is served by the API server itself",
                    info.group, info.version, info.plural
                ),
                field: "spec.group".into(),
            });
        }
    }
    let now = crate::stamps::now();
    let names = crd["spec"]["names"].clone();
    let cond = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": crd["spec"]["versions"].as_array().map(|vs| vs.iter()
            .filter(|v| v["storage"] == json!(true)).map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    });
    Ok(())
}

async fn delete_prefix(app: &Core, prefix: &str) -> Result<(), ApiError> {
    loop {
        let page = app
            .store
            .list(crate::store::ListRequest {
                prefix,
                limit: 500,
                ..Default::default()
            })
            .await?;
        if page.items.is_empty() {
            return Ok(());
        }
        for kv in page.items {
            match app.store.delete(kv.key.clone(), Precondition::None).await {
                Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Removes every object of a CRD's resource and stops serving it.
pub async fn delete_crd_content(app: &Core, crd: &Value) -> Result<(), ApiError> {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    app.registry.remove_group_resource(group, plural);
    delete_prefix(app, &format!("/{group}/{plural}/")).await
}
