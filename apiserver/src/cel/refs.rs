//! Which fields of `self` and `oldSelf` a node's rules can see: when every
//! use of a variable in the rules and their message expressions selects a
//! field (`self.spec`, `has(oldSelf.status)`), the rules see nothing else of
//! it, and only those fields need converting to CEL. Any other use (`self`
//! alone, `self[...]`, `self.?x`, an escaped name) means the whole value.
//!
//! The scan is over the text, so an occurrence inside a string literal
//! counts too; that only ever widens what is converted, never narrows it.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The fields one variable is seen through; `None` is the whole value.
pub type Fields = Option<BTreeSet<String>>;

/// The fields of `self` and of `oldSelf` that `exprs` select.
pub fn fields<'a>(exprs: impl IntoIterator<Item = &'a str> + Clone) -> (Fields, Fields) {
    (selected(exprs.clone(), "self"), selected(exprs, "oldSelf"))
}

fn selected<'a>(exprs: impl IntoIterator<Item = &'a str>, var: &str) -> Fields {
    let mut out = BTreeSet::new();
    for e in exprs {
        let b = e.as_bytes();
        let mut from = 0;
        while let Some(i) = e[from..].find(var).map(|i| i + from) {
            from = i + var.len();
            let before = i.checked_sub(1).map(|j| b[j]);
            if before.is_some_and(|c| is_ident(c) || c == b'.')
                || b.get(from).is_some_and(|&c| is_ident(c))
            {
                continue; // part of another name, or a field called so
            }
            let rest = e[from..].trim_start();
            let rest = rest.strip_prefix('.')?.trim_start();
            let name: String = rest
                .bytes()
                .take_while(|&c| is_ident(c))
                .map(char::from)
                .collect();
            if name.is_empty() || name.contains("__") {
                return None;
            }
            out.insert(name);
        }
    }
    Some(out)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `value` cut down to `fields` (the whole of it when `None` or when it is
/// not an object).
pub fn project(value: &Value, fields: &Fields) -> Value {
    match (value, fields) {
        (Value::Object(o), Some(keep)) => Value::Object(
            keep.iter()
                .filter_map(|k| Some((k.clone(), o.get(k)?.clone())))
                .collect::<Map<_, _>>(),
        ),
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(names: &[&str]) -> Fields {
        Some(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn selections_are_collected_per_variable() {
        let rule =
            "!has(oldSelf.status) || oldSelf.status.agent == '' || self.spec == oldSelf.spec";
        assert_eq!(fields([rule]), (set(&["spec"]), set(&["spec", "status"])));
        assert_eq!(
            fields(["size(self . metadata.name) <= 63"]).0,
            set(&["metadata"])
        );
    }

    #[test]
    fn any_other_use_means_the_whole_value() {
        for rule in [
            "self == oldSelf",
            "size(self) > 1",
            "self['a'] == 1",
            "self.?a.orValue(1) == 1",
            "self.a__dash__b == 1",
        ] {
            assert_eq!(fields([rule]).0, None, "{rule}");
        }
        // Names that merely contain the variable's are not uses of it.
        assert_eq!(
            fields(["myself == 1 && x.self == 2 && selfish"]).0,
            set(&[])
        );
    }

    #[test]
    fn projection_keeps_only_the_fields() {
        let v = json!({"spec": 1, "status": 2, "metadata": 3});
        assert_eq!(project(&v, &set(&["spec", "nope"])), json!({"spec": 1}));
        assert_eq!(project(&v, &None), v);
    }
}
