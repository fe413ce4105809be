//! Kubernetes URL shapes: discovery paths, and resource paths
//! `/api/v1/...` or `/apis/<group>/<version>/...` with optional
//! `namespaces/<ns>/`, a resource, a name and a subresource.

use crate::error::ApiError;
use crate::registry::{Registry, ResourceInfo};
use std::sync::Arc;

/// A discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryPath {
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    Resources(String, String),
}

/// A request on a resource.
#[derive(Clone, Debug)]
pub struct ResourceRoute {
    /// The resource.
    pub info: Arc<ResourceInfo>,
    /// The namespace in the path (namespaced resources only).
    pub namespace: Option<String>,
    /// The object name; `None` for a collection.
    pub name: Option<String>,
    /// `status`, ...
    pub subresource: Option<String>,
}

/// What a path names.
#[derive(Clone, Debug)]
pub enum Route {
    /// Discovery.
    Discovery(DiscoveryPath),
    /// A resource.
    Resource(ResourceRoute),
}

impl Route {
    /// Resolves a path against what is served; unknown paths are a 404.
    pub fn parse(path: &str, registry: &Registry) -> Result<Route, ApiError> {
        let segs: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api"] => return Ok(Route::Discovery(DiscoveryPath::CoreVersions)),
            ["apis"] => return Ok(Route::Discovery(DiscoveryPath::Groups)),
            ["apis", g] => return Ok(Route::Discovery(DiscoveryPath::Group(g.to_string()))),
            ["api", v] => {
                return Ok(Route::Discovery(DiscoveryPath::Resources(
                    String::new(),
                    v.to_string(),
                )));
            }
            ["apis", g, v] => {
                return Ok(Route::Discovery(DiscoveryPath::Resources(
                    g.to_string(),
                    v.to_string(),
                )));
            }
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => return Err(ApiError::no_route(path)),
        };
        let lookup = |plural: &str| {
            registry
                .get(group, version, plural)
                .ok_or_else(|| ApiError::no_route(path))
        };
        let (info, namespace, rest): (Arc<ResourceInfo>, Option<String>, &[&str]) = match rest {
            ["namespaces", ns, plural, rest @ ..]
                if !(group.is_empty()
                    && rest.is_empty()
                    && matches!(*plural, "status" | "finalize")) =>
            {
                let info = lookup(plural)?;
                if !info.namespaced {
                    return Err(ApiError::no_route(path));
                }
                (info, Some(ns.to_string()), rest)
            }
            [plural, rest @ ..] => (lookup(plural)?, None, rest),
            [] => return Err(ApiError::no_route(path)),
        };
        let (name, subresource) = match rest {
            [] => (None, None),
            [name] => (Some(name.to_string()), None),
            [name, sub] => {
                let token =
                    *sub == "token" && info.group.is_empty() && info.plural == "serviceaccounts";
                let binding = *sub == "binding" && super::binding::served_for(&info);
                let status = *sub == "status" && info.status_subresource;
                let scale = *sub == super::scale::SUBRESOURCE && info.scale.is_some();
                let certificate = *sub == mosaic_crds::join::SUBRESOURCE
                    && info.group == mosaic_crds::GROUP
                    && info.plural == "agents";
                let log =
                    *sub == "log" && info.group == mosaic_crds::GROUP && info.plural == "tasks";
                if !token && !binding && !status && !scale && !certificate && !log {
                    return Err(ApiError::no_route(path));
                }
                (Some(name.to_string()), Some(sub.to_string()))
            }
            _ => return Err(ApiError::no_route(path)),
        };
        Ok(Route::Resource(ResourceRoute {
            info,
            namespace,
            name,
            subresource,
        }))
    }
}
