//! Trees of field paths, and an object cut down to them: what a watch's
//! selectors look at, what a CEL rule reads. Cut from stored bytes
//! ([`Paths::read`]) the JSON is scanned once and only the wanted fields
//! become values; cut from a value ([`Paths::project`]) only they are copied.

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// The parts of a value to keep: all of it, or some fields of an object.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Paths {
    /// The value as it is.
    #[default]
    Whole,
    /// These fields of an object, each cut as its own paths say (none: an
    /// empty object, which still says the object is there). A value that is
    /// not an object is kept whole.
    Fields(BTreeMap<String, Paths>),
}

impl Paths {
    /// No field at all.
    pub fn none() -> Self {
        Self::Fields(BTreeMap::new())
    }

    /// Keeps the value at `path` (its segments) whole.
    pub fn add<S: AsRef<str>>(&mut self, path: &[S]) {
        if let Some(node) = self.node(path) {
            *node = Self::Whole;
        }
    }

    /// Keeps the field at `path` present, without any of its own fields
    /// unless some other path asks for them.
    pub fn add_presence<S: AsRef<str>>(&mut self, path: &[S]) {
        self.node(path);
    }

    /// The node at `path`, made as needed; `None` when a shorter path
    /// already keeps it whole.
    fn node<S: AsRef<str>>(&mut self, path: &[S]) -> Option<&mut Self> {
        let mut cur = self;
        for seg in path {
            let Self::Fields(m) = cur else {
                return None;
            };
            cur = m.entry(seg.as_ref().to_string()).or_insert_with(Self::none);
        }
        match cur {
            Self::Whole => None,
            node => Some(node),
        }
    }

    /// What to keep of field `name` of an object; `None`: nothing.
    pub fn field(&self, name: &str) -> Option<&Paths> {
        match self {
            Self::Whole => Some(&Self::Whole),
            Self::Fields(m) => m.get(name),
        }
    }

    /// `value` cut down to these paths.
    pub fn project(&self, value: &Value) -> Value {
        match (self, value) {
            (Self::Fields(m), Value::Object(o)) => Value::Object(
                m.iter()
                    .filter_map(|(k, p)| Some((k.clone(), p.project(o.get(k)?))))
                    .collect(),
            ),
            _ => value.clone(),
        }
    }

    /// The JSON in `bytes` cut down to these paths; `None` when it is not JSON.
    pub fn read(&self, bytes: &[u8]) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let v = self.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(v)
    }

    /// [`Paths::read`] of an object this server stored (its own encoding of
    /// a JSON object, so each key once): the reading stops at the last
    /// top-level field wanted, so a watch's label selector or the garbage
    /// collector's look at metadata skips the spec and status. What follows
    /// is not checked; bytes that are not an object give `None`.
    pub fn read_stored(&self, bytes: &[u8]) -> Option<Value> {
        let Self::Fields(fields) = self else {
            return self.read(bytes);
        };
        let mut out = None;
        let mut de = serde_json::Deserializer::from_slice(bytes);
        // Stopping early leaves the object unfinished, an error to serde_json:
        // what was read is in `out` all the same.
        let _ = de.deserialize_map(Prefix {
            fields,
            out: &mut out,
        });
        out
    }
}

/// Reads an object's wanted fields into `out`, stopping once it has them all.
struct Prefix<'a, 'o> {
    fields: &'a BTreeMap<String, Paths>,
    out: &'o mut Option<Value>,
}

impl<'de> Visitor<'de> for Prefix<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut got = Map::new();
        while got.len() < self.fields.len() {
            let Some(Key(key)) = map.next_key()? else {
                break;
            };
            match self.fields.get(key.as_ref()) {
                Some(sub) => {
                    let v = map.next_value_seed(sub)?;
                    got.insert(key.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        *self.out = Some(Value::Object(got));
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for &Paths {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self {
            Paths::Whole => serde::Deserialize::deserialize(d),
            Paths::Fields(fields) => d.deserialize_any(Pick(fields)),
        }
    }
}

/// Builds an object of the wanted fields only; any other value whole.
struct Pick<'a>(&'a BTreeMap<String, Paths>);

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            match self.0.get(key.as_ref()) {
                Some(sub) => {
                    let v = map.next_value_seed(sub)?;
                    out.insert(key.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An object key, borrowed from the input where it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }

            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"metadata": {"name": "a", "labels": {"x": "1"}, "managedFields": [{"m": 1}]},
            "spec": {"big": [1, 2.5, {"c": null}], "n": 3, "on": true},
            "status": {"agent": "n1", "conditions": [{"type": "Ready"}], "phase": "Running"}})
    }

    #[test]
    fn reading_and_projecting_keep_only_the_paths() {
        let bytes = serde_json::to_vec(&obj()).unwrap();
        let mut p = Paths::none();
        p.add(&["status", "agent"]);
        p.add(&["metadata", "labels"]);
        p.add(&["metadata", "name"]);
        let want =
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "status": {"agent": "n1"}});
        assert_eq!(p.read(&bytes).unwrap(), want);
        assert_eq!(p.project(&obj()), want);
        // Presence only: the object is there, empty; a value that is not an
        // object is kept whole.
        let mut q = Paths::none();
        q.add_presence(&["status"]);
        q.add_presence(&["spec", "big"]);
        q.add_presence(&["spec", "n", "deeper"]);
        let want = json!({"status": {}, "spec": {"big": [1, 2.5, {"c": null}], "n": 3}});
        assert_eq!(q.read(&bytes).unwrap(), want);
        assert_eq!(q.project(&obj()), want);
        // A shorter path keeps everything under it, in either order.
        let orders: [[&[&str]; 2]; 2] = [
            [&["status"], &["status", "agent"]],
            [&["status", "agent"], &["status"]],
        ];
        for order in orders {
            let mut r = Paths::none();
            for path in order {
                r.add(path);
            }
            r.add_presence(&["status", "phase"]);
            assert_eq!(r.read(&bytes).unwrap()["status"], obj()["status"]);
            assert_eq!(r.project(&obj())["status"], obj()["status"]);
        }
        assert_eq!(Paths::Whole.read(&bytes).unwrap(), obj());
        assert_eq!(Paths::Whole.project(&obj()), obj());
    }

    #[test]
    fn reading_stored_bytes_stops_after_the_last_wanted_field() {
        let bytes = serde_json::to_vec(&obj()).unwrap();
        let mut p = Paths::none();
        p.add(&["metadata", "labels"]);
        p.add(&["metadata", "name"]);
        let want = json!({"metadata": {"name": "a", "labels": {"x": "1"}}});
        assert_eq!(p.read_stored(&bytes).unwrap(), want);
        // What follows the wanted fields is not read.
        let cut = br#"{"apiVersion": "v1", "metadata": {"name": "a"}, "spec": [1,"#;
        assert_eq!(
            p.read_stored(cut).unwrap(),
            json!({"metadata": {"name": "a"}})
        );
        // Otherwise the answers are `read`'s (a wanted field that is
        // missing reads the whole object).
        let mut q = Paths::none();
        q.add(&["status", "agent"]);
        q.add(&["spec", "n"]);
        assert_eq!(q.read_stored(&bytes), q.read(&bytes));
        assert_eq!(p.read_stored(&bytes), p.read(&bytes));
        assert_eq!(Paths::Whole.read_stored(&bytes).unwrap(), obj());
        let mut r = Paths::none();
        r.add(&["missing"]);
        assert_eq!(r.read_stored(&bytes).unwrap(), json!({}));
        // Broken before the last wanted field: nothing.
        assert!(q.read_stored(br#"{"spec": {"n": 1}, "status": "#).is_none());
        assert!(p.read_stored(b"[1, 2]").is_none());
    }

    #[test]
    fn escaped_keys_and_bad_input() {
        let mut p = Paths::none();
        p.add(&["status", "agent"]);
        assert_eq!(
            p.read(br#"{"st\u0061tus": {"agent": "e"}}"#).unwrap(),
            json!({"status": {"agent": "e"}})
        );
        assert!(p.read(b"{\"status\": ").is_none());
        assert!(p.read(b"{} trailing").is_none());
        assert!(p.read(b"{\"spec\": [1,}").is_none());
    }
}
