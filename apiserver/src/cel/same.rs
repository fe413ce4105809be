//! Transition rules that hold when a value is as it was: a rule one of
//! whose top-level `||` operands is `self.a.b == oldSelf.a.b` (or
//! `self == oldSelf`, either way round) holds whenever that field is there in
//! both and equal as JSON: values equal as JSON convert to equal CEL values,
//! and CEL's `||` is true when any operand is, whatever the others give. A
//! write that leaves the field alone (a Task's status write and its bound
//! spec) then needs no evaluation of the rule.

use cel::common::ast::{Expr, IdedExpr, operators};
use serde_json::Value;

/// The fields whose equality decides a rule (an empty path: the node itself).
#[derive(Debug, Default)]
pub struct Same(Vec<Vec<String>>);

impl Same {
    /// What decides `rule` (nothing when it cannot be parsed or has no such
    /// operand). Only fields whose CEL names are their JSON names count (plain
    /// letters and digits: kube-cel escapes others), and of `metadata` only
    /// what CEL sees of it at the root and in embedded resources.
    pub fn of(rule: &str) -> Same {
        let Ok(e) = cel::parser::Parser::new().parse(rule) else {
            return Same::default();
        };
        let mut out = Vec::new();
        disjuncts(&e, &mut out);
        out.retain(|path| {
            let plain = path.iter().all(|f| {
                f.starts_with(|c: char| c.is_ascii_alphabetic())
                    && f.chars().all(|c| c.is_ascii_alphanumeric())
            });
            // At the root (and in an embedded resource) CEL sees only these
            // of metadata; a field called so elsewhere is left out too.
            let seen = path
                .windows(2)
                .all(|w| w[0] != "metadata" || ["name", "generateName"].contains(&w[1].as_str()));
            plain && seen
        });
        Same(out)
    }

    /// Whether the rule holds for `v` over `old` by equality alone.
    pub fn holds(&self, v: &Value, old: &Value) -> bool {
        self.0.iter().any(|path| {
            let (mut a, mut b) = (v, old);
            for f in path {
                match (a.get(f), b.get(f)) {
                    (Some(x), Some(y)) => (a, b) = (x, y),
                    _ => return false,
                }
            }
            a == b
        })
    }
}

/// Collects the `self.p == oldSelf.p` operands of a top-level `||` chain.
fn disjuncts(e: &IdedExpr, out: &mut Vec<Vec<String>>) {
    let Expr::Call(c) = &e.expr else {
        return;
    };
    if c.target.is_some() || c.args.len() != 2 {
        return;
    }
    if c.func_name == operators::LOGICAL_OR {
        c.args.iter().for_each(|a| disjuncts(a, out));
    } else if c.func_name == operators::EQUALS {
        let (l, r) = (chain(&c.args[0]), chain(&c.args[1]));
        match (l, r) {
            (Some(("self", p)), Some(("oldSelf", q)))
            | (Some(("oldSelf", p)), Some(("self", q)))
                if p == q =>
            {
                out.push(p)
            }
            _ => {}
        }
    }
}

/// `var.a.b` as the variable and the fields (no `has(...)` tests, no `.?`).
fn chain(e: &IdedExpr) -> Option<(&str, Vec<String>)> {
    match &e.expr {
        Expr::Ident(name) => Some((name.as_str(), Vec::new())),
        Expr::Select(s) if !s.test => {
            let (var, mut path) = chain(&s.operand)?;
            path.push(s.field.clone());
            Some((var, path))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Same;
    use serde_json::json;

    #[test]
    fn an_equality_operand_of_a_top_level_or_decides_the_rule() {
        let rule = Same::of(mosaic_crds::task::SPEC_IMMUTABLE_ONCE_BOUND);
        let (a, b) = (
            json!({"spec": {"x": 1}, "status": {}}),
            json!({"spec": {"x": 1}}),
        );
        assert!(rule.holds(&a, &b));
        assert!(!rule.holds(&json!({"spec": {"x": 2}}), &b));
        // Absent on one side: CEL would fail to select it; not decided here.
        assert!(!rule.holds(&json!({}), &json!({})));
        assert!(Same::of("oldSelf == self").holds(&json!(3), &json!(3)));
        assert!(!Same::of("oldSelf == self").holds(&json!(3), &json!(3.0)));
        // Not an operand of the top-level `||`: an `&&`, a negation, another field.
        for rule in [
            "self.a == oldSelf.a && self.b > 0",
            "!(self.a == oldSelf.a)",
            "self.a == oldSelf.b",
            "self.a != oldSelf.a",
            "has(self.a) == has(oldSelf.a)",
            "self.a == oldSelf.a ? false : true",
            "not CEL (",
        ] {
            assert!(
                !Same::of(rule).holds(&json!({"a": 1, "b": 1}), &json!({"a": 1, "b": 1})),
                "{rule}"
            );
        }
        assert!(
            Same::of("x > 3 || self.a.b == oldSelf.a.b")
                .holds(&json!({"a": {"b": [1]}}), &json!({"a": {"b": [1]}, "c": 0}))
        );
    }
}
