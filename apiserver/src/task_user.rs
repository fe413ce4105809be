//! Who may run a Task as which Unix user, as Pod Security gates privileged
//! pods: naming `spec.user` is checked against RBAC's `use` verb on the
//! `taskusers` resource (API group mosaic.dev) named after the user, in the
//! Task's namespace. The outcome is kept on the Task in the annotation
//! [`USER_GRANT_ANNOTATION`], which only this check writes: a client's own
//! value is replaced. Root (`root`, uid 0, or group 0) without the grant is
//! refused here with 403; any other user without it is left to the agent,
//! which runs it only when its `--allowed-task-users` names it.

use crate::auth::{Attributes, User};
use crate::error::ApiError;
use crate::rbac::Policy;
use crate::registry::ResourceInfo;
use mosaic_crds::task::{TASK_USERS_RESOURCE, USER_GRANT_ANNOTATION};
use serde_json::Value;

/// Whether `user` (as `spec.user` spells it) is root or in root's group.
pub fn is_root(user: &str) -> bool {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let zero = |s: &str| s == "root" || s.parse::<u32>() == Ok(0);
    zero(u) || g.is_some_and(zero)
}

/// Sets or clears the grant on a new or updated Task; refuses root without it.
/// `old` is the stored object on an update.
pub fn admit(
    policy: &Policy,
    user: &User,
    info: &ResourceInfo,
    namespace: &str,
    old: Option<&Value>,
    new: &mut Value,
) -> Result<(), ApiError> {
    if info.group != mosaic_crds::GROUP || info.kind != "Task" {
        return Ok(());
    }
    let wanted = new["spec"]["user"].as_str().map(str::to_string);
    let grant = match old {
        // The same spec as before (a metadata or status change): the grant
        // stays as it was decided. A spec changed by whoever writes now is
        // decided again for that writer, so nobody runs their command under
        // another's grant.
        Some(o) if o["spec"] == new["spec"] => o["metadata"]["annotations"][USER_GRANT_ANNOTATION]
            .as_str()
            .map(str::to_string),
        _ => match wanted {
            None => None,
            Some(u) => {
                let a = Attributes {
                    verb: "use",
                    group: mosaic_crds::GROUP,
                    resource: TASK_USERS_RESOURCE,
                    namespace,
                    name: &u,
                    ..Default::default()
                };
                if policy.allows(user, &a) {
                    Some(u)
                } else if is_root(&u) {
                    let name = new["metadata"]["name"].as_str().unwrap_or_default();
                    return Err(ApiError::forbidden(format!(
                        "tasks.mosaic.dev \"{name}\" is forbidden: UserNotAllowed: User \"{}\" may not run tasks as {u:?} in the namespace \"{namespace}\": running as root needs the \"use\" verb on taskusers \"{u}\" in API group \"mosaic.dev\"",
                        user.name
                    )));
                } else {
                    None
                }
            }
        },
    };
    let Some(meta) = new["metadata"].as_object_mut() else {
        return Ok(());
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(a) = annotations.as_object_mut() {
        match grant {
            Some(g) => {
                a.insert(USER_GRANT_ANNOTATION.into(), Value::String(g));
            }
            None => {
                a.remove(USER_GRANT_ANNOTATION);
            }
        }
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_spellings() {
        for u in ["root", "0", "0:0", "1000:0", "root:1000", "1000:root"] {
            assert!(is_root(u), "{u}");
        }
        for u in ["mosaic-task", "1000", "1000:1000", "rooty", "01"] {
            assert!(!is_root(u), "{u}");
        }
    }
}
