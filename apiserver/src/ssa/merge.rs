//! Merging an applied configuration into the live object: fields the
//! configuration sets win; structs and granular maps merge field by field;
//! map-lists merge item by item (matched by their keys); set-lists take the
//! union; atomic lists and maps are replaced whole.

use super::fields::{Element, Path, item_key};
use super::schema::{ListType, Schema};
use serde_json::Value;

/// Merges `cfg` into `live`.
pub fn merge(live: &mut Value, cfg: &Value, schema: Schema<'_>) {
    if let (Some(l), Some(c)) = (live.as_object_mut(), cfg.as_object())
        && !schema.is_atomic_map()
    {
        for (k, cv) in c {
            match l.get_mut(k) {
                Some(lv) => merge(lv, cv, schema.property(k)),
                None => {
                    l.insert(k.clone(), cv.clone());
                }
            }
        }
        return;
    }
    if let (Some(l), Some(c)) = (live.as_array_mut(), cfg.as_array()) {
        match schema.list_type() {
            ListType::Set => {
                for item in c {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
                return;
            }
            ListType::Map(keys) => {
                for item in c {
                    let k = item_key(item, &keys);
                    match l
                        .iter_mut()
                        .find(|i| k.is_some() && item_key(i, &keys) == k)
                    {
                        Some(li) => merge(li, item, schema.items()),
                        None => l.push(item.clone()),
                    }
                }
                return;
            }
            ListType::Atomic => {}
        }
    }
    *live = cfg.clone();
}

/// The first problem with a map-list in `v`: an item without a key field, or
/// two items with the same key. Returns the list's path and what is wrong.
pub fn check_lists(v: &Value, schema: Schema<'_>, path: &mut Path) -> Option<(Path, String)> {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                path.push(Element::Field(k.clone()));
                let found = check_lists(child, schema.property(k), path);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Array(items) => {
            if let ListType::Map(keys) = schema.list_type() {
                let mut seen = std::collections::BTreeSet::new();
                for item in items {
                    let Some(k) = item_key(item, &keys) else {
                        let missing = keys.iter().find(|k| item.get(*k).is_none());
                        return Some((
                            path.clone(),
                            format!(
                                "an item omits the key field {:?} of this map-list",
                                missing.map(String::as_str).unwrap_or_default()
                            ),
                        ));
                    };
                    if !seen.insert(k.clone()) {
                        return Some((
                            path.clone(),
                            format!(
                                "duplicate entries for key {}",
                                super::fields::display(&vec![Element::Key(k)])
                            ),
                        ));
                    }
                }
            }
            for (i, item) in items.iter().enumerate() {
                path.push(Element::Index(i));
                let found = check_lists(item, schema.items(), path);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        _ => None,
    }
}
