//! Ownership for Update operations on the write path, kept cheap: the fields a
//! write changed are found by walking the old and new objects together
//! (skipping equal subtrees), and the `managedFields` trees are edited in
//! place, so a status patch that changes one field costs one path, not a pass
//! over every field of the object and every manager's set.

use super::fields::{Element, Path, canonical, item_key, walk};
use super::schema::{ListType, Schema};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// What a write did to the owned fields.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Fields set to a new value (or added).
    pub set: Vec<Path>,
    /// Fields that are gone.
    pub removed: Vec<Path>,
}

/// Metadata that is the object's identity and bookkeeping, owned by nobody.
pub(crate) const IGNORED_METADATA: [&str; 11] = [
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn leaves(v: &Value, schema: Schema<'_>, path: &mut Path, into: &mut Vec<Path>) {
    let mut set = BTreeSet::new();
    walk(v, schema, path, &mut set);
    into.extend(set);
}

/// The owned fields a write from `old` to `new` changed (`old` is `Null` for a create).
pub fn diff(
    old: &Value,
    new: &Value,
    subresource: Option<&str>,
    status_subresource: bool,
    schema: Schema<'_>,
) -> Changes {
    let mut out = Changes::default();
    let keys: BTreeSet<&String> = old
        .as_object()
        .into_iter()
        .flatten()
        .chain(new.as_object().into_iter().flatten())
        .map(|(k, _)| k)
        .collect();
    for k in keys {
        let counts = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => subresource == Some("status") || !status_subresource,
            _ => subresource != Some("status"),
        };
        if !counts {
            continue;
        }
        let mut path = vec![Element::Field(k.clone())];
        if k == "metadata" {
            let (o, n) = (&old["metadata"], &new["metadata"]);
            let inner: BTreeSet<&String> = o
                .as_object()
                .into_iter()
                .flatten()
                .chain(n.as_object().into_iter().flatten())
                .map(|(k, _)| k)
                .filter(|k| !IGNORED_METADATA.contains(&k.as_str()))
                .collect();
            let ms = schema.property("metadata");
            for f in inner {
                path.push(Element::Field(f.clone()));
                walk_diff(o.get(f), n.get(f), ms.property(f), &mut path, &mut out);
                path.pop();
            }
            continue;
        }
        walk_diff(
            old.get(k),
            new.get(k),
            schema.property(k),
            &mut path,
            &mut out,
        );
    }
    out
}

fn walk_diff(
    a: Option<&Value>,
    b: Option<&Value>,
    schema: Schema<'_>,
    path: &mut Path,
    out: &mut Changes,
) {
    match (a, b) {
        (None, None) => {}
        (Some(a), Some(b)) if a == b => {}
        (None, Some(b)) => leaves(b, schema, path, &mut out.set),
        (Some(a), None) => leaves(a, schema, path, &mut out.removed),
        (Some(Value::Object(x)), Some(Value::Object(y)))
            if !x.is_empty() && !y.is_empty() && !schema.is_atomic_map() =>
        {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                path.push(Element::Field(k.clone()));
                walk_diff(x.get(k), y.get(k), schema.property(k), path, out);
                path.pop();
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y)))
            if schema.list_type() != ListType::Atomic =>
        {
            match schema.list_type() {
                ListType::Set => {
                    for v in y.iter().filter(|v| !x.contains(v)) {
                        path.push(Element::Value(canonical(v)));
                        out.set.push(path.clone());
                        path.pop();
                    }
                    for v in x.iter().filter(|v| !y.contains(v)) {
                        path.push(Element::Value(canonical(v)));
                        out.removed.push(path.clone());
                        path.pop();
                    }
                }
                ListType::Map(keys) => {
                    let find = |list: &'_ [Value], k: &str| -> Option<Value> {
                        list.iter()
                            .find(|i| item_key(i, &keys).as_deref() == Some(k))
                            .cloned()
                    };
                    let mut seen = BTreeSet::new();
                    for item in y {
                        let Some(k) = item_key(item, &keys) else {
                            continue;
                        };
                        seen.insert(k.clone());
                        let before = find(x, &k);
                        path.push(Element::Key(k));
                        match before {
                            Some(old) => walk_item(&old, item, schema.items(), path, out),
                            None => {
                                out.set.push(path.clone());
                                leaves(item, schema.items(), path, &mut out.set);
                            }
                        }
                        path.pop();
                    }
                    for item in x {
                        let Some(k) = item_key(item, &keys) else {
                            continue;
                        };
                        if seen.contains(&k) {
                            continue;
                        }
                        path.push(Element::Key(k));
                        out.removed.push(path.clone());
                        leaves(item, schema.items(), path, &mut out.removed);
                        path.pop();
                    }
                }
                ListType::Atomic => unreachable!("handled by the guard"),
            }
        }
        (Some(a), Some(b)) => {
            // A leaf, an atomic list or map, or a change of shape.
            if a.is_object() && !schema.is_atomic_map() || b.is_object() && !schema.is_atomic_map()
            {
                leaves(a, schema, path, &mut out.removed);
                leaves(b, schema, path, &mut out.set);
            } else if !path.is_empty() {
                out.set.push(path.clone());
            }
        }
    }
}

/// A map-list item present before and after: its fields, compared.
fn walk_item(a: &Value, b: &Value, schema: Schema<'_>, path: &mut Path, out: &mut Changes) {
    if a == b {
        return;
    }
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                path.push(Element::Field(k.clone()));
                walk_diff(x.get(k), y.get(k), schema.property(k), path, out);
                path.pop();
            }
        }
        _ => out.set.push(path.clone()),
    }
}

/// Takes `path` out of a `fieldsV1` tree; whether it was there (under its
/// canonical key).
pub(crate) fn tree_remove(node: &mut Map<String, Value>, path: &[Element]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let key = first.to_key();
    let Some(child) = node.get_mut(&key).and_then(Value::as_object_mut) else {
        return false;
    };
    if rest.is_empty() {
        if child.len() > 1 || (child.len() == 1 && !child.contains_key(".")) {
            child.remove(".");
        } else {
            node.remove(&key);
        }
        return true;
    }
    let found = tree_remove(child, rest);
    if child.is_empty() {
        node.remove(&key);
    } else if child.len() == 1 && child.contains_key(".") {
        // Only its own membership is left: a plain owned leaf.
        child.remove(".");
    }
    found
}

/// Puts `path` into a `fieldsV1` tree.
fn tree_add(node: &mut Map<String, Value>, path: &[Element]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = first.to_key();
    let existed = node.contains_key(&key);
    let child = node.entry(key).or_insert_with(|| json!({}));
    let Some(child) = child.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        if existed && !child.is_empty() {
            child.insert(".".into(), json!({}));
        }
        return;
    }
    if existed && child.is_empty() {
        // It was an owned leaf; it stays owned with fields under it.
        child.insert(".".into(), json!({}));
    }
    tree_add(child, rest);
}

/// Applies `changes` by `manager` to the `managedFields` list of an object.
pub fn record(
    managed: &mut Vec<Value>,
    changes: &Changes,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    now: &str,
) {
    if changes.set.is_empty() && changes.removed.is_empty() {
        return;
    }
    for e in managed.iter_mut() {
        if let Some(tree) = e["fieldsV1"].as_object_mut() {
            for p in changes.set.iter().chain(&changes.removed) {
                tree_remove(tree, p);
            }
        }
    }
    let mine = managed.iter().position(|e| {
        e["manager"] == manager
            && e["operation"] == "Update"
            && e["subresource"].as_str() == subresource
    });
    let i = match mine {
        Some(i) => i,
        None => {
            let mut e = json!({"manager": manager, "operation": "Update", "apiVersion": api_version,
                "time": now, "fieldsType": "FieldsV1", "fieldsV1": {}});
            if let Some(s) = subresource {
                e["subresource"] = json!(s);
            }
            managed.push(e);
            managed.len() - 1
        }
    };
    let e = &mut managed[i];
    if !changes.set.is_empty() {
        e["time"] = json!(now);
        e["apiVersion"] = json!(api_version);
    }
    if let Some(tree) = e["fieldsV1"].as_object_mut() {
        for p in &changes.set {
            tree_add(tree, p);
        }
    }
    managed.retain(|e| e["fieldsV1"].as_object().is_some_and(|t| !t.is_empty()));
}

/// The `fieldsV1` a create gives its manager: every owned field of `new`, in
/// one pass over the object (what [`diff`] from nothing and [`record`] into an
/// empty list give, without a path per field). `None` when a list holds an
/// item twice, which the general path handles.
pub fn created(
    new: &Value,
    status_subresource: bool,
    schema: Schema<'_>,
) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in new.as_object().into_iter().flatten() {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if status_subresource => {}
            "metadata" => {
                let ms = schema.property("metadata");
                let mut inner = Map::new();
                for (f, fv) in v.as_object().into_iter().flatten() {
                    if !IGNORED_METADATA.contains(&f.as_str()) {
                        node(&mut inner, format!("f:{f}"), fv, ms.property(f))?;
                    }
                }
                if !inner.is_empty() {
                    out.insert("f:metadata".into(), Value::Object(inner));
                }
            }
            _ => node(&mut out, format!("f:{k}"), v, schema.property(k))?,
        }
    }
    Some(out)
}

/// The `fieldsV1` of every field of `owned` (an owned part, as
/// [`super::managed::owned_part`] makes), in one pass: what
/// `set_of(owned).to_fields_v1()` gives. `None` when a list holds an item twice.
pub fn tree_of(owned: &Value, schema: Schema<'_>) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in owned.as_object()? {
        node(&mut out, format!("f:{k}"), v, schema.property(k))?;
    }
    Some(out)
}

/// Adds the node of `v` (at `key` under `parent`) when it owns anything.
fn node(parent: &mut Map<String, Value>, key: String, v: &Value, schema: Schema<'_>) -> Option<()> {
    let mut children = Map::new();
    let member = children_of(&mut children, v, schema)?;
    if member || !children.is_empty() {
        insert_new(parent, key, member, children)?;
    }
    Some(())
}

/// Adds the owned fields under `v` to `out`; whether `v` is itself owned (a leaf).
fn children_of(out: &mut Map<String, Value>, v: &Value, schema: Schema<'_>) -> Option<bool> {
    match v {
        Value::Object(o) if !o.is_empty() && !schema.is_atomic_map() => {
            for (k, c) in o {
                node(out, format!("f:{k}"), c, schema.property(k))?;
            }
            Some(false)
        }
        Value::Array(items) => match schema.list_type() {
            ListType::Set => {
                for item in items {
                    insert_new(out, format!("v:{}", canonical(item)), true, Map::new())?;
                }
                Some(false)
            }
            ListType::Map(keys) => {
                for item in items {
                    let Some(k) = item_key(item, &keys) else {
                        continue;
                    };
                    let mut fields = Map::new();
                    children_of(&mut fields, item, schema.items())?;
                    insert_new(out, format!("k:{k}"), true, fields)?;
                }
                Some(false)
            }
            ListType::Atomic => Some(true),
        },
        _ => Some(true),
    }
}

/// Inserts a node not seen before (`None` when it was: a repeated list item).
fn insert_new(
    parent: &mut Map<String, Value>,
    key: String,
    member: bool,
    mut children: Map<String, Value>,
) -> Option<()> {
    if parent.contains_key(&key) {
        return None;
    }
    if member && !children.is_empty() {
        children.insert(".".into(), json!({}));
    }
    parent.insert(key, Value::Object(children));
    Some(())
}
