//! One stored object served as more than one API version. events.k8s.io/v1
//! Events are core/v1 Events under other field names, as in kube-apiserver:
//! both live under the core key prefix, so an Event written through either
//! API is read, listed and watched through both (a kube-rs `Recorder` writes
//! events.k8s.io, `kubectl describe` reads core/v1).

use serde_json::{Value, json};

/// How a resource's objects differ from their stored form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// Served as stored.
    #[default]
    Stored,
    /// events.k8s.io/v1 Event over a stored core/v1 Event.
    EventsV1,
}

/// (events.k8s.io/v1 field, core/v1 field): the fields whose names differ.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

impl View {
    /// Whether objects are served as stored.
    pub fn is_stored(self) -> bool {
        self == View::Stored
    }

    /// Turns a stored object into this view's shape.
    pub fn to_view(self, obj: &mut Value) {
        if self == View::EventsV1 {
            rename(obj, EVENT_FIELDS.iter().map(|(v, s)| (*s, *v)));
            obj["apiVersion"] = json!("events.k8s.io/v1");
        }
    }

    /// Turns an object of this view's shape into its stored shape.
    pub fn to_storage(self, obj: &mut Value) {
        if self == View::EventsV1 {
            rename(obj, EVENT_FIELDS.iter().map(|(v, s)| (*v, *s)));
            obj["apiVersion"] = json!("v1");
        }
    }
}

/// Renames top-level fields; a field already present under the new name wins
/// over nothing, and the old name is dropped.
fn rename<'a>(obj: &mut Value, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    for (from, to) in pairs {
        if let Some(v) = m.remove(from)
            && !m.contains_key(to)
        {
            m.insert(to.to_string(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_between_the_two_versions() {
        let stored = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Task", "name": "t"}, "message": "hello",
            "reportingComponent": "mosaic", "source": {"component": "mosaic"},
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:01Z",
            "count": 2, "reason": "Started", "type": "Normal",
            "eventTime": "2026-01-01T00:00:00.000000Z", "series": {"count": 2}
        });
        let mut v = stored.clone();
        View::EventsV1.to_view(&mut v);
        assert_eq!(v["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v["regarding"]["name"], "t");
        assert_eq!(v["note"], "hello");
        assert_eq!(v["reportingController"], "mosaic");
        assert_eq!(v["deprecatedSource"]["component"], "mosaic");
        assert_eq!(v["deprecatedCount"], 2);
        assert_eq!(v["series"]["count"], 2);
        assert!(v.get("involvedObject").is_none() && v.get("message").is_none());
        View::EventsV1.to_storage(&mut v);
        assert_eq!(v, stored);
    }
}
