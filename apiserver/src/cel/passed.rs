//! What a unit's rules have passed on. CEL rules are pure functions of what
//! they see (`self`, `oldSelf`, and at the root the kind), so inputs seen to
//! pass once pass again: many objects share a spec (an App's instances, a
//! Job's runs) and an object's writes repeat what its rules read, so most
//! writes find their inputs here and skip the conversion to CEL and the
//! evaluation. Only passes are kept (a failure is evaluated again, for its
//! message); a hit is confirmed by comparing the inputs, never by hash alone.
//! Bounded: forgotten all at once when full.

use serde_json::Value;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// How many inputs a unit keeps.
const CAPACITY: usize = 4096;

type Inputs = (Value, Option<Value>);

/// The inputs one unit's rules passed on.
#[derive(Default)]
pub struct Passed {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    by_hash: HashMap<u64, Vec<Inputs>>,
    len: usize,
}

impl Passed {
    /// Whether the rules passed on exactly these inputs before: `Ok`, or
    /// the key to [`Passed::insert`] them under once they have.
    pub fn check(&self, v: &Value, old: Option<&Value>) -> Result<(), Key> {
        let key = key(v, old);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let hit = seen
            .by_hash
            .get(&key)
            .is_some_and(|list| list.iter().any(|(a, b)| a == v && b.as_ref() == old));
        if hit { Ok(()) } else { Err(Key(key)) }
    }

    /// Remembers that the rules passed on these inputs (`key` is theirs).
    pub fn insert(&self, Key(key): Key, v: Value, old: Option<Value>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len >= CAPACITY {
            *seen = Seen::default();
        }
        seen.by_hash.entry(key).or_default().push((v, old));
        seen.len += 1;
    }
}

/// The hash of some inputs, from [`Passed::check`].
pub struct Key(u64);

fn key(v: &Value, old: Option<&Value>) -> u64 {
    let mut h = DefaultHasher::new();
    hash(v, &mut h);
    match old {
        Some(o) => {
            1u8.hash(&mut h);
            hash(o, &mut h);
        }
        None => 0u8.hash(&mut h),
    }
    h.finish()
}

fn hash(v: &Value, h: &mut DefaultHasher) {
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
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            for x in a {
                hash(x, h);
            }
        }
        Value::Object(o) => {
            (5u8, o.len()).hash(h);
            for (k, x) in o {
                k.hash(h);
                hash(x, h);
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
    fn forgets_all_when_full() {
        let p = Passed::default();
        let add = |v: Value| p.insert(p.check(&v, None).unwrap_err(), v, None);
        for i in 0..CAPACITY {
            add(json!(i));
        }
        assert!(p.contains(&json!(0), None));
        add(json!("one more"));
        assert!(!p.contains(&json!(0), None));
        assert!(p.contains(&json!("one more"), None));
    }
}
