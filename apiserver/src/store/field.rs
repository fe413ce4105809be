//! Field-filtered watches: what a watch of one field's value (a Task's
//! `status.agent`, a Pod's `spec.nodeName`) is offered, decided once per event
//! rather than once per watcher, as kube-apiserver's watch cache does with its
//! index triggers. A thousand agents each watching the Tasks bound to it then
//! cost each change one look at the field, not a thousand decodes.

use super::Event;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// A watch narrowed to the changes whose new or previous value has `value` at
/// the dotted `path` (compared as a field selector compares: see [`field_value`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldFilter {
    /// A dotted path, e.g. `status.agent`.
    pub path: String,
    /// The value it must have, before or after the change.
    pub value: String,
}

impl FieldFilter {
    /// Whether `event` concerns this filter: its new or its previous value has
    /// the field's value (a watch must also see an object stop matching).
    pub fn selects(&self, event: &Event) -> bool {
        field_value(&event.kv.value, &self.path) == self.value
            || event
                .prev
                .as_ref()
                .is_some_and(|p| field_value(&p.value, &self.path) == self.value)
    }
}

/// The value at the dotted `path` of the JSON object in `bytes`, as a field
/// selector compares it: a string as itself, a missing field or null as "",
/// anything else as its JSON text. Only the path's own values are decoded; the
/// rest is skipped over.
pub fn field_value(bytes: &[u8], path: &str) -> String {
    let segments: Vec<&str> = path.split('.').collect();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Bytes that are not JSON, or a path through something other than objects,
    // hold no value there.
    Seek(&segments).deserialize(&mut de).unwrap_or_default()
}

/// Follows the remaining path segments into a JSON value.
struct Seek<'a>(&'a [&'a str]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        if self.0.is_empty() {
            return Ok(match <Value as serde::Deserialize>::deserialize(d)? {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            });
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let (first, rest) = (self.0[0], &self.0[1..]);
        let mut found = String::new();
        // Every entry is read (the parser needs the object whole); the last of
        // duplicate keys wins, as when decoding into a Value.
        while let Some(here) = map.next_key_seed(KeyIs(first))? {
            if here {
                found = map.next_value_seed(Seek(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    // Anything but an object on the way holds nothing at the path.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(String::new())
    }
}

/// Reads an object key and says whether it is the wanted one, without
/// allocating it.
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, KeyValue};
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::Arc;

    /// The field selector's own reading of a decoded object (`FieldSelector::matches`).
    fn reference(obj: &Value, path: &str) -> String {
        let mut cur = obj;
        for seg in path.split('.') {
            cur = &cur[seg];
        }
        match cur {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    #[test]
    fn reads_the_value_at_a_path() {
        let obj = json!({
            "metadata": {"name": "t1", "labels": {"a": "b"}},
            "spec": {"framework": "f", "priority": 3, "ok": true, "list": [1, 2]},
            "status": {"agent": "node-1", "phase": null},
            "s": "str"
        });
        let bytes = serde_json::to_vec(&obj).unwrap();
        for (path, want) in [
            ("status.agent", "node-1"),
            ("metadata.name", "t1"),
            ("spec.priority", "3"),
            ("spec.ok", "true"),
            ("spec.list", "[1,2]"),
            ("metadata.labels", r#"{"a":"b"}"#),
            ("status.phase", ""),
            ("status.missing", ""),
            ("missing.deeper", ""),
            ("s.through_a_string", ""),
            ("spec.list.0", ""),
        ] {
            assert_eq!(field_value(&bytes, path), want, "{path}");
            assert_eq!(
                reference(&obj, path),
                want,
                "the reference agrees on {path}"
            );
        }
        assert_eq!(field_value(b"not json", "status.agent"), "");
        assert_eq!(
            field_value(br#"{"status":{"agent":"a\"b"}}"#, "status.agent"),
            "a\"b"
        );
    }

    #[test]
    fn a_filter_selects_a_change_into_or_out_of_its_value() {
        let kv = |agent: &str| {
            Arc::new(KeyValue {
                key: "/k".into(),
                value: serde_json::to_vec(&json!({"status": {"agent": agent}}))
                    .unwrap()
                    .into(),
                create_revision: 1,
                mod_revision: 2,
            })
        };
        let f = FieldFilter {
            path: "status.agent".into(),
            value: "a".into(),
        };
        let ev = |new: &str, prev: Option<&str>| Event::new(EventKind::Put, kv(new), prev.map(kv));
        assert!(f.selects(&ev("a", None)));
        assert!(f.selects(&ev("a", Some(""))), "bound to it");
        assert!(
            f.selects(&ev("b", Some("a"))),
            "moved away: the watcher must hear"
        );
        assert!(!f.selects(&ev("b", Some(""))));
        assert!(!f.selects(&ev("", None)));
    }

    proptest! {
        /// Reading without decoding gives what decoding and walking gives.
        #[test]
        fn agrees_with_decoding(obj in crate::arbitrary_json::json_value("[abc]", "[a-c\"\\\\é]{0,4}"), path in "[abc](\\.[abc]){0,2}") {
            let bytes = serde_json::to_vec(&obj).unwrap();
            prop_assert_eq!(field_value(&bytes, &path), reference(&obj, &path));
        }
    }
}
