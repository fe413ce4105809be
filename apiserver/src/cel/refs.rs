//! Which parts of `self` and `oldSelf` a node's rules can see: when every
//! use of a variable in the rules and their message expressions selects a
//! chain of fields (`self.spec`, `oldSelf.status.agent`, `has(oldSelf.status)`),
//! the rules see nothing else of it, and only those parts need converting to
//! CEL; a chain inside `has(...)` needs only the field to be there. Any other
//! use (`self` alone, `self[...]`, `self.?x`, an escaped name) means the whole
//! value.
//!
//! The scan is over the text, so an occurrence inside a string literal
//! counts too; that only ever widens what is converted, never narrows it.
//! Rules with a comment (`//`) see the whole value.

use crate::paths::Paths;

/// The parts of `self` and of `oldSelf` that `exprs` select.
pub fn fields<'a>(exprs: impl IntoIterator<Item = &'a str> + Clone) -> (Paths, Paths) {
    (selected(exprs.clone(), "self"), selected(exprs, "oldSelf"))
}

fn selected<'a>(exprs: impl IntoIterator<Item = &'a str>, var: &str) -> Paths {
    let mut out = Paths::none();
    for e in exprs {
        // A comment could hide what surrounds a use (`has(` on the line
        // before, say): the text is not read further.
        if e.contains("//") {
            return Paths::Whole;
        }
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
            let Some((chain, rest)) = chain(&e[from..]) else {
                return Paths::Whole;
            };
            if chain.is_empty() {
                return Paths::Whole;
            }
            let in_has = e[..i].trim_end().ends_with("has(") && rest.trim_start().starts_with(')');
            if in_has {
                out.add_presence(&chain);
            } else {
                out.add(&chain);
            }
        }
    }
    out
}

/// The field names selected after a variable (`.a.b`, up to a method call
/// such as `.exists(`) and the text after them; `None` when a selection is
/// not a plain name (`.?a`, `.a__dash__b`).
fn chain(mut rest: &str) -> Option<(Vec<&str>, &str)> {
    let mut names = Vec::new();
    loop {
        let Some(after_dot) = rest.trim_start().strip_prefix('.') else {
            return Some((names, rest));
        };
        let after_dot = after_dot.trim_start();
        let len = after_dot.bytes().take_while(|&c| is_ident(c)).count();
        let name = &after_dot[..len];
        if name.is_empty() || name.contains("__") {
            return None;
        }
        let after = &after_dot[len..];
        if after.trim_start().starts_with('(') {
            // A method on what the chain selected so far.
            return Some((names, rest));
        }
        names.push(name);
        rest = after;
    }
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(whole: &[&[&str]], present: &[&[&str]]) -> Paths {
        let mut p = Paths::none();
        for w in whole {
            p.add(w);
        }
        for w in present {
            p.add_presence(w);
        }
        p
    }

    #[test]
    fn selections_are_collected_per_variable() {
        let rule = "!has(oldSelf.status) || !has(oldSelf.status.agent) \
            || oldSelf.status.agent == '' || self.spec == oldSelf.spec";
        assert_eq!(
            fields([rule]),
            (
                paths(&[&["spec"]], &[]),
                paths(&[&["spec"], &["status", "agent"]], &[])
            )
        );
        assert_eq!(
            fields(["size(self . metadata.name) <= 63"]).0,
            paths(&[&["metadata", "name"]], &[])
        );
        // A method ends the chain; `has` needs only presence.
        let (s, _) = fields(["has(self.spec.ports) && self.spec.ports.exists(p, p.x == 1)"]);
        assert_eq!(s, paths(&[&["spec", "ports"]], &[]));
        let (s, _) = fields(["has(self.status) || has(self.spec.a)"]);
        assert_eq!(s, paths(&[], &[&["status"], &["spec", "a"]]));
        let old = json!({"status": {"agent": "n", "conditions": [1]}, "spec": {"a": 1}});
        assert_eq!(
            fields([rule]).1.project(&old),
            json!({"status": {"agent": "n"}, "spec": {"a": 1}})
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
            "self.size() > 1",
            "size(// has(\nself.spec.template) > 0",
        ] {
            assert_eq!(fields([rule]).0, Paths::Whole, "{rule}");
        }
        // Names that merely contain the variable's are not uses of it.
        assert_eq!(
            fields(["myself == 1 && x.self == 2 && selfish"]).0,
            Paths::none()
        );
    }
}
