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

/// The longest note kube-apiserver takes in an events.k8s.io/v1 Event (bytes).
pub const MAX_NOTE: usize = 1024;
/// The longest reason, action and reporting instance it takes.
pub const MAX_REASON: usize = 128;

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Who records: a component (`mosaic-controllers`, `mosaic-agent`) and,
/// where there are several, which one (an agent's name).
#[derive(Clone, Debug)]
pub struct Source(Reporter);

impl Source {
    /// `component`, one instance of it (`instance`, if there are several).
    pub fn new(component: &str, instance: Option<&str>) -> Self {
        Self(Reporter {
            controller: component.into(),
            instance: instance.map(|i| cut(i, MAX_REASON).to_string()),
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
        reason: cut(reason, MAX_REASON).into(),
        note: Some(cut(note, MAX_NOTE).into()),
        action: cut(reason, MAX_REASON).into(),
        secondary: None,
    };
    Recorder::new(client.clone(), source.0.clone())
        .publish(&ev, &obj.object_ref(&()))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_kube_apiserver_would_refuse_as_too_long_is_cut_at_a_character() {
        assert_eq!(cut("short", MAX_NOTE), "short");
        let long = "é".repeat(600); // 1,200 bytes
        let c = cut(&long, MAX_NOTE);
        assert!(
            c.len() <= MAX_NOTE && c.len() >= MAX_NOTE - 1,
            "{}",
            c.len()
        );
        assert!(c.chars().all(|ch| ch == 'é'));
    }
}
