//! Who a caller is, as authentication finds and authorization reads it: a
//! user with groups, the attributes of what it asks, and the user name of a
//! ServiceAccount. Beneath both `auth` (which finds the user) and `rbac`
//! (which decides), and `tokens` (which names the account a token is for).

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name, e.g. `mosaic:admin` or `system:serviceaccount:team-a:builder`.
    pub name: String,
    /// Groups, e.g. `system:masters`.
    pub groups: Vec<String>,
}

/// The attributes of a request that authorization looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'a str,
    /// API group.
    pub group: &'a str,
    /// Resource (plural); "" for a non-resource request (then `path` counts).
    pub resource: &'a str,
    /// Subresource, "" when none.
    pub subresource: &'a str,
    /// Namespace, "" for cluster scope.
    pub namespace: &'a str,
    /// The object's name, "" for a collection.
    pub name: &'a str,
    /// The URL path of a non-resource request (`/metrics`).
    pub path: &'a str,
}

/// The user name of a ServiceAccount.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}
