//! A stored object's bytes with `metadata.resourceVersion` set, without
//! parsing the object: the store keeps objects without it (the revision is
//! the version), and a watch event would otherwise decode and re-encode each
//! object only to add it. The scan steps over the top-level values (strings,
//! escapes and nesting respected) to the `metadata` object and writes the
//! field first in it; anything unexpected (not an object, no `metadata`, one
//! that already has a resourceVersion) answers `None`, and the caller decodes.

/// `stored` with `"resourceVersion":"<rv>"` as the first field of its metadata.
pub fn with_resource_version(stored: &[u8], rv: i64) -> Option<Vec<u8>> {
    let open = metadata_object(stored)?;
    let empty = is_empty_without(stored, open, b"resourceVersion")?;
    let field = format!(
        r#""resourceVersion":"{rv}"{}"#,
        if empty { "" } else { "," }
    );
    let mut out = Vec::with_capacity(stored.len() + field.len());
    out.extend_from_slice(&stored[..=open]);
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(&stored[open + 1..]);
    Some(out)
}

/// Where the top-level `metadata` object's `{` is.
fn metadata_object(b: &[u8]) -> Option<usize> {
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = ws(b, i);
        let end = string(b, i)?;
        let key = &b[i + 1..end - 1];
        i = ws(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        if key == b"metadata" {
            return (b.get(i) == Some(&b'{')).then_some(i);
        }
        i = ws(b, value(b, i)?);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

/// Steps over the keys of the object opening at `open`: `None` when one is
/// `key`, else whether the object is empty.
fn is_empty_without(b: &[u8], open: usize, key: &[u8]) -> Option<bool> {
    let mut i = ws(b, open + 1);
    if b.get(i) == Some(&b'}') {
        return Some(true);
    }
    loop {
        let end = string(b, i)?;
        if &b[i + 1..end - 1] == key {
            return None;
        }
        i = ws(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, value(b, ws(b, i + 1))?);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return Some(false),
            _ => return None,
        }
    }
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// The end (one past the closing quote) of the string starting at `i`.
fn string(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The end of the JSON value starting at `i`.
fn value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// What decoding, setting the field and encoding again gives.
    fn decoded(stored: &[u8], rv: i64) -> Value {
        let mut v: Value = serde_json::from_slice(stored).unwrap();
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        v
    }

    fn same(stored: &Value, rv: i64) {
        let bytes = serde_json::to_vec(stored).unwrap();
        let spliced = with_resource_version(&bytes, rv).expect("spliced");
        let got: Value = serde_json::from_slice(&spliced).unwrap();
        assert_eq!(got, decoded(&bytes, rv));
    }

    #[test]
    fn the_field_goes_into_the_top_level_metadata_only() {
        same(
            &json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a"}}),
            7,
        );
        same(&json!({"metadata": {}}), 1);
        // Values before it that look like metadata, with quotes, escapes and brackets in strings.
        same(
            &json!({"aaa": {"metadata": {"x": "}\"{"}}, "b\"k": ["]", "\\", {"a": [1, {"b": null}]}],
                    "c": -1.5e3, "d": true, "metadata": {"name": "n", "labels": {"metadata": "{"}}, "spec": {}}),
            42,
        );
        // Pretty-printed input too.
        let pretty =
            serde_json::to_vec_pretty(&json!({"a": [1, 2], "metadata": {"n": 1}})).unwrap();
        let got: Value =
            serde_json::from_slice(&with_resource_version(&pretty, 3).unwrap()).unwrap();
        assert_eq!(got, decoded(&pretty, 3));
    }

    #[test]
    fn anything_else_is_left_to_the_decoder() {
        for bad in [
            &b"[1]"[..],
            b"{}",
            b"{\"a\": 1}",
            b"{\"metadata\": 1}",
            b"{\"metadata\": {\"resourceVersion\": \"1\"}}",
            b"{\"a\": ",
            b"{\"a\": \"unterminated",
            b"",
        ] {
            assert_eq!(
                with_resource_version(bad, 1),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        crate::arbitrary_json::json_value("[a-z\"{}]{0,6}", "[a-z\"\\\\{}\\[\\],: ]{0,8}")
    }

    proptest! {
        #[test]
        fn splicing_equals_decoding(
            before in prop::collection::btree_map("[a-l\"{}]{0,6}", json_value(), 0..4),
            meta in prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..4),
            after in prop::collection::btree_map("[n-z]{1,6}", json_value(), 0..3),
            rv in 1i64..1_000_000,
        ) {
            let mut obj = serde_json::Map::new();
            obj.extend(before);
            obj.insert("metadata".into(), Value::Object(meta.into_iter().collect()));
            obj.extend(after);
            same(&Value::Object(obj), rv);
        }
    }
}
