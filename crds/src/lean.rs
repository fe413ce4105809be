//! Tasks decoded without their managedFields, which are skipped unparsed:
//! the watches of the controllers and agents keep no field ownership (as
//! controller-runtime's default cache transform drops it), so a watch event
//! of a Task builds no `FieldsV1` trees only to throw them away.

use crate::task::{Task, TaskSpec, TaskStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
use std::borrow::Cow;

/// A Task decoded without its managedFields.
#[derive(Clone, Debug)]
pub struct LeanTask(pub Task);

impl<'de> Deserialize<'de> for LeanTask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default, deserialize_with = "lean_meta")]
            metadata: ObjectMeta,
            spec: TaskSpec,
            #[serde(default)]
            status: Option<TaskStatus>,
        }
        let r = Raw::deserialize(d)?;
        Ok(LeanTask(Task {
            metadata: r.metadata,
            spec: r.spec,
            status: r.status,
        }))
    }
}

/// ObjectMeta with `managedFields` skipped unparsed.
fn lean_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    struct Meta;
    impl<'de> Visitor<'de> for Meta {
        type Value = ObjectMeta;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("object metadata")
        }
        fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<ObjectMeta, A::Error> {
            ObjectMeta::deserialize(MapAccessDeserializer::new(WithoutManagedFields(m)))
        }
    }
    d.deserialize_map(Meta)
}

/// A map's entries but `managedFields`, whose value is skipped unparsed.
struct WithoutManagedFields<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutManagedFields<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(k) = self.0.next_key::<String>()? {
            if k == "managedFields" {
                self.0.next_value::<IgnoredAny>()?;
                continue;
            }
            return seed.deserialize(k.into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

impl Resource for LeanTask {
    type DynamicType = ();
    type Scope = <Task as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Task::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Task::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Task::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Task::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::LeanTask;
    use crate::task::Task;
    use serde_json::json;

    #[test]
    fn a_lean_task_is_the_task_without_its_managed_fields() {
        let v = json!({"apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": "t", "namespace": "n", "uid": "u", "resourceVersion": "7",
                "labels": {"a": "b"}, "finalizers": ["f"],
                "ownerReferences": [{"apiVersion": "mosaic.dev/v1alpha1", "kind": "App", "name": "a", "uid": "x"}],
                "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:command": {}}}}]},
            "spec": {"command": "true", "framework": "fw", "resources": {"cpus": "1", "memory": "1Mi"}},
            "status": {"phase": "Running", "agent": "a1"}});
        let lean: LeanTask = serde_json::from_value(v.clone()).unwrap();
        let mut full: Task = serde_json::from_value(v.clone()).unwrap();
        assert!(full.metadata.managed_fields.is_some());
        full.metadata.managed_fields = None;
        assert_eq!(
            serde_json::to_value(&lean.0).unwrap(),
            serde_json::to_value(&full).unwrap()
        );
        // The managedFields are not parsed at all: a value that is not a
        // list, which a Task would refuse, is skipped; and so through a watch
        // event, whichever of its fields comes first.
        let mut odd = v.clone();
        odd["metadata"]["managedFields"] = json!(5);
        assert!(serde_json::from_value::<Task>(odd.clone()).is_err());
        let skipped: LeanTask = serde_json::from_value(odd.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&skipped.0).unwrap(),
            serde_json::to_value(&full).unwrap()
        );
        let object = odd.to_string();
        for text in [
            format!(r#"{{"type": "MODIFIED", "object": {object}}}"#),
            format!(r#"{{"object": {object}, "type": "MODIFIED"}}"#),
        ] {
            match serde_json::from_str::<kube::core::WatchEvent<LeanTask>>(&text).unwrap() {
                kube::core::WatchEvent::Modified(t) => assert_eq!(
                    serde_json::to_value(&t.0).unwrap(),
                    serde_json::to_value(&full).unwrap()
                ),
                other => panic!("not a MODIFIED event: {other:?}"),
            }
        }
        // Bad metadata is an error, not a panic or a default.
        let bad = json!({"metadata": {"labels": 3}, "spec": {"command": "x"}});
        assert!(serde_json::from_value::<LeanTask>(bad).is_err());
    }
}
