//! What the server serves: one [`ResourceInfo`] per group/version/resource,
//! for the built-in kinds and for every established CustomResourceDefinition.
//! Discovery, OpenAPI, routing, validation and table output all read from here.

pub mod absent;

use serde_json::{Value, json};
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The kinds with server-side behaviour of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// core/v1 Namespace.
    Namespace,
    /// apiextensions.k8s.io/v1 CustomResourceDefinition.
    Crd,
    /// Stored as given (Secret, ConfigMap, Lease, Event).
    Plain,
    /// An instance of a CustomResourceDefinition.
    Custom,
    /// A review API (TokenReview, SelfSubjectReview, ...): created, never stored.
    Review,
    /// A Kubernetes kind Mosaic does not run (Pods, Services, Deployments...):
    /// always an empty list, so that tools which list them (kubectl's default
    /// prune allowlist, `kubectl cluster-info`) work; writes are refused with
    /// a message naming the kind (see [`absent`]).
    Absent,
}

/// A printer column, with its JSONPath parsed once.
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    /// Shown only with `-o wide` when above 0.
    pub priority: i64,
    /// The column's documentation.
    pub description: String,
    /// The Kubernetes-style path (`.status.phase`).
    pub json_path: String,
    /// The same path, parsed.
    pub path: Option<JsonPath>,
    /// A cell JSONPath cannot express (a count of keys, `kind/name`), computed
    /// from the object instead of the path.
    pub compute: Option<fn(&Value) -> Value>,
}

/// Everything the server knows about one resource.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    /// API group, "" for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name (the URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`tk`).
    pub short_names: Vec<String>,
    /// Categories (`mosaic`, `all`).
    pub categories: Vec<String>,
    /// The structural schema (CRDs), used for validation, defaulting and pruning.
    pub schema: Option<Value>,
    /// The schema's CEL rules (`x-kubernetes-validations`), compiled.
    pub rules: Option<Arc<crate::cel::Rules>>,
    /// Whether `/status` is a subresource.
    pub status_subresource: bool,
    /// The `/scale` subresource's paths, when the CRD declares one.
    pub scale: Option<ScalePaths>,
    /// Columns for `kubectl get`, Name first not included.
    pub columns: Vec<PrinterColumn>,
    /// Field paths usable in field selectors, beyond metadata.name and metadata.namespace.
    pub selectable_fields: Vec<String>,
    /// Server-side behaviour.
    pub builtin: Builtin,
    /// PUT without resourceVersion allowed (Secrets, ConfigMaps, Leases...).
    pub unconditional_update: bool,
    /// Where its objects live in the store: `/<group or core>/<plural>`.
    pub storage_prefix: String,
    /// How its objects differ from their stored form.
    pub view: crate::conversion::View,
}

/// Where a CRD's `/scale` subresource reads and writes (its
/// `subresources.scale`): JSON paths such as `.spec.replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// `specReplicasPath`: what a scale write sets.
    pub spec_replicas: String,
    /// `statusReplicasPath`.
    pub status_replicas: String,
    /// `labelSelectorPath`: a string in the status holding the selector.
    pub label_selector: Option<String>,
}

impl ScalePaths {
    /// The paths of a CRD version's `subresources.scale`, when it has one.
    pub fn of(scale: &Value) -> Option<Self> {
        let path = |k: &str| scale[k].as_str().map(str::to_string);
        Some(Self {
            spec_replicas: path("specReplicasPath")?,
            status_replicas: path("statusReplicasPath")?,
            label_selector: path("labelSelectorPath"),
        })
    }
}

impl ResourceInfo {
    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `tasks.mosaic.dev`, or `namespaces` for core.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/{ns}/{name}", self.storage_prefix),
            _ => format!("{}/{name}", self.storage_prefix),
        }
    }

    /// The store prefix of a collection (one namespace, or all).
    pub fn collection_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/{ns}/", self.storage_prefix),
            _ => format!("{}/", self.storage_prefix),
        }
    }

    /// The verbs discovery lists.
    pub fn verbs(&self) -> Vec<&'static str> {
        match self.builtin {
            Builtin::Review => return vec!["create"],
            Builtin::Absent => return vec!["get", "list", "watch"],
            _ => {}
        }
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

pub(crate) fn builtin(
    group: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    b: Builtin,
    short: &[&str],
) -> ResourceInfo {
    let version = match group {
        "" | "coordination.k8s.io" | "events.k8s.io" | "apiextensions.k8s.io" => "v1",
        _ => "v1",
    };
    let age = PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        priority: 0,
        description: String::new(),
        json_path: ".metadata.creationTimestamp".into(),
        path: JsonPath::parse("$.metadata.creationTimestamp").ok(),
        compute: None,
    };
    let mut columns = Vec::new();
    if b == Builtin::Namespace {
        columns.push(PrinterColumn {
            name: "Status".into(),
            type_: "string".into(),
            priority: 0,
            description: String::new(),
            json_path: ".status.phase".into(),
            path: JsonPath::parse("$.status.phase").ok(),
            compute: None,
        });
    }
    columns.push(age);
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        schema: crate::builtin_schema::of_kind(group, kind),
        rules: None,
        status_subresource: matches!(b, Builtin::Namespace | Builtin::Crd),
        scale: None,
        columns,
        selectable_fields: vec![],
        builtin: b,
        unconditional_update: b != Builtin::Crd,
        storage_prefix: format!(
            "/{}/{plural}",
            if group.is_empty() { "core" } else { group }
        ),
        view: crate::conversion::View::Stored,
    }
}

fn column(name: &str, type_: &str, json_path: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        priority: 0,
        description: String::new(),
        json_path: json_path.into(),
        path: JsonPath::parse(&format!("${json_path}")).ok(),
        compute: None,
    }
}

/// A column computed from the object (see [`PrinterColumn::compute`]).
fn computed(name: &str, type_: &str, f: fn(&Value) -> Value) -> PrinterColumn {
    PrinterColumn {
        compute: Some(f),
        ..column(name, type_, "")
    }
}

/// How many keys a ConfigMap's or Secret's data holds (kubectl's DATA).
fn data_count(o: &Value) -> Value {
    let n = |k: &str| o[k].as_object().map_or(0, |m| m.len());
    json!(n("data") + n("binaryData"))
}

/// An Event's object as kubectl shows it: `kind/name`, the kind in lower case.
fn event_object(o: &Value) -> Value {
    let r = if o["involvedObject"].is_object() {
        &o["involvedObject"]
    } else {
        &o["regarding"]
    };
    let kind = r["kind"].as_str().unwrap_or_default().to_lowercase();
    json!(format!("{kind}/{}", r["name"].as_str().unwrap_or_default()))
}

/// core/v1 Events: kubectl's columns, and the field selectors `kubectl describe` uses.
fn core_events() -> ResourceInfo {
    let mut ev = builtin("", "events", "Event", true, Builtin::Plain, &["ev"]);
    ev.columns = vec![
        column("Last Seen", "date", ".lastTimestamp"),
        column("Type", "string", ".type"),
        column("Reason", "string", ".reason"),
        computed("Object", "string", event_object),
        column("Message", "string", ".message"),
    ];
    ev.selectable_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    ev
}

/// `info` with `columns` before its Age column, as kubectl shows the kind.
fn with_columns(mut info: ResourceInfo, columns: Vec<PrinterColumn>) -> ResourceInfo {
    let age = info.columns.pop();
    info.columns = columns.into_iter().chain(age).collect();
    info
}

/// The resources every server has, whatever CRDs are installed.
pub fn builtins() -> Vec<ResourceInfo> {
    let mut events_v1 = builtin(
        "events.k8s.io",
        "events",
        "Event",
        true,
        Builtin::Plain,
        &["ev"],
    );
    // One store, two views: events.k8s.io/v1 Events are core/v1 Events renamed.
    events_v1.storage_prefix = "/core/events".into();
    events_v1.view = crate::conversion::View::EventsV1;
    events_v1.columns = vec![
        column("Last Seen", "date", ".deprecatedLastTimestamp"),
        column("Type", "string", ".type"),
        column("Reason", "string", ".reason"),
        computed("Object", "string", event_object),
        column("Message", "string", ".note"),
    ];
    events_v1.selectable_fields = [
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "type",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    vec![
        builtin(
            "",
            "namespaces",
            "Namespace",
            false,
            Builtin::Namespace,
            &["ns"],
        ),
        with_columns(
            builtin("", "secrets", "Secret", true, Builtin::Plain, &[]),
            vec![
                column("Type", "string", ".type"),
                computed("Data", "integer", data_count),
            ],
        ),
        with_columns(
            builtin("", "configmaps", "ConfigMap", true, Builtin::Plain, &["cm"]),
            vec![computed("Data", "integer", data_count)],
        ),
        core_events(),
        builtin(
            "",
            "serviceaccounts",
            "ServiceAccount",
            true,
            Builtin::Plain,
            &["sa"],
        ),
        builtin(
            "coordination.k8s.io",
            "leases",
            "Lease",
            true,
            Builtin::Plain,
            &[],
        ),
        events_v1,
        builtin(
            "rbac.authorization.k8s.io",
            "roles",
            "Role",
            true,
            Builtin::Plain,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "ClusterRole",
            false,
            Builtin::Plain,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "rolebindings",
            "RoleBinding",
            true,
            Builtin::Plain,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            Builtin::Plain,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            Builtin::Crd,
            &["crd", "crds"],
        ),
    ]
    .into_iter()
    .chain(reviews())
    .chain(absent::kinds())
    .collect()
}

/// The review APIs, in discovery as kube-apiserver lists them.
fn reviews() -> Vec<ResourceInfo> {
    [
        ("authentication.k8s.io", "tokenreviews", "TokenReview"),
        (
            "authentication.k8s.io",
            "selfsubjectreviews",
            "SelfSubjectReview",
        ),
        (
            "authorization.k8s.io",
            "subjectaccessreviews",
            "SubjectAccessReview",
        ),
        (
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
        ),
        (
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
        ),
    ]
    .into_iter()
    .map(|(g, plural, kind)| {
        let mut r = builtin(g, plural, kind, false, Builtin::Review, &[]);
        r.schema = None;
        r
    })
    .collect()
}

/// Why a CRD cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CrdError {
    /// The offending field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn crd_err(field: &str, message: &str) -> CrdError {
    CrdError {
        field: field.into(),
        message: message.into(),
    }
}

/// The resources one CRD serves (one per served version).
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceInfo>, CrdError> {
    let spec = &crd["spec"];
    let group = spec["group"]
        .as_str()
        .ok_or_else(|| crd_err("spec.group", "Required value"))?;
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .ok_or_else(|| crd_err("spec.names.plural", "Required value"))?;
    let kind = names["kind"]
        .as_str()
        .ok_or_else(|| crd_err("spec.names.kind", "Required value"))?;
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => {
            return Err(crd_err(
                "spec.scope",
                "Unsupported value: must be Namespaced or Cluster",
            ));
        }
    };
    let expected_name = format!("{plural}.{group}");
    if crd["metadata"]["name"].as_str() != Some(expected_name.as_str()) {
        return Err(crd_err(
            "metadata.name",
            &format!("Invalid value: must be spec.names.plural+\".\"+spec.group ({expected_name})"),
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec["versions"]
        .as_array()
        .ok_or_else(|| crd_err("spec.versions", "Required value"))?;
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        if v["served"] != json!(true) {
            continue;
        }
        let version = v["name"]
            .as_str()
            .ok_or_else(|| crd_err(&format!("spec.versions[{i}].name"), "Required value"))?;
        let mut columns = Vec::new();
        for c in v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let json_path = c["jsonPath"].as_str().unwrap_or_default().to_string();
            columns.push(PrinterColumn {
                name: c["name"].as_str().unwrap_or_default().into(),
                type_: c["type"].as_str().unwrap_or("string").into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                description: c["description"].as_str().unwrap_or_default().into(),
                path: JsonPath::parse(&format!("${json_path}")).ok(),
                compute: None,
                json_path,
            });
        }
        if columns.is_empty() {
            columns.push(PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                priority: 0,
                description: String::new(),
                json_path: ".metadata.creationTimestamp".into(),
                path: JsonPath::parse("$.metadata.creationTimestamp").ok(),
                compute: None,
            });
        }
        let selectable_fields = v["selectableFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                f["jsonPath"]
                    .as_str()
                    .map(|p| p.trim_start_matches('.').to_string())
            })
            .collect();
        out.push(ResourceInfo {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: singular.clone(),
            kind: kind.into(),
            namespaced,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            rules: crate::cel::compile(&v["schema"]["openAPIV3Schema"], group, version, kind)
                .map_err(|e| {
                    crd_err(
                        &format!(
                            "spec.versions[{i}].schema.openAPIV3Schema.x-kubernetes-validations"
                        ),
                        &format!("Invalid value: {:?}: {}", e.rule, e.message),
                    )
                })?
                .map(Arc::new),
            schema: Some(v["schema"]["openAPIV3Schema"].clone()),
            status_subresource: v["subresources"]["status"].is_object(),
            scale: ScalePaths::of(&v["subresources"]["scale"]),
            columns,
            selectable_fields,
            builtin: Builtin::Custom,
            unconditional_update: false,
            storage_prefix: format!("/{group}/{plural}"),
            view: crate::conversion::View::Stored,
        });
    }
    Ok(out)
}

/// The set of served resources. Cheap to read, rebuilt on CRD changes.
#[derive(Default)]
pub struct Registry {
    // (group, version, plural) -> info
    map: RwLock<BTreeMap<(String, String, String), Arc<ResourceInfo>>>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn new() -> Self {
        let r = Self::default();
        for info in builtins() {
            r.insert(info);
        }
        r
    }

    fn insert(&self, info: ResourceInfo) {
        let k = (
            info.group.clone(),
            info.version.clone(),
            info.plural.clone(),
        );
        self.map.write().unwrap().insert(k, Arc::new(info));
    }

    /// Serves the resources of a CRD (replacing what it served before).
    /// A CRD never replaces a kind the server serves itself (one stored
    /// before that was refused at admission stays unserved).
    pub fn apply_crd(&self, crd: &Value) -> Result<(), CrdError> {
        let infos = from_crd(crd)?;
        for info in &infos {
            if self
                .get(&info.group, &info.version, &info.plural)
                .is_some_and(|s| s.builtin != Builtin::Custom)
            {
                return Err(crd_err(
                    "spec.group",
                    &format!(
                        "{}/{} {} is served by the API server itself",
                        info.group, info.version, info.plural
                    ),
                ));
            }
        }
        if let Some(first) = infos.first() {
            self.remove_group_resource(&first.group, &first.plural);
        }
        for info in infos {
            self.insert(info);
        }
        Ok(())
    }

    /// Stops serving a CRD's resources.
    pub fn remove_group_resource(&self, group: &str, plural: &str) {
        self.map.write().unwrap().retain(|(g, _, p), info| {
            !(g == group && p == plural && info.builtin == Builtin::Custom)
        });
    }

    /// One resource.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.map
            .read()
            .unwrap()
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Every resource, ordered by group, version, plural.
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        self.map.read().unwrap().values().cloned().collect()
    }

    /// The served groups with their versions, core ("") first.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for info in self.all() {
            let versions = g.entry(info.group.clone()).or_default();
            if !versions.contains(&info.version) {
                versions.push(info.version.clone());
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind added to [`builtins`] without an entry in
    /// [`crate::builtin_schema::of_kind`] would be stored unvalidated.
    #[test]
    fn every_stored_built_in_kind_has_its_upstream_schema() {
        for info in builtins() {
            let stored = matches!(
                info.builtin,
                Builtin::Plain | Builtin::Namespace | Builtin::Crd
            );
            assert_eq!(
                info.schema.is_some(),
                stored,
                "{} ({:?}) schema",
                info.group_resource(),
                info.builtin
            );
        }
    }
}
