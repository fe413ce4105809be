//! Conditions as Kubernetes keeps them: a list keyed by `type` (each writer
//! owns its own types through server-side apply), where a condition whose
//! status did not change keeps its `lastTransitionTime`.

use crate::common::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A condition of `type_` at `now`.
pub fn new(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: k8s_openapi::jiff::Timestamp,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Time(now),
        observed_generation: generation,
    }
}

/// Sets `new` in `list`, replacing the condition of its type; the old
/// `lastTransitionTime` stays when the status is the same.
pub fn set(list: &mut Vec<Condition>, mut new: Condition) {
    match list.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => list.push(new),
    }
}

/// The transition time `new` should carry, given the conditions `seen` (the
/// object as last read): kept from the same type when the status is the same.
pub fn keep_transition(seen: &[Condition], new: &mut Condition) {
    if let Some(old) = seen
        .iter()
        .find(|c| c.type_ == new.type_ && c.status == new.status)
    {
        new.last_transition_time = old.last_transition_time.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let t0 = k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap();
        let mut list = vec![new("Scheduled", true, "Scheduled", "bound", Some(1), t0)];
        set(&mut list, new("Ready", false, "Starting", "", Some(1), t0));
        set(
            &mut list,
            new("Ready", false, "HealthCheckPending", "", Some(1), t1),
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].last_transition_time.0, t0, "same status: time kept");
        assert_eq!(list[1].reason, "HealthCheckPending");
        set(&mut list, new("Ready", true, "Running", "", Some(1), t1));
        assert_eq!(list[1].last_transition_time.0, t1, "new status: time moves");
        assert_eq!(list[0].last_transition_time.0, t0);
        let mut c = new("Scheduled", true, "Scheduled", "", Some(1), t1);
        keep_transition(&list, &mut c);
        assert_eq!(c.last_transition_time.0, t0);
    }
}
