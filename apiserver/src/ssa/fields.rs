//! Field paths and field sets, as server-side apply records ownership
//! (kubernetes-sigs/structured-merge-diff's `fieldpath`): a path steps through
//! fields (`f:name`), items of map-lists by their keys (`k:{"name":"a"}`),
//! items of set-lists by value (`v:"a"`) and, for nothing else, indexes
//! (`i:0`). A set holds the paths a manager owns; `FieldsV1` is its JSON form
//! in `metadata.managedFields`, where `{}` is an owned leaf and `"."` marks a
//! node owned along with fields under it.

use super::schema::{ListType, Schema};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// A field of a struct or map.
    Field(String),
    /// The item of a map-list whose keys are these (canonical JSON object).
    Key(String),
    /// The item of a set-list equal to this (JSON).
    Value(String),
    /// An item by position.
    Index(usize),
}

/// A path from the object's root.
pub type Path = Vec<Element>;

/// A set of owned paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeSet<Path>);

impl Element {
    /// Its key in `fieldsV1` (`f:name`, `k:{...}`, `v:...`, `i:0`).
    pub fn to_key(&self) -> String {
        match self {
            Element::Field(f) => format!("f:{f}"),
            Element::Key(k) => format!("k:{k}"),
            Element::Value(v) => format!("v:{v}"),
            Element::Index(i) => format!("i:{i}"),
        }
    }

    fn parse(s: &str) -> Option<Element> {
        let (kind, rest) = s.split_at_checked(2)?;
        Some(match kind {
            "f:" => Element::Field(rest.into()),
            "k:" => Element::Key(canonical(&serde_json::from_str(rest).ok()?)),
            "v:" => Element::Value(canonical(&serde_json::from_str(rest).ok()?)),
            "i:" => Element::Index(rest.parse().ok()?),
            _ => return None,
        })
    }
}

/// JSON with object keys sorted (serde_json's maps are sorted), compact.
pub fn canonical(v: &Value) -> String {
    v.to_string()
}

/// The path as Kubernetes prints it in conflicts: `.spec.command`,
/// `.spec.ports[name="http"]`, `.metadata.finalizers[="a"]`.
pub fn display(path: &Path) -> String {
    let mut out = String::new();
    for e in path {
        match e {
            Element::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Element::Key(k) => {
                let obj: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = obj.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Element::Value(v) => out.push_str(&format!("[={v}]")),
            Element::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }
}

impl FieldSet {
    /// Reads a `fieldsV1` object; `None` when it is malformed.
    pub fn from_fields_v1(v: &Value) -> Option<FieldSet> {
        fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) -> Option<()> {
            let obj = v.as_object()?;
            if obj.is_empty() {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
                return Some(());
            }
            for (k, child) in obj {
                if k == "." {
                    out.insert(path.clone());
                    continue;
                }
                path.push(Element::parse(k)?);
                walk(child, path, out)?;
                path.pop();
            }
            Some(())
        }
        let mut out = BTreeSet::new();
        walk(v, &mut Vec::new(), &mut out)?;
        Some(FieldSet(out))
    }

    /// The `fieldsV1` form.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Node::default();
        for p in &self.0 {
            let mut n = &mut root;
            for e in p {
                n = n.children.entry(e.to_key()).or_default();
            }
            n.member = true;
        }
        root.to_json()
    }

    /// Whether it owns nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether it owns `p`.
    pub fn contains(&self, p: &Path) -> bool {
        self.0.contains(p)
    }

    /// The paths in `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// Removes every path of `other`.
    pub fn remove_all(&mut self, other: &FieldSet) {
        self.0.retain(|p| !other.0.contains(p));
    }

    /// Adds every path of `other`.
    pub fn add_all(&mut self, other: &FieldSet) {
        self.0.extend(other.0.iter().cloned());
    }
}

/// The key element of a map-list item (its key fields as a canonical object).
pub fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    if let [key] = keys {
        // The usual single key, written out as the one-entry object would be.
        let v = item.get(key)?;
        return Some(format!("{{{}:{v}}}", Value::String(key.clone())));
    }
    let mut k = Map::new();
    for name in keys {
        k.insert(name.clone(), item.get(name)?.clone());
    }
    Some(canonical(&Value::Object(k)))
}

/// The paths of every leaf (and map-list or set-list item) of `v`.
pub fn set_of(v: &Value, schema: Schema<'_>) -> FieldSet {
    let mut out = BTreeSet::new();
    walk(v, schema, &mut Vec::new(), &mut out);
    FieldSet(out)
}

pub(crate) fn walk(v: &Value, schema: Schema<'_>, path: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(o) if !o.is_empty() && !schema.is_atomic_map() => {
            for (k, child) in o {
                path.push(Element::Field(k.clone()));
                walk(child, schema.property(k), path, out);
                path.pop();
            }
        }
        Value::Array(items) => match schema.list_type() {
            ListType::Set => {
                for item in items {
                    path.push(Element::Value(canonical(item)));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    let Some(k) = item_key(item, &keys) else {
                        continue;
                    };
                    path.push(Element::Key(k));
                    out.insert(path.clone());
                    walk(item, schema.items(), path, out);
                    path.pop();
                }
            }
            ListType::Atomic => {
                out.insert(path.clone());
            }
        },
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The value at `path` in `v`, if any.
pub fn get<'a>(v: &'a Value, path: &[Element], schema: Schema<'_>) -> Option<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(v);
    };
    match first {
        Element::Field(f) => get(v.get(f)?, rest, schema.property(f)),
        Element::Index(i) => get(v.get(*i)?, rest, schema.items()),
        Element::Value(want) => {
            let item = v.as_array()?.iter().find(|i| canonical(i) == *want)?;
            get(item, rest, schema.items())
        }
        Element::Key(want) => {
            let ListType::Map(keys) = schema.list_type() else {
                return None;
            };
            let item = v
                .as_array()?
                .iter()
                .find(|i| item_key(i, &keys).as_deref() == Some(want.as_str()))?;
            get(item, rest, schema.items())
        }
    }
}

/// Removes what `path` names from `v` (a field, or a list item).
pub fn remove(v: &mut Value, path: &[Element], schema: Schema<'_>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        match first {
            Element::Field(f) => {
                if let Some(o) = v.as_object_mut() {
                    o.remove(f);
                }
            }
            Element::Value(want) => {
                if let Some(a) = v.as_array_mut() {
                    a.retain(|i| canonical(i) != *want);
                }
            }
            Element::Key(want) => {
                if let (Some(a), ListType::Map(keys)) = (v.as_array_mut(), schema.list_type()) {
                    a.retain(|i| item_key(i, &keys).as_deref() != Some(want.as_str()));
                }
            }
            Element::Index(_) => {}
        }
        return;
    }
    let child = match first {
        Element::Field(f) => v.get_mut(f).map(|c| (c, schema.property(f))),
        Element::Index(i) => v.get_mut(*i).map(|c| (c, schema.items())),
        Element::Value(want) => v
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|i| canonical(i) == *want))
            .map(|c| (c, schema.items())),
        Element::Key(want) => match schema.list_type() {
            ListType::Map(keys) => v
                .as_array_mut()
                .and_then(|a| {
                    a.iter_mut()
                        .find(|i| item_key(i, &keys).as_deref() == Some(want.as_str()))
                })
                .map(|c| (c, schema.items())),
            _ => None,
        },
    };
    if let Some((c, s)) = child {
        remove(c, rest, s);
    }
}
