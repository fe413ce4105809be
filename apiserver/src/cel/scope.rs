//! Which variables a CRD validation rule uses that it cannot see. A rule
//! sees `self`, `oldSelf` and the few names Kubernetes binds; the variables
//! its macros bind (`p` in `self.ports.all(p, ...)`) are its own.
//! (kube-cel's own scope check counts those as free and would refuse every
//! rule with a list macro, which Kubernetes accepts.)

use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr};
use std::collections::BTreeSet;

/// The names a CRD validation rule may use, as Kubernetes binds them.
const VISIBLE: &[&str] = &["self", "oldSelf", "apiVersion", "apiGroup", "kind"];

/// The first variable `rule` uses that no rule can see, if any (none when
/// it does not parse: compiling it reports that).
pub fn unbound(rule: &str) -> Option<String> {
    let program = kube_cel::cel::Program::compile(rule).ok()?;
    let mut free = BTreeSet::new();
    walk(program.expression(), &mut Vec::new(), &mut free);
    free.into_iter().find(|v| !VISIBLE.contains(&v.as_str()))
}

/// Adds to `free` the identifiers of `e` not bound by `bound` (the
/// variables of the comprehensions around it).
fn walk(e: &IdedExpr, bound: &mut Vec<String>, free: &mut BTreeSet<String>) {
    match &e.expr {
        Expr::Ident(name) => {
            if !bound.contains(name) {
                free.insert(name.clone());
            }
        }
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, bound, free);
            }
            c.args.iter().for_each(|a| walk(a, bound, free));
        }
        Expr::Select(s) => walk(&s.operand, bound, free),
        Expr::List(l) => l.elements.iter().for_each(|x| walk(x, bound, free)),
        Expr::Map(m) => m.entries.iter().for_each(|x| entry(&x.expr, bound, free)),
        Expr::Struct(s) => s.entries.iter().for_each(|x| entry(&x.expr, bound, free)),
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, free);
            walk(&c.accu_init, bound, free);
            let before = bound.len();
            bound.push(c.accu_var.clone());
            walk(&c.result, bound, free);
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            walk(&c.loop_cond, bound, free);
            walk(&c.loop_step, bound, free);
            bound.truncate(before);
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entry(e: &EntryExpr, bound: &mut Vec<String>, free: &mut BTreeSet<String>) {
    match e {
        EntryExpr::StructField(f) => walk(&f.value, bound, free),
        EntryExpr::MapEntry(m) => {
            walk(&m.key, bound, free);
            walk(&m.value, bound, free);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unbound;

    #[test]
    fn macro_variables_are_the_rules_own() {
        assert_eq!(unbound("self.ports.all(p, p.name != '')"), None);
        assert_eq!(unbound("self.a.all(p, self.b.exists_one(q, q == p))"), None);
        assert_eq!(unbound("has(self.x) && self.y == oldSelf.y"), None);
        assert_eq!(
            unbound("self.a.all(p, p == request.user)").as_deref(),
            Some("request")
        );
        assert_eq!(
            unbound("self.a.all(p, p > 0) && p == 1").as_deref(),
            Some("p"),
            "outside its macro, p is nobody's"
        );
        assert_eq!(unbound("params.x == 1").as_deref(), Some("params"));
    }
}
