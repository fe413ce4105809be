//! The one event recorder of the controllers and the agent: kube-runtime's
//! `events::Recorder`, writing events.k8s.io/v1 Events (which `mosaic
//! server`, as kube-apiserver, also serves as core/v1 Events, so `kubectl
//! describe` and `kubectl get events` show them) with the object as
//! `regarding`.
//!
//! Each Event gets a Recorder of its own, as kube-rs's documentation has
//! one made per reconcile: a long-lived Recorder keeps every Event of the
//! last six minutes to count repeats as a series and walks all of them on
//! every publish, which over a burst of thousands of binds (one Scheduled
//! Event each, never repeated) costs time quadratic in the burst and holds
//! megabytes.

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

/// Who records: a component (`mosaic-controllers`, `mosaic-agent`) and,
/// where there are several, which one (an agent's name).
#[derive(Clone, Debug)]
pub struct Source(Reporter);

impl Source {
    /// `component`, one instance of it (`instance`, if there are several).
    pub fn new(component: &str, instance: Option<&str>) -> Self {
        Self(Reporter {
            controller: component.into(),
            instance: instance.map(String::from),
        })
    }
}

/// Records one Event about `obj`: `type_` is `Normal` or `Warning`, `reason`
/// the step of its life (also the Event's action), `note` what happened.
pub async fn record<K>(
    client: &Client,
    source: &Source,
    obj: &K,
    type_: &str,
    reason: &str,
    note: &str,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let ev = Event {
        type_: if type_ == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note.into()),
        action: reason.into(),
        secondary: None,
    };
    Recorder::new(client.clone(), source.0.clone())
        .publish(&ev, &obj.object_ref(&()))
        .await
}
