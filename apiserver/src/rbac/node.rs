//! What an agent's own identity may do, as Kubernetes's Node authorizer and
//! NodeRestriction admission limit a kubelet. An agent (user
//! `system:mosaic-agent:NAME` in group `system:mosaic-agents`, from the
//! certificate it got at join) may:
//!
//! - read Agents and Tasks (list and watch too), and discovery;
//! - create, patch and update only its own Agent (and its status), renew only
//!   its own identity, and change nothing of its Agent's `spec`;
//! - write only its own Lease in `mosaic-system` (never a reserved one, such
//!   as the controllers' leader Lease);
//! - write the status only of Tasks bound to it, and not move them elsewhere
//!   or change the host ports they were given;
//! - record Events, and ask for token and access reviews (its endpoint's
//!   delegated authentication).
//!
//! Everything else is refused, whatever RBAC says.

use crate::error::ApiError;
use crate::identity::{Attributes, User};
use crate::registry::ResourceInfo;
use mosaic_crds::join;
use serde_json::Value;

/// The agent a user is, when it is an agent's own identity.
pub fn agent_of(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix(join::USER_PREFIX)?;
    (!name.is_empty() && user.groups.iter().any(|g| g == join::GROUP)).then_some(name)
}

/// Whether agent `agent` may make the request `a` (writes are then checked
/// against the objects by [`restrict`]).
pub fn authorize(agent: &str, a: &Attributes<'_>) -> bool {
    let read = matches!(a.verb, "get" | "list" | "watch");
    let write = matches!(a.verb, "create" | "update" | "patch");
    let own = a.name == agent;
    if a.resource.is_empty() {
        return a.verb == "get";
    }
    match (a.group, a.resource, a.subresource) {
        ("mosaic.dev", "agents", "") => {
            read || (a.verb == "create" && a.name.is_empty()) || (write && own)
        }
        ("mosaic.dev", "agents", "status") => (read || write) && own,
        ("mosaic.dev", "agents", join::SUBRESOURCE) => a.verb == "create" && own,
        ("mosaic.dev", "tasks", "") => read,
        ("mosaic.dev", "tasks", "status") => read || matches!(a.verb, "update" | "patch"),
        ("coordination.k8s.io", "leases", "") => {
            a.namespace == "mosaic-system"
                && !join::RESERVED_LEASES.contains(&a.name)
                && (own && (a.verb == "get" || write) || (a.verb == "create" && a.name.is_empty()))
        }
        ("" | "events.k8s.io", "events", "") => write,
        ("authentication.k8s.io", "tokenreviews", "")
        | ("authorization.k8s.io", "subjectaccessreviews", "")
        | ("authorization.k8s.io", "selfsubjectaccessreviews", "")
        | ("authentication.k8s.io", "selfsubjectreviews", "") => a.verb == "create",
        _ => false,
    }
}

/// NodeRestriction: checks what an agent writes against the objects.
/// `old` is the stored object on an update; `subresource` the one written.
pub fn restrict(
    agent: &str,
    info: &ResourceInfo,
    namespace: &str,
    subresource: Option<&str>,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    let name = new["metadata"]["name"].as_str().unwrap_or_default();
    let refuse = |why: String| {
        Err(ApiError::forbidden(format!(
            "{}.{} \"{name}\" is forbidden: agent {agent} {why}",
            info.plural, info.group
        )))
    };
    match (info.group.as_str(), info.plural.as_str(), subresource) {
        ("mosaic.dev", "agents", _) if name != agent => refuse("may write only its own Agent".into()),
        ("mosaic.dev", "agents", None) => match old {
            Some(o) if o["spec"] != new["spec"] => {
                refuse("may not change its Agent's spec (cordoning and maintenance are for administrators)".into())
            }
            None if new["spec"].as_object().is_some_and(|s| !s.is_empty()) => {
                refuse("may not register with a spec".into())
            }
            _ => Ok(()),
        },
        ("coordination.k8s.io", "leases", _)
            if namespace != "mosaic-system" || name != agent || join::RESERVED_LEASES.contains(&name) =>
        {
            refuse("may hold only its own Lease in mosaic-system".into())
        }
        ("mosaic.dev", "tasks", Some("status")) => {
            let bound = |v: Option<&Value>| v.and_then(|v| v["status"]["agent"].as_str()) == Some(agent);
            if !bound(old) {
                refuse("may write the status only of Tasks bound to it".into())
            } else if !bound(Some(new)) {
                refuse("may not bind a Task to another agent".into())
            } else if old.map(|o| &o["status"]["ports"]) != Some(&new["status"]["ports"]) {
                refuse("may not change the host ports a Task was given".into())
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}
