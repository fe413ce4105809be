//! Field sets, merging and ownership, checked on small objects.

use super::fields::{FieldSet, set_of};
use super::managed::{Managed, owned_part};
use super::schema::Schema;
use serde_json::{Value, json};

fn schema() -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "command": {"type": "string"},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}},
        "resources": {"type": "object", "properties": {"cpus": {"type": "string"}, "memory": {"type": "string"}}}}}}})
}

#[test]
fn fields_v1_round_trips_and_marks_owned_items() {
    let s = schema();
    let obj = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
        "spec": {"command": "true", "args": ["a"], "env": [{"name": "A", "value": "1"}]}});
    let set = set_of(&obj, Schema::root(Some(&s)));
    let v1 = set.to_fields_v1();
    assert_eq!(
        v1,
        json!({"f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:a": {}}},
               "f:spec": {"f:args": {}, "f:command": {},
                 "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}}}})
    );
    assert_eq!(FieldSet::from_fields_v1(&v1), Some(set));
    assert_eq!(FieldSet::from_fields_v1(&json!({"x:bad": {}})), None);
}

fn apply(
    m: &mut Managed,
    manager: &str,
    live: &Value,
    config: &Value,
    force: bool,
) -> Result<Value, Vec<super::managed::Conflict>> {
    let s = schema();
    let owned = owned_part(live, None, true);
    m.apply(
        manager,
        "mosaic.dev/v1alpha1",
        None,
        live,
        &owned,
        config,
        &owned_part(config, None, true),
        Schema::root(Some(&s)),
        force,
        "2026-11-26T00:00:00Z",
    )
}

#[test]
fn apply_merges_owns_conflicts_and_removes_what_it_stopped_applying() {
    let mut m = Managed::default();
    let live = json!({"spec": {}});
    let a1 = json!({"spec": {"command": "one", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}});
    let v = apply(&mut m, "alice", &json!(null), &a1, false).unwrap();
    assert_eq!(v["spec"]["command"], "one");
    let _ = live;
    // bob sets another env var and the same command: shared, no conflict.
    let b1 = json!({"spec": {"command": "one", "env": [{"name": "C", "value": "3"}]}});
    let v = apply(&mut m, "bob", &v, &b1, false).unwrap();
    assert_eq!(v["spec"]["env"].as_array().unwrap().len(), 3, "{v}");
    // bob changing the command conflicts with alice, naming the field.
    let b2 = json!({"spec": {"command": "two", "env": [{"name": "C", "value": "3"}]}});
    let err = apply(&mut m, "bob", &v, &b2, false).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].manager, "alice");
    assert_eq!(err[0].field, ".spec.command");
    // Forced, bob takes it over.
    let v = apply(&mut m, "bob", &v, &b2, true).unwrap();
    assert_eq!(v["spec"]["command"], "two");
    let alice = m.0.iter().find(|e| e.manager == "alice").unwrap();
    assert!(
        !alice.fields.to_fields_v1()["f:spec"]
            .as_object()
            .unwrap()
            .contains_key("f:command")
    );
    // alice stops applying B: it goes; A stays (still hers); C stays (bob's).
    let a2 = json!({"spec": {"env": [{"name": "A", "value": "1"}]}});
    let v = apply(&mut m, "alice", &v, &a2, false).unwrap();
    let names: Vec<&str> = v["spec"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "C"], "{v}");
    assert_eq!(v["spec"]["command"], "two", "bob's command stays");
}

#[test]
fn updates_take_the_fields_they_change() {
    let s = schema();
    let mut m = Managed::default();
    let old = json!({"spec": {"command": "one", "resources": {"cpus": "1"}}});
    apply(&mut m, "alice", &json!(null), &old, false).unwrap();
    let new = json!({"spec": {"command": "one", "resources": {"cpus": "2"}}});
    m.record_update(
        "kubectl-edit",
        "mosaic.dev/v1alpha1",
        None,
        &old,
        &new,
        Schema::root(Some(&s)),
        "t",
    );
    let edit = m.0.iter().find(|e| e.manager == "kubectl-edit").unwrap();
    assert_eq!(edit.operation, "Update");
    assert_eq!(
        edit.fields.to_fields_v1(),
        json!({"f:spec": {"f:resources": {"f:cpus": {}}}})
    );
    let alice = m.0.iter().find(|e| e.manager == "alice").unwrap();
    assert_eq!(
        alice.fields.to_fields_v1(),
        json!({"f:spec": {"f:command": {}}})
    );
    // An update that changes nothing records nothing.
    let before = m.clone();
    m.record_update("other", "v", None, &new, &new, Schema::root(Some(&s)), "t");
    assert_eq!(m, before);
}

#[test]
fn map_lists_with_duplicate_or_missing_keys_are_found() {
    let s = schema();
    let dup = json!({"spec": {"env": [{"name": "A"}, {"name": "A", "value": "2"}]}});
    let (path, msg) = super::merge::check_lists(&dup, Schema::root(Some(&s)), &mut vec![]).unwrap();
    assert_eq!(super::fields::display(&path), ".spec.env");
    assert!(
        msg.contains("duplicate entries for key [name=\"A\"]"),
        "{msg}"
    );
    let missing = json!({"spec": {"env": [{"value": "2"}]}});
    let (_, msg) =
        super::merge::check_lists(&missing, Schema::root(Some(&s)), &mut vec![]).unwrap();
    assert!(msg.contains("omits the key field \"name\""), "{msg}");
}

#[test]
fn the_write_path_records_updates_as_the_set_arithmetic_does() {
    let s = schema();
    let sc = Schema::root(Some(&s));
    let cases = [
        (
            json!(null),
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"command": "x", "env": [{"name": "A", "value": "1"}]}}),
        ),
        (
            json!({"spec": {"command": "x", "env": [{"name": "A", "value": "1"}, {"name": "B"}]}}),
            json!({"spec": {"command": "y", "env": [{"name": "A", "value": "2"}, {"name": "C"}]}}),
        ),
        (
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"args": ["1"], "resources": {"cpus": "1"}}}),
            json!({"metadata": {"finalizers": ["b", "c"]}, "spec": {"args": ["2"]}}),
        ),
    ];
    for (old, new) in cases {
        // Someone applied the old object first.
        let mut by_sets = Managed::default();
        if !old.is_null() {
            apply(&mut by_sets, "alice", &json!({}), &old, false).unwrap();
        }
        let mut list = {
            let mut v = json!({"metadata": {}});
            by_sets.write(&mut v);
            v["metadata"]["managedFields"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let (o, n) = (owned_part(&old, None, true), owned_part(&new, None, true));
        by_sets.record_update("bob", "v1", None, &o, &n, sc, "t");
        let changes = super::update::diff(&old, &new, None, true, sc);
        super::update::record(&mut list, &changes, "bob", "v1", None, "t");
        let mut want = json!({"metadata": {}});
        by_sets.write(&mut want);
        let fast = Managed::read(&json!({"metadata": {"managedFields": list}})).unwrap();
        let slow = Managed::read(&want).unwrap();
        let sets = |m: &Managed| -> Vec<(String, Value)> {
            let mut v: Vec<(String, Value)> =
                m.0.iter()
                    .map(|e| (e.manager.clone(), e.fields.to_fields_v1()))
                    .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(sets(&fast), sets(&slow), "{old} -> {new}");
    }
}
