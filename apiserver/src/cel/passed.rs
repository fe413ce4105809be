//! What a unit's rules have passed on. CEL rules are pure functions of what
//! they see (`self`, `oldSelf`, and at the root the kind), so inputs seen to
//! pass once pass again: many objects share a spec (an App's instances, a
//! Job's runs) and an object's writes repeat what its rules read, so most
//! writes find their inputs here and skip the conversion to CEL and the
//! evaluation. Only passes are kept (a failure is evaluated again, for its
//! message); a hit is confirmed by comparing the inputs, never by hash alone.
//! Bounded by the size of what it holds (inputs too large for it are never
//! kept): forgotten all at once when full.

use serde_json::Value;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// How much a unit keeps, in the inputs' own measure (about their size as
/// JSON; in memory they take a few times that).
const CAPACITY: usize = 4 << 20;

/// The largest inputs kept.
const LARGEST: usize = CAPACITY / 256;

type Inputs = (Value, Option<Value>);

/// The inputs one unit's rules passed on.
#[derive(Default)]
pub struct Passed {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    by_hash: HashMap<u64, Vec<Inputs>>,
    size: usize,
}

impl Passed {
    /// Whether the rules passed on exactly these inputs before: `Ok`, or
    /// the key to [`Passed::insert`] them under once they have.
    pub fn check(&self, v: &Value, old: Option<&Value>) -> Result<(), Key> {
        let key = key(v, old);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let hit = seen
            .by_hash
            .get(&key.hash)
            .is_some_and(|list| list.iter().any(|(a, b)| a == v && b.as_ref() == old));
        if hit { Ok(()) } else { Err(key) }
    }

    /// Remembers that the rules passed on these inputs (`key` is theirs).
    pub fn insert(&self, key: Key, v: Value, old: Option<Value>) {
        if key.size > LARGEST {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.size + key.size > CAPACITY {
            *seen = Seen::default();
        }
        seen.by_hash.entry(key.hash).or_default().push((v, old));
        seen.size += key.size;
    }
}

/// The hash of some inputs and their size, from [`Passed::check`].
pub struct Key {
    hash: u64,
    size: usize,
}

fn key(v: &Value, old: Option<&Value>) -> Key {
    let mut h = DefaultHasher::new();
    let mut size = 0;
    hash(v, &mut h, &mut size);
    match old {
        Some(o) => {
            1u8.hash(&mut h);
            hash(o, &mut h, &mut size);
        }
        None => 0u8.hash(&mut h),
    }
    Key {
        hash: h.finish(),
        size,
    }
}

/// Hashes `v` into `h` and adds its size (a node's few bytes, a string's
/// or key's length) to `size`.
fn hash(v: &Value, h: &mut DefaultHasher, size: &mut usize) {
    *size += 8;
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            if let Some(i) = n.as_i64() {
                i.hash(h);
            } else if let Some(u) = n.as_u64() {
                u.hash(h);
            } else {
                n.as_f64().map(f64::to_bits).hash(h);
            }
        }
        Value::String(s) => {
            *size += s.len();
            (3u8, s).hash(h);
        }
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            for x in a {
                hash(x, h, size);
            }
        }
        Value::Object(o) => {
            (5u8, o.len()).hash(h);
            for (k, x) in o {
                *size += k.len();
                k.hash(h);
                hash(x, h, size);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    impl Passed {
        fn contains(&self, v: &Value, old: Option<&Value>) -> bool {
            self.check(v, old).is_ok()
        }
    }

    #[test]
    fn remembers_exact_inputs_only() {
        let p = Passed::default();
        let (v, old) = (json!({"spec": {"a": 1}}), json!({"status": {"agent": "n"}}));
        let k = p.check(&v, Some(&old)).unwrap_err();
        p.insert(k, v.clone(), Some(old.clone()));
        assert!(p.contains(&v, Some(&old)));
        assert!(!p.contains(&v, None));
        assert!(!p.contains(&json!({"spec": {"a": 2}}), Some(&old)));
        assert!(!p.contains(&json!({"spec": {"a": 1.5}}), Some(&old)));
        assert!(!p.contains(&v, Some(&json!({"status": {"agent": "m"}}))));
    }

    #[test]
    fn forgets_all_when_full_and_never_keeps_the_largest() {
        let p = Passed::default();
        let add = |v: Value| p.insert(p.check(&v, None).unwrap_err(), v, None);
        // Each of these measures 8 + 1,000.
        let n = CAPACITY / 1008;
        for i in 0..n {
            add(json!(format!("{i:01000}")));
        }
        assert!(p.contains(&json!(format!("{:01000}", 0)), None));
        add(json!(format!("{:01000}", n)));
        assert!(!p.contains(&json!(format!("{:01000}", 0)), None));
        assert!(p.contains(&json!(format!("{:01000}", n)), None));
        let large = json!("x".repeat(LARGEST));
        add(large.clone());
        assert!(!p.contains(&large, None));
    }
}
