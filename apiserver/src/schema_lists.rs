//! Lists whose items must be unique, as kube-apiserver checks them on every
//! write: `x-kubernetes-list-type: map` by the values of its
//! `x-kubernetes-list-map-keys`, `set` by the whole item.

use serde_json::{Value, json};

/// The first item (index, and what repeats, as kube-apiserver words it)
/// that repeats an earlier one, if the schema asks for unique items.
pub fn duplicate(schema: &Value, items: &[Value]) -> Option<(usize, String)> {
    let keyed = |item: &Value| -> Value {
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let keys = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut k = serde_json::Map::new();
                for key in keys.iter().filter_map(Value::as_str) {
                    if let Some(v) = item.get(key) {
                        k.insert(key.to_string(), v.clone());
                    }
                }
                Value::Object(k)
            }
            _ => item.clone(),
        }
    };
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") | Some("set") => {}
        _ => return None,
    }
    let mut seen: Vec<Value> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let k = keyed(item);
        if seen.contains(&k) {
            let shown = if k.is_object() { k } else { json!(k) };
            return Some((i, shown.to_string()));
        }
        seen.push(k);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::duplicate;
    use serde_json::json;

    #[test]
    fn map_lists_are_unique_by_their_keys_and_sets_by_value() {
        let map = json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]});
        let items = [
            json!({"name": "http"}),
            json!({"name": "admin"}),
            json!({"name": "http", "hostPort": 1}),
        ];
        assert_eq!(
            duplicate(&map, &items),
            Some((2, r#"{"name":"http"}"#.into()))
        );
        assert_eq!(duplicate(&map, &items[..2]), None);
        let set = json!({"x-kubernetes-list-type": "set"});
        assert_eq!(
            duplicate(&set, &[json!("a"), json!("a")]).map(|d| d.0),
            Some(1)
        );
        assert_eq!(
            duplicate(&json!({}), &[json!("a"), json!("a")]),
            None,
            "atomic"
        );
    }
}
