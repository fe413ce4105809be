//! API discovery: `/version`, the legacy documents (`/api`, `/apis`,
//! `/apis/<g>/<v>`) and the aggregated v2 documents kubectl asks for first.

use super::body::{self, Body};
use super::route::DiscoveryPath;
use crate::error::ApiError;
use crate::registry::{Registry, ResourceInfo};
use http::{Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes version Mosaic's API is compatible with.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "37",
        "gitVersion": concat!("v1.37.0-mosaic.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-11-25T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|a| {
        a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2") && !a.contains("v=v2beta1")
    })
}

/// Serves one discovery path.
pub fn serve(
    reg: &Registry,
    path: DiscoveryPath,
    accept: &str,
    server: &str,
) -> Result<Response<Body>, ApiError> {
    let groups = reg.groups();
    let all = reg.all();
    let ok = |v: Value| Ok(body::json(StatusCode::OK, &v));
    match path {
        DiscoveryPath::CoreVersions if wants_aggregated(accept) => {
            Ok(aggregated(&all, |g| g.is_empty()))
        }
        DiscoveryPath::Groups if wants_aggregated(accept) => {
            Ok(aggregated(&all, |g| !g.is_empty()))
        }
        DiscoveryPath::CoreVersions => ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server.trim_start_matches("https://")}],
        })),
        DiscoveryPath::Groups => {
            let mut named: Vec<(&String, &Vec<String>)> =
                groups.iter().filter(|(g, _)| !g.is_empty()).collect();
            named.sort_by_key(|(g, _)| priority(&all, g));
            let list: Vec<Value> = named.into_iter().map(|(g, vs)| group_doc(g, vs)).collect();
            ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list}))
        }
        DiscoveryPath::Group(g) => match groups.get(&g) {
            Some(vs) if !g.is_empty() => {
                let mut doc = group_doc(&g, vs);
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                ok(doc)
            }
            _ => Err(ApiError::no_route(&format!("/apis/{g}"))),
        },
        DiscoveryPath::Resources(g, v) => {
            let infos: Vec<&Arc<ResourceInfo>> = all
                .iter()
                .filter(|i| i.group == g && i.version == v)
                .collect();
            if infos.is_empty() {
                return Err(ApiError::no_route(&format!("/apis/{g}/{v}")));
            }
            let mut resources = Vec::new();
            for i in infos {
                resources.push(json!({
                    "name": i.plural,
                    "singularName": i.singular,
                    "namespaced": i.namespaced,
                    "kind": i.kind,
                    "verbs": i.verbs(),
                    "shortNames": i.short_names,
                    "categories": i.categories,
                }));
                if i.status_subresource {
                    resources.push(json!({
                        "name": format!("{}/status", i.plural),
                        "singularName": "",
                        "namespaced": i.namespaced,
                        "kind": i.kind,
                        "verbs": ["get", "patch", "update"],
                    }));
                }
                if i.scale.is_some() {
                    resources.push(json!({
                        "name": format!("{}/scale", i.plural),
                        "singularName": "",
                        "namespaced": i.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }));
                }
                if super::binding::served_for(i) {
                    resources.push(json!({
                        "name": format!("{}/{}", i.plural, mosaic_crds::binding::SUBRESOURCE),
                        "singularName": "",
                        "namespaced": i.namespaced,
                        "group": i.group,
                        "version": i.version,
                        "kind": mosaic_crds::binding::KIND,
                        "verbs": ["create"],
                    }));
                }
            }
            let gv = if g.is_empty() { v } else { format!("{g}/{v}") };
            ok(
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            )
        }
    }
}

/// The order groups are listed in, which kubectl takes as priority when a
/// resource name is served by several (`roles`: rbac.authorization.k8s.io's
/// before mosaic.dev's): built-in groups first, then those of
/// CustomResourceDefinitions, each by name, as kube-apiserver orders them.
fn priority(all: &[Arc<ResourceInfo>], group: &str) -> (bool, String) {
    let custom = all
        .iter()
        .filter(|i| i.group == group)
        .all(|i| i.builtin == crate::registry::Builtin::Custom);
    (custom, group.to_string())
}

fn group_doc(g: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
}

fn aggregated(all: &[Arc<ResourceInfo>], include: impl Fn(&str) -> bool) -> Response<Body> {
    let mut items: Vec<Value> = Vec::new();
    let mut by_group: std::collections::BTreeMap<
        &str,
        std::collections::BTreeMap<&str, Vec<Value>>,
    > = Default::default();
    for i in all.iter().filter(|i| include(&i.group)) {
        let kind = json!({"group": i.group, "version": i.version, "kind": i.kind});
        let mut r = json!({
            "resource": i.plural,
            "responseKind": kind,
            "scope": if i.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": i.singular,
            "verbs": i.verbs(),
        });
        if !i.short_names.is_empty() {
            r["shortNames"] = json!(i.short_names);
        }
        if !i.categories.is_empty() {
            r["categories"] = json!(i.categories);
        }
        let mut subresources = Vec::new();
        if i.status_subresource {
            subresources.push(json!({"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}));
        }
        if i.scale.is_some() {
            subresources.push(json!({"subresource": "scale",
                "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                "verbs": ["get", "patch", "update"]}));
        }
        if super::binding::served_for(i) {
            subresources.push(json!({"subresource": mosaic_crds::binding::SUBRESOURCE,
                "responseKind": {"group": i.group, "version": i.version, "kind": mosaic_crds::binding::KIND},
                "verbs": ["create"]}));
        }
        if !subresources.is_empty() {
            r["subresources"] = json!(subresources);
        }
        by_group
            .entry(&i.group)
            .or_default()
            .entry(&i.version)
            .or_default()
            .push(r);
    }
    let mut by_group: Vec<_> = by_group.into_iter().collect();
    by_group.sort_by_key(|(g, _)| priority(all, g));
    for (g, versions) in by_group {
        let vs: Vec<Value> = versions
            .into_iter()
            .map(|(v, resources)| json!({"version": v, "resources": resources, "freshness": "Current"}))
            .collect();
        items.push(json!({"metadata": {"name": g}, "versions": vs}));
    }
    body::json_typed(
        StatusCode::OK,
        &json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}),
        AGGREGATED,
    )
}
