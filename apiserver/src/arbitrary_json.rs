//! Random JSON values for property tests: objects and arrays nested a few
//! levels, over the keys and strings a test chooses (tricky characters in
//! them exercise escaping).

use proptest::prelude::*;
use serde_json::Value;

/// JSON values whose object keys match the regex `keys` and whose strings
/// match `strings`.
pub fn json_value(keys: &'static str, strings: &'static str) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        strings.prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(keys, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
