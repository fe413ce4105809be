//! Who is calling, and may they do it. Bearer tokens identify the admin and
//! agent identities; the agent may only touch Agents, Leases, Events and the
//! status of Tasks (and read the Tasks and Namespaces it needs to see).

use crate::error::ApiError;
use std::collections::HashMap;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name, e.g. `mosaic:admin`.
    pub name: String,
    /// Groups, e.g. `system:masters`.
    pub groups: Vec<String>,
}

/// The attributes of a request that authorization looks at.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'a str,
    /// API group.
    pub group: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Subresource, "" when none.
    pub subresource: &'a str,
    /// Namespace, "" for cluster scope.
    pub namespace: &'a str,
}

/// Maps bearer tokens to users.
#[derive(Default)]
pub struct Authenticator {
    tokens: HashMap<String, User>,
}

/// The admin user's name.
pub const ADMIN: &str = "mosaic:admin";
/// The agent identity's name.
pub const AGENT: &str = "mosaic:agent";

impl Authenticator {
    /// The admin and agent identities.
    pub fn new(admin_token: &str, agent_token: &str) -> Self {
        let mut tokens = HashMap::new();
        tokens.insert(
            admin_token.to_string(),
            User {
                name: ADMIN.into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            },
        );
        tokens.insert(
            agent_token.to_string(),
            User {
                name: AGENT.into(),
                groups: vec!["mosaic:agents".into(), "system:authenticated".into()],
            },
        );
        Self { tokens }
    }

    /// The user an `Authorization` header names, if any.
    pub fn authenticate(&self, header: Option<&str>) -> Option<User> {
        let token = header?.strip_prefix("Bearer ")?.trim();
        self.tokens.get(token).cloned()
    }
}

/// Allows or forbids a request, with Kubernetes's message on refusal.
pub fn authorize(user: &User, a: Attributes<'_>) -> Result<(), ApiError> {
    if user.groups.iter().any(|g| g == "system:masters") {
        return Ok(());
    }
    let read = matches!(a.verb, "get" | "list" | "watch");
    let allowed = user.groups.iter().any(|g| g == "mosaic:agents")
        && match (a.group, a.resource, a.subresource) {
            ("mosaic.dev", "agents", _) => true,
            ("coordination.k8s.io", "leases", _) => true,
            ("", "events", _) | ("events.k8s.io", "events", _) => true,
            ("mosaic.dev", "tasks", "status") => true,
            ("mosaic.dev", "tasks", "") | ("", "namespaces", "") => read,
            _ => false,
        };
    if allowed {
        return Ok(());
    }
    let what = if a.subresource.is_empty() {
        format!("resource \"{}\"", a.resource)
    } else {
        format!("resource \"{}/{}\"", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let gr = if a.group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    Err(ApiError::forbidden(format!(
        "{gr} is forbidden: User \"{}\" cannot {} {what} in API group \"{}\" {scope}",
        user.name, a.verb, a.group
    )))
}
