//! What the write path enforces so that every stored object can be read back:
//! no object nested deeper than [`MAX_DEPTH`] (the JSON reader reads 128
//! levels, and lists and watch events wrap an object in two more), checked on
//! the object a write would store, after any patch is applied; and, as
//! kube-apiserver, annotations of at most 256 KiB in all.

use crate::error::Cause;
use serde_json::Value;

/// The deepest nesting of objects and arrays the server stores.
pub const MAX_DEPTH: usize = 100;

/// kube-apiserver's limit on the total size of an object's annotations.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// A cause when `obj` nests deeper than [`MAX_DEPTH`], naming where.
pub fn check_depth(obj: &Value) -> Option<Cause> {
    let mut path = Vec::new();
    too_deep(obj, 1, &mut path).then(|| {
        // The steps were found from the innermost out.
        let field = path
            .iter()
            .rev()
            .enumerate()
            .map(|(i, step)| match step {
                Step::Key(k) if i == 0 => k.to_string(),
                Step::Key(k) => format!(".{k}"),
                Step::Index(n) => format!("[{n}]"),
            })
            .collect();
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: nested more than {MAX_DEPTH} levels deep"),
            field,
        }
    })
}

/// One step into a value.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Whether `v`, at `depth`, nests past the limit; `path` then holds the
/// steps there, innermost first (nothing is built while nothing is found).
fn too_deep<'a>(v: &'a Value, depth: usize, path: &mut Vec<Step<'a>>) -> bool {
    let nested = matches!(v, Value::Object(_) | Value::Array(_));
    if !nested {
        return false;
    }
    if depth > MAX_DEPTH {
        return true;
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if too_deep(child, depth + 1, path) {
                    path.push(Step::Key(k));
                    return true;
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                if too_deep(child, depth + 1, path) {
                    path.push(Step::Index(i));
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

/// A cause when the annotations' keys and values exceed 256 KiB in all.
pub fn check_annotations(obj: &Value) -> Option<Cause> {
    let a = obj["metadata"]["annotations"].as_object()?;
    let size: usize = a
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    (size > MAX_ANNOTATIONS_BYTES).then(|| Cause {
        reason: "FieldValueTooLong",
        message: format!("Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
        field: "metadata.annotations".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut v = json!("leaf");
        for _ in 0..levels {
            v = json!({ "f:a": v });
        }
        v
    }

    #[test]
    fn depth_is_counted_from_the_root_and_the_path_named() {
        assert!(check_depth(&nested(MAX_DEPTH)).is_none());
        let c = check_depth(&json!({"metadata": {"managedFields": [nested(MAX_DEPTH)]}})).unwrap();
        assert!(
            c.field.starts_with("metadata.managedFields[0].f:a.f:a"),
            "{}",
            c.field
        );
        // Deep beyond any reader's limit: still answered, without overflowing the stack.
        assert!(check_depth(&nested(1_000)).is_some());
    }

    #[test]
    fn annotations_are_capped_at_256_kib() {
        let big = "x".repeat(MAX_ANNOTATIONS_BYTES);
        assert!(check_annotations(&json!({"metadata": {"annotations": {"a": big}}})).is_some());
        let fits = "x".repeat(MAX_ANNOTATIONS_BYTES - 1);
        assert!(check_annotations(&json!({"metadata": {"annotations": {"a": fits}}})).is_none());
    }
}
