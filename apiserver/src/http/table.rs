//! `meta.k8s.io/v1` Table output for `kubectl get`: Name plus the resource's
//! printer columns, each cell from the column's JSONPath.

use super::{Params, meta};
use crate::registry::ResourceInfo;
use serde_json::{Value, json};

/// Whether the client asked for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|a| a.contains("as=Table"))
}

fn cell(col: &crate::registry::PrinterColumn, obj: &Value) -> Value {
    if let Some(compute) = col.compute {
        return compute(obj);
    }
    let Some(path) = &col.path else {
        return Value::Null;
    };
    let found = path.query(obj).all();
    let Some(v) = found.first() else {
        return Value::Null;
    };
    match (col.type_.as_str(), v) {
        ("date", Value::String(ts)) => {
            meta::age_secs(ts).map_or(Value::Null, |s| json!(meta::human_duration(s)))
        }
        ("string", Value::String(_)) => (*v).clone(),
        ("string", other) => json!(other.to_string()),
        _ => (*v).clone(),
    }
}

/// A Table of `objects`, with column definitions when `headers`.
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    params: &Params,
    list_meta: Value,
    headers: bool,
) -> Value {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in &info.columns {
        defs.push(json!({"name": c.name, "type": c.type_, "format": "", "description": c.description, "priority": c.priority}));
    }
    let include = params.include_object.as_deref().unwrap_or("Metadata");
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            cells.extend(info.columns.iter().map(|c| cell(c, o)));
            let object = match include {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "rows": rows});
    if headers {
        t["columnDefinitions"] = json!(defs);
    }
    t
}
