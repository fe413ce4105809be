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
    let owned = || owned_part(live, None, true);
    m.apply(
        manager,
        "mosaic.dev/v1alpha1",
        None,
        live,
        &owned,
        config,
        &super::managed::Applied::of(owned_part(config, None, true), Schema::root(Some(&s))),
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
    assert_eq!(err[0].field(), ".spec.command");
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
fn a_map_whose_fields_an_apply_stops_applying_goes_with_them() {
    let mut m = Managed::default();
    let a1 = json!({"spec": {"command": "one", "resources": {"cpus": "1", "memory": "1Gi"}}});
    let v = apply(&mut m, "alice", &json!(null), &a1, false).unwrap();
    // alice stops applying resources: the map goes, not just its fields.
    let a2 = json!({"spec": {"command": "one"}});
    let v = apply(&mut m, "alice", &v, &a2, false).unwrap();
    assert_eq!(v["spec"], json!({"command": "one"}), "{v}");
    // A map someone else still fills stays.
    let a3 = json!({"spec": {"command": "one", "resources": {"cpus": "1"}}});
    let v = apply(&mut m, "alice", &v, &a3, false).unwrap();
    let b1 = json!({"spec": {"resources": {"memory": "2Gi"}}});
    let v = apply(&mut m, "bob", &v, &b1, false).unwrap();
    let v = apply(&mut m, "alice", &v, &a2, false).unwrap();
    assert_eq!(v["spec"]["resources"], json!({"memory": "2Gi"}), "{v}");
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
            by_sets.clone().write(&mut v);
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

/// The create path's one-pass tree is what a diff from nothing records.
fn same_as_recorded(obj: &Value, status_subresource: bool, s: &Value) {
    let schema = Schema::root(Some(s));
    let got = super::update::created(obj, status_subresource, schema);
    assert_eq!(
        got.map(Value::Object),
        Some(recorded(obj, status_subresource, schema)),
        "{obj}"
    );
}

/// The `fieldsV1` that a diff from nothing, recorded into an empty list, gives.
fn recorded(obj: &Value, status_subresource: bool, schema: Schema<'_>) -> Value {
    let changes = super::update::diff(&Value::Null, obj, None, status_subresource, schema);
    let mut list = Vec::new();
    super::update::record(&mut list, &changes, "m", "v1", None, "t");
    list.first()
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(json!({}))
}

#[test]
fn a_create_records_its_fields_in_one_pass() {
    let s = schema();
    for obj in [
        json!({}),
        json!({"apiVersion": "v1", "kind": "Task", "metadata": {"name": "a", "uid": "u"}}),
        json!({"apiVersion": "v1", "kind": "Task",
            "metadata": {"name": "a", "labels": {"x": "1", "y": "2"}, "annotations": {},
                "finalizers": ["f", "g"], "ownerReferences": [{"uid": "1", "kind": "K"}, {"kind": "no uid"}]},
            "spec": {"command": "true", "args": ["a", "a"], "env": [{"name": "A", "value": "1"}, {"name": "B"}, {"value": "keyless"}],
                "resources": {}, "unknown": {"deep": [1, {"x": null}]}},
            "status": {"phase": "Running"}}),
        json!({"spec": {"env": [], "resources": {"cpus": "1"}}, "metadata": {"finalizers": []}}),
        json!({"spec": {"env": [{"name": "A"}]}, "other": 1}),
    ] {
        same_as_recorded(&obj, true, &s);
        same_as_recorded(&obj, false, &s);
    }
    // A repeated item is left to the general path.
    let twice = json!({"spec": {"env": [{"name": "A"}, {"name": "A", "value": "2"}]}});
    assert_eq!(
        super::update::created(&twice, true, Schema::root(Some(&s))),
        None
    );
    let twice = json!({"metadata": {"finalizers": ["a", "a"]}});
    assert_eq!(
        super::update::created(&twice, true, Schema::root(Some(&s))),
        None
    );
}

mod one_pass {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0i64..3).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("name".to_string()),
                        "[a-c]{1,2}",
                        Just("env".to_string()),
                        Just("spec".to_string()),
                        Just("metadata".to_string()),
                        Just("finalizers".to_string()),
                        Just("status".to_string())
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Task-like objects: random fields, with a map-list of items that
    /// mostly carry their key, a set-list and labels among them.
    fn task_like() -> impl Strategy<Value = Value> {
        let item = prop::collection::btree_map(
            prop_oneof![Just("name".to_string()), Just("value".to_string()), "[a-c]"],
            json_value(),
            0..3,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()));
        (
            prop::collection::btree_map("[a-c]{1,2}", json_value(), 0..3),
            prop::option::of(prop::collection::vec(item, 0..4)),
            prop::option::of(prop::collection::vec("[a-d]", 0..3)),
            prop::collection::btree_map("[a-c]", "[a-c]", 0..3),
            prop::option::of(json_value()),
        )
            .prop_map(|(mut spec, env, finalizers, labels, status)| {
                if let Some(env) = env {
                    spec.insert("env".into(), Value::from(env));
                }
                let mut obj = json!({"metadata": {"name": "x", "labels": labels}, "spec": spec});
                if let Some(f) = finalizers {
                    obj["metadata"]["finalizers"] = json!(f);
                }
                if let Some(s) = status {
                    obj["status"] = s;
                }
                obj
            })
    }

    proptest! {
        #[test]
        fn one_pass_equals_diff_and_record(
            obj in prop_oneof![json_value(), task_like()],
            status_subresource: bool,
        ) {
            let s = schema();
            let schema = Schema::root(Some(&s));
            // `None` (a repeated list item) is the general path's to handle.
            if let Some(got) = super::super::update::created(&obj, status_subresource, schema) {
                prop_assert_eq!(Value::Object(got), super::recorded(&obj, status_subresource, schema));
            }
        }
    }
}

#[test]
fn an_applied_configuration_s_fields_v1_is_its_field_set_s() {
    let s = schema();
    let sc = Schema::root(Some(&s));
    for config in [
        json!({}),
        json!({"status": null}),
        json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x", "y"]}, "spec": {}}),
        json!({"spec": {"command": "true", "args": [], "env": [],
            "resources": {"cpus": "1"}}}),
        json!({"spec": {"args": ["a", "b"], "env": [{"name": "A"}, {"name": "B", "value": "2"}, {"value": "no key"}]}}),
    ] {
        let owned = owned_part(&config, None, true);
        let applied = super::managed::Applied::of(owned.clone(), sc);
        assert_eq!(
            applied.fields_v1,
            Some(set_of(&owned, sc).to_fields_v1()),
            "{config}"
        );
    }
    // A map-list item given twice is for the general path.
    let twice = json!({"spec": {"env": [{"name": "A"}, {"name": "A"}]}});
    assert_eq!(super::managed::Applied::of(twice, sc).fields_v1, None);
}

/// `manager`'s apply of `config` to `live`'s status, on the managedFields
/// `live` holds as an apply reads them; the entries after it, and its result.
fn status_apply(
    live: &Value,
    manager: &str,
    config: &Value,
    schema: Schema<'_>,
    force: bool,
) -> (Managed, Result<Value, Vec<super::managed::Conflict>>) {
    let mut m = Managed::read_for(live, Some("status")).unwrap();
    let v = m.apply(
        manager,
        "v1",
        Some("status"),
        live,
        &|| owned_part(live, Some("status"), true),
        config,
        &super::managed::Applied::of(config.clone(), schema),
        schema,
        force,
        "t",
    );
    (m, v)
}

#[test]
fn an_apply_reads_other_subresources_field_sets_only_to_remove_a_field() {
    let obj = json!({"metadata": {"managedFields": [
        {"manager": "a", "operation": "Update", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:command": {}}}},
        {"manager": "b", "operation": "Apply", "subresource": "status", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:x": {}}}}]}});
    let mut m = Managed::read_for(&obj, Some("status")).unwrap();
    assert!(m.0[0].unread && m.0[0].fields.is_empty());
    assert!(!m.0[1].unread && !m.0[1].fields.is_empty());
    m.read_rest();
    assert_eq!(m, Managed::read(&obj).unwrap());
    // Entries left unread are written back as they were.
    let m = Managed::read_for(&obj, Some("status")).unwrap();
    let mut out = json!({"metadata": {}});
    m.write(&mut out);
    assert_eq!(out, obj);
    // b stops applying status.x, which the main resource's "a" also owns
    // (as a client may have written it): x stays.
    let live = json!({"metadata": {"managedFields": [
        {"manager": "a", "operation": "Update", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:x": {}}}},
        {"manager": "b", "operation": "Apply", "subresource": "status", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:x": {}, "f:y": {}}}}]},
        "status": {"x": 1, "y": 2}});
    let config = json!({"status": {"y": 3}});
    let v = status_apply(&live, "b", &config, Schema::root(None), false)
        .1
        .unwrap();
    assert_eq!(v["status"], json!({"x": 1, "y": 3}));
    // c takes y by force: b's entry as read loses it, as its set does.
    let live = json!({"metadata": {"managedFields": [
        {"manager": "b", "operation": "Apply", "subresource": "status", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:x": {}, "f:y": {}}}}]},
        "status": {"x": 1, "y": 2}});
    let config = json!({"status": {"y": 4}});
    let refused = status_apply(&live, "c", &config, Schema::root(None), false).1;
    assert_eq!(refused.unwrap_err()[0].field(), ".status.y");
    let (m, forced) = status_apply(&live, "c", &config, Schema::root(None), true);
    forced.unwrap();
    let b = m.0.iter().find(|e| e.manager == "b").unwrap();
    assert_eq!(
        b.read_as.as_ref().unwrap()["fieldsV1"],
        b.fields.to_fields_v1()
    );
    assert_eq!(b.fields.to_fields_v1(), json!({"f:status": {"f:x": {}}}));
    // An entry a client wrote with a key spelled otherwise (a space) loses
    // the field all the same: it is written again from its set.
    let odd = json!({"metadata": {"managedFields": [
        {"manager": "b", "operation": "Apply", "subresource": "status", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:l": {"k:{\"name\": \"a\"}": {"f:v": {}}}, "f:x": {}}}}]},
        "status": {"x": 1, "l": [{"name": "a", "v": "0"}]}});
    let s = json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
        "l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "string"}}}}}}}});
    let sc = Schema::root(Some(&s));
    let config = json!({"status": {"l": [{"name": "a", "v": "1"}]}});
    let (m, forced) = status_apply(&odd, "c", &config, sc, true);
    forced.unwrap();
    let b = m.0.iter().find(|e| e.manager == "b").unwrap();
    assert_eq!(b.fields.to_fields_v1(), json!({"f:status": {"f:x": {}}}));
    let mut out = json!({"metadata": {}});
    m.write(&mut out);
    let written = &out["metadata"]["managedFields"][0];
    assert_eq!(written["manager"], "b");
    assert_eq!(written["fieldsV1"], json!({"f:status": {"f:x": {}}}));
    // An entry of another subresource that owns nothing goes, as it did.
    let empty = json!({"metadata": {"managedFields": [
        {"manager": "a", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}}]}});
    let config = json!({"status": {"y": 1}});
    let (m, applied) = status_apply(&empty, "c", &config, Schema::root(None), false);
    applied.unwrap();
    assert!(m.0.iter().all(|e| e.manager != "a"), "{:?}", m.0);
}

#[test]
fn a_single_key_is_written_as_its_one_entry_object() {
    use super::fields::{canonical, item_key};
    for item in [
        json!({"type": "Ready", "status": "True"}),
        json!({"type": "a\"b\\c", "x": 1}),
        json!({"type": {"n": [1, 2.5, null]}}),
        json!({"type": 7}),
    ] {
        let one = json!({"type": item["type"].clone()});
        assert_eq!(item_key(&item, &["type".into()]), Some(canonical(&one)));
    }
    assert_eq!(item_key(&json!({"name": "x"}), &["type".into()]), None);
}

#[test]
fn client_written_entries_are_kept_in_canonical_form() {
    use super::fields::Element;
    use super::update::{Changes, record};
    // A client spells a key with spaces and adds a field of its own.
    let mut obj = json!({"metadata": {"managedFields": [
        {"manager": "a", "operation": "Update", "fieldsType": "FieldsV1", "extra": 1,
         "fieldsV1": {"f:status": {"f:conditions": {"k:{ \"type\" : \"Ready\" }": {".": {}, "f:status": {}}}}}}]}});
    Managed::read(&obj)
        .and_then(Managed::canonical)
        .unwrap()
        .write(&mut obj);
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{"manager": "a", "operation": "Update", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}}}}}])
    );
    // So another manager's update of that condition's status takes it.
    let mut list = obj["metadata"]["managedFields"].as_array().unwrap().clone();
    let path = vec![
        Element::Field("status".into()),
        Element::Field("conditions".into()),
        Element::Key(r#"{"type":"Ready"}"#.into()),
        Element::Field("status".into()),
    ];
    let changes = Changes {
        set: vec![path],
        removed: vec![],
    };
    record(&mut list, &changes, "b", "v1", None, "2026-01-01T00:00:00Z");
    let a = list.iter().find(|e| e["manager"] == "a").unwrap();
    assert_eq!(
        a["fieldsV1"],
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {}}}})
    );
    // An empty list clears them; an entry owning nothing goes.
    for list in [
        json!([]),
        json!([{"manager": "c", "operation": "Update",
        "fieldsType": "FieldsV1", "fieldsV1": {}}]),
    ] {
        let mut cleared = json!({"metadata": {"managedFields": list}});
        Managed::read(&cleared)
            .and_then(Managed::canonical)
            .unwrap()
            .write(&mut cleared);
        assert!(cleared["metadata"].get("managedFields").is_none());
    }
    // A time is kept in UTC to the second; one that is not a time is refused.
    let timed = |t: &str| {
        json!({"metadata": {"managedFields": [{"manager": "a",
        "operation": "Update", "fieldsType": "FieldsV1", "time": t,
        "fieldsV1": {"f:spec": {"f:x": {}}}}]}})
    };
    let mut obj = timed("2026-01-01T01:30:00.5+01:00");
    Managed::read(&obj)
        .and_then(Managed::canonical)
        .unwrap()
        .write(&mut obj);
    assert_eq!(
        obj["metadata"]["managedFields"][0]["time"],
        "2026-01-01T00:30:00Z"
    );
    let bad = Managed::read(&timed("yesterday")).and_then(Managed::canonical);
    assert!(bad.unwrap_err().contains("managedFields[0].time"));
}
