//! A schema's `pattern` (an ECMA-262 regular expression, which Kubernetes
//! matches unanchored): compiled once per pattern and kept, with a size limit
//! so that a CRD author's pattern cannot make the server compile a huge
//! automaton. A pattern that does not compile matches everything, as a
//! schema keyword this server cannot judge is not a reason to refuse objects.

use regex::Regex;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The most compiled patterns kept (each CRD field's pattern is one).
const KEPT: usize = 4096;

/// The size limit of one compiled pattern.
const SIZE_LIMIT: usize = 1 << 20;

fn cache() -> &'static Mutex<HashMap<String, Option<Regex>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Whether `text` matches `pattern` somewhere.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut c = cache().lock().expect("pattern cache");
    if !c.contains_key(pattern) {
        if c.len() >= KEPT {
            c.clear();
        }
        let re = regex::RegexBuilder::new(pattern)
            .size_limit(SIZE_LIMIT)
            .build()
            .ok();
        c.insert(pattern.to_string(), re);
    }
    c.get(pattern)
        .and_then(Option::as_ref)
        .is_none_or(|re| re.is_match(text))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_as_kubernetes_matches_them() {
        assert!(matches("^[a-z]+$", "abc"));
        assert!(!matches("^[a-z]+$", "ab1"));
        assert!(matches("[0-9]", "a1b"), "unanchored");
        assert!(matches("(", "anything"), "a pattern that does not compile");
    }
}
