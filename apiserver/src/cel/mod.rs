//! CEL validation rules (`x-kubernetes-validations`) of the CRDs the server
//! serves, evaluated as kube-apiserver evaluates them, with kube-cel (the
//! kube-rs port of Kubernetes's CEL libraries): `rule`, `message`,
//! `messageExpression`, `reason`, `fieldPath`, transition rules on `oldSelf`
//! (`optionalOldSelf`), and a static cost estimate that refuses a CRD whose
//! rule would cost more than Kubernetes allows.
//!
//! Rules are compiled once, when a CRD is stored or loaded, and evaluated on
//! every create and update after the schema walk (so on the defaulted object).
//! An update ratchets, as kube-apiserver's does: a failure of a rule that does
//! not read `oldSelf`, on a value the update left as it was, is not reported;
//! so a node whose rules do not read `oldSelf` and whose value is unchanged is
//! not evaluated at all.
//!
//! Each rule is compiled as a unit of its own at its node ([`units`]) and
//! sees only the fields it selects, down to the last field of each chain
//! ([`refs`]), so a status write converts to CEL what the rule reads, not
//! the whole object at every level.
//!
//! A transition rule that holds when a field is as it was (`self.spec ==
//! oldSelf.spec` among its `||`s) is not evaluated when it is ([`same`]).
//! A unit remembers the inputs its rule passed on ([`passed`]), so the
//! same inputs again (objects sharing a spec, an object's next write) are
//! not evaluated again; a rule that does not read what a write changed
//! (a Task's spec rules on a status write) is answered from that memory.

mod causes;
mod passed;
mod refs;
mod same;
mod scope;
mod units;

use crate::error::Cause;
use crate::paths::Paths;
use causes::{cause, ratchets};
use kube_cel::{CompiledSchema, RootContext, ValidationError, WarningKind};
use serde_json::Value;

/// The compiled rules of one served version of a CRD.
pub struct Rules {
    eval: Eval,
    root: RootContext,
}

/// How a CRD's rules are evaluated.
enum Eval {
    /// Node by node (the usual case).
    Units(Vec<Unit>),
    /// The whole compiled schema at once (rules under `allOf` and the like).
    Whole(Box<CompiledSchema>),
}

/// One schema node with rules, compiled on its own.
struct Unit {
    path: Vec<units::Step>,
    /// Its schema, cut down ([`units`]), and compiled.
    schema: Value,
    compiled: CompiledSchema,
    /// Its rules on the node's schema alone, for values that hold nothing
    /// the rest of `schema` converts otherwise ([`units::touches`]).
    flat: CompiledSchema,
    /// Whether a rule reads `oldSelf` (so an unchanged value is evaluated).
    transition: bool,
    /// The fields whose equality with `oldSelf`'s makes the rule hold.
    same: same::Same,
    self_fields: Paths,
    old_fields: Paths,
    /// The inputs its rules passed on.
    passed: passed::Passed,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("kind", &self.root.kind)
            .finish()
    }
}

/// Why a CRD's rules cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{rule}: {message}")]
pub struct RuleError {
    /// The rule's text.
    pub rule: String,
    /// What is wrong with it.
    pub message: String,
}

/// Whether a schema holds any rule at all.
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
                || m.values().any(has_rules)
        }
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

/// Compiles the rules of `schema` (an `openAPIV3Schema`) for objects of
/// `group/version` `kind`; `None` when it has none.
pub fn compile(
    schema: &Value,
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Option<Rules>, RuleError> {
    if !has_rules(schema) {
        return Ok(None);
    }
    // Compiled whole for the checks: the cost estimate needs the bounds
    // (maxLength, maxItems) that the units leave out.
    let whole = kube_cel::compile_schema(schema);
    check(&whole)?;
    let eval = match units::split(schema) {
        Some(split) => Eval::Units(split.into_iter().map(unit).collect()),
        None => Eval::Whole(Box::new(whole)),
    };
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(Some(Rules {
        eval,
        root: RootContext {
            api_version,
            api_group: group.into(),
            kind: kind.into(),
        },
    }))
}

fn unit(u: units::UnitSchema) -> Unit {
    let rules = u.schema["x-kubernetes-validations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let exprs: Vec<&str> = rules
        .iter()
        .flat_map(|r| [r.get("rule"), r.get("messageExpression")])
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let (self_fields, old_fields) = refs::fields(exprs.iter().copied());
    // Under optionalOldSelf, `oldSelf` is an optional: not compared so.
    let same = match rules.as_slice() {
        [r] if r["optionalOldSelf"] != true => same::Same::of(r["rule"].as_str().unwrap_or("")),
        _ => same::Same::default(),
    };
    Unit {
        same,
        path: u.path,
        compiled: kube_cel::compile_schema(&u.schema),
        flat: kube_cel::compile_schema(&units::flat(&u.schema)),
        schema: u.schema,
        transition: exprs.iter().any(|e| e.contains("oldSelf")),
        self_fields,
        old_fields,
        passed: Default::default(),
    }
}

/// Refuses rules that do not compile, name variables a CRD rule cannot
/// see, or whose estimated cost is over Kubernetes's per-rule budget.
fn check(node: &CompiledSchema) -> Result<(), RuleError> {
    if let Some(e) = node.compilation_errors().first() {
        return Err(RuleError {
            rule: String::new(),
            message: format!("compilation failed: {e}"),
        });
    }
    for cr in node.validations.iter().flatten() {
        let rule = &cr.rule.rule;
        if let Some(var) = scope::unbound(rule) {
            return Err(RuleError {
                rule: rule.clone(),
                message: format!(
                    "variable '{var}' is not available to a CRD validation rule (it sees self, oldSelf, apiVersion, apiGroup and kind)"
                ),
            });
        }
        let warnings = kube_cel::analyze_rule(rule, node, kube_cel::ScopeContext::CrdValidation);
        if let Some(w) = warnings
            .iter()
            .find(|w| matches!(w.kind, WarningKind::CostExceeded))
        {
            return Err(RuleError {
                rule: rule.clone(),
                message: w.message.clone(),
            });
        }
    }
    node.properties
        .values()
        .chain(node.items.as_deref())
        .chain(node.additional_properties.as_deref())
        .chain(&node.all_of)
        .chain(&node.one_of)
        .chain(&node.any_of)
        .try_for_each(check)
}

thread_local! {
    /// A validator holds the registered Kubernetes functions; one per thread.
    static VALIDATOR: kube_cel::Validator = kube_cel::Validator::new();
}

/// The failures of `rules` on `obj` (and, on an update, `old`), each as a
/// cause in kube-apiserver's words.
pub fn validate(rules: &Rules, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut errors = Vec::new();
    match &rules.eval {
        Eval::Whole(compiled) => {
            let seen = visible(obj, &Paths::Whole);
            let seen_old = old.map(|o| visible(o, &Paths::Whole));
            errors.extend(evaluate(
                compiled,
                &seen,
                seen_old.as_ref(),
                Some(&rules.root),
            ));
        }
        Eval::Units(list) => {
            // The rules of one node are visited together, so its causes come
            // value by value, each value's in rule order, as kube-apiserver's.
            for node in list.chunk_by(|a, b| a.path == b.path) {
                units::visit(
                    &node[0].path,
                    obj,
                    old,
                    &mut String::new(),
                    &mut |v, o, path| {
                        for u in node {
                            check_unit(u, &rules.root, v, o, path, &mut errors);
                        }
                    },
                );
            }
        }
    }
    errors
        .into_iter()
        .filter(|e| !ratchets(e, obj, old))
        .map(|e| cause(&e, obj))
        .collect()
}

/// Evaluates one unit's rule on a value `v` at `path` (`o`: its old value),
/// unless the rule's answer is known without it.
fn check_unit(
    u: &Unit,
    root: &RootContext,
    v: &Value,
    o: Option<&Value>,
    path: &str,
    errors: &mut Vec<ValidationError>,
) {
    if !u.transition && o.is_some_and(|o| unchanged(v, o, path.is_empty())) {
        return;
    }
    if o.is_some_and(|o| u.same.holds(v, o)) {
        return;
    }
    let (seen, seen_old, root) = if path.is_empty() {
        let seen_old = o.map(|o| visible(o, &u.old_fields));
        (visible(v, &u.self_fields), seen_old, Some(root))
    } else {
        let seen_old = o.map(|o| u.old_fields.project(o));
        (u.self_fields.project(v), seen_old, None)
    };
    let Err(key) = u.passed.check(&seen, seen_old.as_ref()) else {
        return;
    };
    let whole = units::touches(&u.schema, &seen)
        || seen_old
            .as_ref()
            .is_some_and(|o| units::touches(&u.schema, o));
    let compiled = if whole { &u.compiled } else { &u.flat };
    let failed = evaluate(compiled, &seen, seen_old.as_ref(), root);
    if failed.is_empty() {
        u.passed.insert(key, seen, seen_old);
    }
    for mut e in failed {
        e.field_path = under(path, &e.field_path);
        errors.push(e);
    }
}

fn evaluate(
    compiled: &CompiledSchema,
    obj: &Value,
    old: Option<&Value>,
    root: Option<&RootContext>,
) -> Vec<ValidationError> {
    VALIDATOR
        .with(|v| v.validate_compiled_with_context(compiled, obj, old, root))
        .err()
        .map(|e| e.into_vec())
        .unwrap_or_default()
}

/// A unit's error path, which is relative to the unit, from the root.
fn under(base: &str, rel: &str) -> String {
    match rel {
        "" => base.to_string(),
        _ if base.is_empty() => rel.to_string(),
        _ if rel.starts_with(['.', '[']) => format!("{base}{rel}"),
        _ => format!("{base}.{rel}"),
    }
}

/// Whether a node's value is as it was; at the root, as far as rules see.
fn unchanged(v: &Value, old: &Value, root: bool) -> bool {
    if !root {
        return v == old;
    }
    match (v.as_object(), old.as_object()) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, x)| match b.get(k) {
                    Some(y) if k == "metadata" => ["name", "generateName"]
                        .iter()
                        .all(|f| x.get(f) == y.get(f)),
                    Some(y) => x == y,
                    None => false,
                })
        }
        _ => v == old,
    }
}

/// What a rule at the root sees of `obj`: the parts `paths` select, and of
/// metadata only `name` and `generateName`, as kube-apiserver shows it (so
/// managedFields and the rest are never converted).
fn visible(obj: &Value, paths: &Paths) -> Value {
    let Some(o) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = serde_json::Map::with_capacity(o.len());
    for (k, v) in o {
        let Some(p) = paths.field(k) else {
            continue;
        };
        if k == "metadata" {
            let mut m = serde_json::Map::new();
            for key in ["name", "generateName"] {
                if let (Some(x), Some(pk)) = (v.get(key), p.field(key)) {
                    m.insert(key.into(), pk.project(x));
                }
            }
            out.insert(k.clone(), Value::Object(m));
        } else {
            out.insert(k.clone(), p.project(v));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + ' is over max ' + string(self.max)"},
                {"rule": "self.size == oldSelf.size", "message": "size is immutable", "reason": "FieldValueForbidden", "fieldPath": ".size"}
            ],
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}, "size": {"type": "string", "maxLength": 10}}}}})
    }

    fn rules() -> Rules {
        compile(&schema(), "example.com", "v1", "Widget")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn rules_fail_with_their_message_field_and_reason() {
        let obj = json!({"spec": {"min": 3, "max": 1, "size": "s"}});
        let causes = validate(&rules(), &obj, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"object\": min 3 is over max 1"
        );
        // The transition rule runs on an update only.
        let old = json!({"spec": {"min": 1, "max": 2, "size": "s"}});
        let new = json!({"spec": {"min": 1, "max": 2, "size": "l"}});
        let causes = validate(&rules(), &new, Some(&old));
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.size");
        assert_eq!(causes[0].reason, "FieldValueForbidden");
        assert_eq!(causes[0].message, "Forbidden: size is immutable");
    }

    #[test]
    fn an_unchanged_failing_value_ratchets() {
        let old = json!({"spec": {"min": 3, "max": 1, "size": "s"}});
        let relabelled = old.clone();
        assert!(validate(&rules(), &relabelled, Some(&old)).is_empty());
        let worse = json!({"spec": {"min": 4, "max": 1, "size": "s"}});
        assert_eq!(validate(&rules(), &worse, Some(&old)).len(), 1);
    }

    #[test]
    fn bad_rules_are_refused() {
        let bad = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a +"}]});
        assert!(compile(&bad, "g.io", "v1", "K").is_err());
        let scope =
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "object.a == 1"}]});
        assert!(compile(&scope, "g.io", "v1", "K").is_err());
        assert!(
            compile(&json!({"type": "object"}), "g.io", "v1", "K")
                .unwrap()
                .is_none()
        );
    }

    /// A schema with rules at the root (a transition rule), in an array's
    /// items, in a map's values, and on a date-time.
    fn busy() -> Value {
        json!({"type": "object",
            "x-kubernetes-validations": [
                {"rule": "!has(oldSelf.status) || oldSelf.status.phase == '' || self.spec == oldSelf.spec", "message": "spec is fixed once bound"},
                {"rule": "size(self.metadata.name) <= 5", "messageExpression": "'name ' + self.metadata.name + ' is long'"}],
            "properties": {
                "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": {
                    "items": {"type": "array", "items": {"type": "object",
                        "x-kubernetes-validations": [{"rule": "self.min <= self.max", "fieldPath": ".min"}],
                        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}}},
                    "limits": {"type": "object", "additionalProperties": {"type": "integer",
                        "x-kubernetes-validations": [{"rule": "self >= 0"}]}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"},
                        "x-kubernetes-validations": [{"rule": "!('a.b/c' in self) || self['a.b/c'] != 'x'"}]},
                    "after": {"type": "string", "format": "date-time",
                        "x-kubernetes-validations": [{"rule": "self > timestamp('2020-01-01T00:00:00Z')"}]}}},
                "status": {"type": "object", "properties": {"phase": {"type": "string"},
                    "when": {"type": "string", "format": "date-time"}}}}})
    }

    #[test]
    fn node_by_node_decides_what_the_whole_walk_decides() {
        let by_units = compile(&busy(), "g.io", "v1", "K").unwrap().unwrap();
        assert!(matches!(by_units.eval, Eval::Units(_)));
        let whole = Rules {
            eval: Eval::Whole(Box::new(kube_cel::compile_schema(&busy()))),
            root: by_units.root.clone(),
        };
        let good = json!({"metadata": {"name": "ok", "uid": "u"},
            "spec": {"items": [{"min": 1, "max": 2}], "limits": {"cpu": 1},
                "labels": {"a.b/c": "y"}, "after": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Bound", "when": "2024-01-01T00:00:00Z"}});
        let mut bad = good.clone();
        bad["metadata"]["name"] = json!("toolong");
        bad["spec"]["items"] = json!([{"min": 1, "max": 2}, {"min": 3, "max": 1}]);
        bad["spec"]["limits"]["mem"] = json!(-1);
        bad["spec"]["labels"]["a.b/c"] = json!("x");
        bad["spec"]["after"] = json!("2019-01-01T00:00:00Z");
        let mut restatus = good.clone();
        restatus["status"]["phase"] = json!("Running");
        let unbound = json!({"metadata": {"name": "ok"}, "spec": {}, "status": {"phase": ""}});
        let cases = [
            (&good, None),
            (&bad, None),
            (&bad, Some(&good)),
            (&good, Some(&bad)),
            (&restatus, Some(&good)),
            (&bad, Some(&bad)),
            (&good, Some(&unbound)),
        ];
        let render = |c: Vec<Cause>| {
            let mut v: Vec<String> = c
                .iter()
                .map(|c| format!("{} {} {}", c.field, c.reason, c.message))
                .collect();
            v.sort();
            v
        };
        for (i, (obj, old)) in cases.into_iter().enumerate() {
            assert_eq!(
                render(validate(&by_units, obj, old)),
                render(validate(&whole, obj, old)),
                "case {i}"
            );
        }
        // And the cases say something: the bad object fails each rule.
        assert_eq!(validate(&by_units, &bad, None).len(), 5);
        assert_eq!(validate(&by_units, &bad, Some(&good)).len(), 6);
    }

    #[test]
    fn a_nodes_rules_report_value_by_value_as_the_whole_walk_does() {
        let schema = json!({"type": "object", "properties": {"items": {"type": "array",
            "items": {"type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.a > 0", "message": "a"}, {"rule": "self.b > 0", "message": "b"}],
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}});
        let by_units = compile(&schema, "g.io", "v1", "K").unwrap().unwrap();
        let whole = Rules {
            eval: Eval::Whole(Box::new(kube_cel::compile_schema(&schema))),
            root: by_units.root.clone(),
        };
        let obj = json!({"items": [{"a": 0, "b": 0}, {"a": 0, "b": 0}]});
        let said = |c: Vec<Cause>| -> Vec<String> {
            c.into_iter()
                .map(|c| format!("{} {}", c.field, c.message))
                .collect()
        };
        let got = said(validate(&by_units, &obj, None));
        assert_eq!(got, said(validate(&whole, &obj, None)));
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(
            got[0].starts_with("items[0]") && got[1].starts_with("items[0]"),
            "{got:?}"
        );
    }

    #[test]
    fn a_transition_rule_holding_by_equality_answers_as_evaluating_it_would() {
        // Answered by equality (unchanged x) or evaluated (x moved): the same answers.
        let rule = |optional: bool| {
            json!({"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.x == oldSelf.x || self.y / 0 == 1",
                    "optionalOldSelf": optional, "message": "m"}]})
        };
        let (old, new) = (json!({"x": 1, "y": 1}), json!({"x": 1, "y": 2}));
        let plain = compile(&rule(false), "g.io", "v1", "K").unwrap().unwrap();
        assert!(validate(&plain, &new, Some(&old)).is_empty());
        let moved = json!({"x": 2, "y": 2});
        assert_eq!(validate(&plain, &moved, Some(&old)).len(), 1);
        // Under optionalOldSelf the rule is evaluated as written (kube-cel
        // gives the old value itself when there is one: the same answer).
        let optional = compile(&rule(true), "g.io", "v1", "K").unwrap().unwrap();
        assert!(validate(&optional, &new, Some(&old)).is_empty());
        assert_eq!(validate(&optional, &moved, Some(&old)).len(), 1);
    }

    #[test]
    fn field_paths_resolve() {
        let v = json!({"spec": {"env": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(causes::at(&v, "spec.env[1].name"), Some(&json!("b")));
        assert_eq!(causes::at(&v, ""), Some(&v));
        assert_eq!(causes::at(&v, "spec.x"), None);
    }
}
