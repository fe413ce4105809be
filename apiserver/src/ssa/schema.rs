//! What server-side apply needs of a schema: whether a list is atomic, a set
//! or a map keyed by some fields (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`), and whether a map is atomic
//! (`x-kubernetes-map-type`). CRD lists are atomic unless the schema says
//! otherwise; kinds without a schema are granular maps and atomic lists.
//! `metadata` has Kubernetes's own rules: labels and annotations are granular,
//! finalizers a set, ownerReferences a map keyed by uid.

use serde_json::{Value, json};
use std::sync::OnceLock;

/// How a list merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole; owned as one field.
    Atomic,
    /// Items are scalars, owned one by one.
    Set,
    /// Items are objects identified by these fields, merged one by one.
    Map(Vec<String>),
}

/// A position in a structural schema (or nowhere, for schemaless kinds).
#[derive(Clone, Copy, Debug)]
pub struct Schema<'a> {
    node: Option<&'a Value>,
    root: bool,
}

fn metadata_schema() -> &'static Value {
    static META: OnceLock<Value> = OnceLock::new();
    META.get_or_init(|| {
        json!({"type": "object", "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "ownerReferences": {"type": "array", "items": {"type": "object"},
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]},
        }})
    })
}

impl<'a> Schema<'a> {
    /// The root of an object whose schema is `node` (a CRD's openAPIV3Schema).
    pub fn root(node: Option<&'a Value>) -> Self {
        Self { node, root: true }
    }

    fn at(node: Option<&'a Value>) -> Self {
        Self { node, root: false }
    }

    /// The schema of field `name` of this object.
    pub fn property(&self, name: &str) -> Schema<'a> {
        if self.root && name == "metadata" {
            return Self::at(Some(metadata_schema()));
        }
        let Some(n) = self.node else {
            return Self::at(None);
        };
        match n["properties"].get(name) {
            Some(p) => Self::at(Some(p)),
            None => Self::at(n.get("additionalProperties").filter(|a| a.is_object())),
        }
    }

    /// The schema of this list's items.
    pub fn items(&self) -> Schema<'a> {
        Self::at(self.node.and_then(|n| n.get("items")))
    }

    /// How this list merges.
    pub fn list_type(&self) -> ListType {
        let Some(n) = self.node else {
            return ListType::Atomic;
        };
        match n["x-kubernetes-list-type"].as_str() {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                n["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|k| {
                        k.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }

    /// Whether this map (or struct) is replaced whole.
    pub fn is_atomic_map(&self) -> bool {
        self.node
            .is_some_and(|n| n["x-kubernetes-map-type"] == "atomic")
    }
}
