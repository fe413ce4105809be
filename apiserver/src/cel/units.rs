//! A CRD schema cut into units: one per rule, each compiled on its own with
//! only that rule at its node and only the parts of the
//! schema beneath it that change how a value converts to CEL (a `format`, a
//! map, an embedded resource). A write then converts and evaluates only the
//! values under nodes with rules, not the whole object at every level, which
//! is what evaluating the whole compiled schema costs.

use serde_json::{Map, Value};

/// How a unit's node is reached from the root.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A declared property.
    Prop(String),
    /// Each item of an array.
    Items,
    /// Each key of an object not among its declared `properties`.
    Additional(Vec<String>),
}

/// One rule: where its node is and the node's schema, cut down.
#[derive(Debug)]
pub struct UnitSchema {
    /// The steps from the root to the node.
    pub path: Vec<Step>,
    /// The node's schema with that rule alone, its descendants' rules gone.
    pub schema: Value,
}

/// The rules of `schema`, node by node; `None` when a rule sits where
/// only the whole-schema walk evaluates it (under `allOf`, `anyOf`, `oneOf`
/// or `not`).
pub fn split(schema: &Value) -> Option<Vec<UnitSchema>> {
    let mut out = Vec::new();
    collect(schema, &mut Vec::new(), &mut out).then_some(out)
}

fn has_rules_at(node: &Value) -> bool {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn has_rules_below(node: &Value) -> bool {
    match node {
        Value::Object(m) => has_rules_at(node) || m.values().any(has_rules_below),
        Value::Array(a) => a.iter().any(has_rules_below),
        _ => false,
    }
}

fn collect(node: &Value, path: &mut Vec<Step>, out: &mut Vec<UnitSchema>) -> bool {
    if ["allOf", "anyOf", "oneOf", "not"]
        .iter()
        .any(|k| node.get(k).is_some_and(has_rules_below))
    {
        return false;
    }
    if has_rules_at(node) {
        let pruned = prune(node).unwrap_or_else(|| Value::Object(Map::new()));
        // A unit per rule, in order: each sees (and remembers passing on)
        // only what its own rule reads.
        for rule in node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mut schema = pruned.clone();
            if let Some(m) = schema.as_object_mut() {
                m.insert(
                    "x-kubernetes-validations".into(),
                    Value::Array(vec![rule.clone()]),
                );
            }
            out.push(UnitSchema {
                path: path.clone(),
                schema,
            });
        }
    }
    let props = node.get("properties").and_then(Value::as_object);
    for (name, child) in props.into_iter().flatten() {
        path.push(Step::Prop(name.clone()));
        let ok = collect(child, path, out);
        path.pop();
        if !ok {
            return false;
        }
    }
    if let Some(items) = node.get("items").filter(|i| i.is_object()) {
        path.push(Step::Items);
        let ok = collect(items, path, out);
        path.pop();
        if !ok {
            return false;
        }
    }
    let preserve = node
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(extra) = node.get("additionalProperties").filter(|a| a.is_object())
        && !preserve
    {
        let known = props
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        path.push(Step::Additional(known));
        let ok = collect(extra, path, out);
        path.pop();
        if !ok {
            return false;
        }
    }
    true
}

/// The formats that make a string convert to another CEL type (a timestamp,
/// a duration, bytes); others (`int32`, `uint16`...) convert as plain JSON.
const CONVERTED_FORMATS: [&str; 3] = ["date-time", "duration", "byte"];

/// The parts of `node` that change how a value converts to CEL, without any
/// rule; `None` when nothing beneath it does (the value then converts as
/// plain JSON, which is the same).
fn prune(node: &Value) -> Option<Value> {
    let m = node.as_object()?;
    let mut out = Map::new();
    for key in [
        "format",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-preserve-unknown-fields",
        "type",
    ] {
        if let Some(v) = m.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut kept = converts(m);
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        let pruned: Map<String, Value> = props
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), prune(v)?)))
            .collect();
        if !pruned.is_empty() {
            kept = true;
            out.insert("properties".into(), Value::Object(pruned));
        }
    }
    if let Some(items) = m.get("items").and_then(prune) {
        kept = true;
        out.insert("items".into(), items);
    }
    match m.get("additionalProperties") {
        // A map's keys are data, not field names: they convert unescaped,
        // so the map must stay in the schema.
        Some(Value::Object(a)) => {
            kept = true;
            let inner =
                prune(&Value::Object(a.clone())).unwrap_or_else(|| Value::Object(Map::new()));
            out.insert("additionalProperties".into(), inner);
        }
        Some(Value::Bool(true)) => {
            kept = true;
            out.insert("additionalProperties".into(), Value::Bool(true));
        }
        _ => {}
    }
    kept.then_some(Value::Object(out))
}

/// Whether a node's format or embedding changes how its own value converts.
fn converts(node: &Map<String, Value>) -> bool {
    node.get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| CONVERTED_FORMATS.contains(&f))
        || node
            .get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true)
}

/// Whether a node's own schema changes how its value converts: its format,
/// its embedding, or its being a map (whose keys are not escaped).
fn marks(node: &Map<String, Value>) -> bool {
    converts(node)
        || matches!(
            node.get("additionalProperties"),
            Some(Value::Object(_) | Value::Bool(true))
        )
}

/// Whether `v` holds anything that a unit's `schema` converts otherwise
/// than plain JSON does: when it does not, the unit's rules can be
/// evaluated on the node's schema alone ([`flat`]), which kube-cel converts
/// once instead of again at each node beneath it.
pub fn touches(schema: &Value, v: &Value) -> bool {
    let Some(node) = schema.as_object() else {
        return false;
    };
    if marks(node) {
        return true;
    }
    let props = node.get("properties").and_then(Value::as_object);
    let in_props = props.into_iter().flatten().any(|(k, child)| {
        v.as_object()
            .and_then(|o| o.get(k))
            .is_some_and(|x| touches(child, x))
    });
    in_props
        || node.get("items").is_some_and(|items| {
            v.as_array()
                .into_iter()
                .flatten()
                .any(|x| touches(items, x))
        })
}

/// A unit's schema with nothing beneath its node: its rules, its type.
pub fn flat(schema: &Value) -> Value {
    let mut out = Map::new();
    for key in ["type", "x-kubernetes-validations"] {
        if let Some(v) = schema.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Calls `f` with each value (and its old value, correlated as kube-cel
/// correlates them: by key, and by index in arrays) at the end of `steps`,
/// and the field path to it.
pub fn visit<'a>(
    steps: &[Step],
    value: &'a Value,
    old: Option<&'a Value>,
    path: &mut String,
    f: &mut dyn FnMut(&'a Value, Option<&'a Value>, &str),
) {
    let Some((step, rest)) = steps.split_first() else {
        f(value, old, path);
        return;
    };
    let len = path.len();
    match step {
        Step::Prop(name) => {
            if let Some(v) = value.as_object().and_then(|o| o.get(name)) {
                push_key(path, name);
                visit(rest, v, old.and_then(|o| o.get(name)), path, f);
            }
        }
        Step::Items => {
            for (i, v) in value.as_array().into_iter().flatten().enumerate() {
                path.push_str(&format!("[{i}]"));
                let o = old.and_then(Value::as_array).and_then(|a| a.get(i));
                visit(rest, v, o, path, f);
                path.truncate(len);
            }
        }
        Step::Additional(known) => {
            for (k, v) in value.as_object().into_iter().flatten() {
                if known.contains(k) {
                    continue;
                }
                push_key(path, k);
                visit(rest, v, old.and_then(|o| o.get(k)), path, f);
                path.truncate(len);
            }
        }
    }
    path.truncate(len);
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_node_with_rules_is_a_unit_without_its_descendants_rules() {
        let schema = json!({"type": "object",
            "x-kubernetes-validations": [{"rule": "self.spec == oldSelf.spec"}],
            "properties": {
                "spec": {"type": "object",
                    "x-kubernetes-validations": [{"rule": "has(self.a)"}],
                    "properties": {"a": {"type": "string"},
                        "when": {"type": "string", "format": "date-time"},
                        "count": {"type": "integer", "format": "int32"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "status": {"type": "object", "properties": {"n": {"type": "integer"}}}}});
        let units = split(&schema).unwrap();
        assert_eq!(units.len(), 2);
        assert!(units[0].path.is_empty());
        // The root keeps what converts differently (a date-time, a map), not
        // the spec's rule nor plain fields (an int32 converts as any integer).
        assert_eq!(
            units[0].schema["properties"],
            json!({"spec": {"type": "object", "properties": {
                "when": {"type": "string", "format": "date-time"},
                "labels": {"type": "object", "additionalProperties": {}}}}})
        );
        assert_eq!(units[1].path, vec![Step::Prop("spec".into())]);
        assert_eq!(
            units[1].schema["x-kubernetes-validations"][0]["rule"],
            "has(self.a)"
        );
    }

    #[test]
    fn touches_only_what_converts_otherwise() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "when": {"type": "string", "format": "date-time"},
                "labels": {"type": "object", "additionalProperties": {}}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {
                "at": {"type": "string", "format": "date-time"}}}}}});
        assert!(!touches(&schema, &json!({"spec": {"a": 1}, "status": {}})));
        assert!(touches(
            &schema,
            &json!({"spec": {"when": "2024-01-01T00:00:00Z"}})
        ));
        assert!(touches(&schema, &json!({"spec": {"labels": {}}})));
        assert!(!touches(&schema, &json!({"list": [{"b": 1}]})));
        assert!(touches(&schema, &json!({"list": [{"b": 1}, {"at": "x"}]})));
        let unit = json!({"type": "object", "x-kubernetes-validations": [{"rule": "true"}],
            "properties": {"when": {"type": "string", "format": "date-time"}}});
        assert_eq!(
            flat(&unit),
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "true"}]})
        );
    }

    #[test]
    fn rules_under_junctors_fall_back_to_the_whole_walk() {
        let schema =
            json!({"type": "object", "allOf": [{"x-kubernetes-validations": [{"rule": "true"}]}]});
        assert!(split(&schema).is_none());
    }

    #[test]
    fn visits_items_and_map_values_with_their_paths() {
        let steps = vec![
            Step::Prop("spec".into()),
            Step::Items,
            Step::Additional(vec!["known".into()]),
        ];
        let v = json!({"spec": [{"known": 1, "a": 2}, {"b": 3}]});
        let old = json!({"spec": [{"a": 1}]});
        let mut seen = Vec::new();
        visit(
            &steps,
            &v,
            Some(&old),
            &mut String::new(),
            &mut |v, o, p| seen.push((p.to_string(), v.clone(), o.cloned())),
        );
        assert_eq!(
            seen,
            vec![
                ("spec[0].a".into(), json!(2), Some(json!(1))),
                ("spec[1].b".into(), json!(3), None)
            ]
        );
    }
}
