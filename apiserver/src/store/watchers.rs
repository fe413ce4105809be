//! Live watch fan-out, filtered at the source: each watcher is filed under its
//! key prefix, and an event is offered only to the watchers whose prefix is one
//! of the `/`-bounded prefixes of its key. A watcher of one field's value
//! ([`FieldFilter`]) is filed further under that field and value, so an event
//! reads each watched field once (new and previous value) and reaches only the
//! watchers of those values, however many there are. A watcher whose buffer is
//! full is dropped (its stream ends) rather than let it hold up the writer.

use super::Event;
use super::field::{FieldFilter, field_value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often, at most, field-filtered watchers are told the store's revision.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

type Sender = mpsc::Sender<Arc<Event>>;

/// Field-filtered watchers of one prefix: by field path, then by value.
type ByField = HashMap<String, HashMap<String, Vec<Sender>>>;

/// How many events may wait for one watcher before it is dropped as too slow.
pub const WATCH_BUFFER: usize = 16 * 1024;

#[derive(Default)]
pub struct Watchers {
    by_prefix: HashMap<String, Vec<Sender>>,
    by_field: HashMap<String, ByField>,
    last_progress: Option<Instant>,
}

impl Watchers {
    /// Adds a watcher on `prefix`, of every change or only of those `filter` selects.
    pub fn add(&mut self, prefix: String, filter: Option<FieldFilter>, tx: Sender) {
        match filter {
            None => self.by_prefix.entry(prefix).or_default().push(tx),
            Some(f) => self
                .by_field
                .entry(prefix)
                .or_default()
                .entry(f.path)
                .or_default()
                .entry(f.value)
                .or_default()
                .push(tx),
        }
    }

    /// Offers `event` to every watcher of a prefix of its key (those of a field
    /// only when its new or previous value is theirs).
    pub fn dispatch(&mut self, event: &Arc<Event>) {
        if self.by_prefix.is_empty() && self.by_field.is_empty() {
            return;
        }
        let key = event.kv.key.as_str();
        let ends = key
            .char_indices()
            .filter(|(_, c)| *c == '/')
            .map(|(i, _)| i + 1)
            .chain(std::iter::once(key.len()));
        for end in ends {
            let prefix = &key[..end];
            if let Some(list) = self.by_prefix.get_mut(prefix) {
                offer(list, event);
                if list.is_empty() {
                    self.by_prefix.remove(prefix);
                }
            }
            if let Some(fields) = self.by_field.get_mut(prefix) {
                for (path, by_value) in fields.iter_mut() {
                    let new = field_value(&event.kv.value, path);
                    let prev = event.prev.as_ref().map(|p| field_value(&p.value, path));
                    for value in std::iter::once(&new).chain(prev.iter().filter(|p| **p != new)) {
                        if let Some(list) = by_value.get_mut(value) {
                            offer(list, event);
                            if list.is_empty() {
                                by_value.remove(value);
                            }
                        }
                    }
                }
                fields.retain(|_, by_value| !by_value.is_empty());
                if fields.is_empty() {
                    self.by_field.remove(prefix);
                }
            }
        }
    }

    /// After a batch of changes up to `rev`: tells the field-filtered watchers
    /// that revision, at most once every [`PROGRESS_EVERY`], so a watcher whose
    /// value rarely changes still has a current resourceVersion for its
    /// bookmarks (and resumes from it, not from before the last compaction).
    pub fn progress_if_due(&mut self, rev: i64) {
        if self.by_field.is_empty()
            || self
                .last_progress
                .is_some_and(|t| t.elapsed() < PROGRESS_EVERY)
        {
            return;
        }
        self.last_progress = Some(Instant::now());
        self.progress(rev);
    }

    /// Tells every field-filtered watcher that it has had everything up to `rev`.
    /// A watcher with a full buffer misses it (it is behind anyway).
    fn progress(&mut self, rev: i64) {
        let event = Arc::new(Event::progress(rev));
        let lists = (self.by_field.values())
            .flat_map(HashMap::values)
            .flat_map(HashMap::values);
        for tx in lists.flatten() {
            let _ = tx.try_send(event.clone());
        }
    }

    /// Drops watchers whose receiver went away.
    pub fn prune_closed(&mut self) {
        let open = |list: &mut Vec<Sender>| {
            list.retain(|tx| !tx.is_closed());
            !list.is_empty()
        };
        self.by_prefix.retain(|_, list| open(list));
        self.by_field.retain(|_, fields| {
            fields.retain(|_, by_value| {
                by_value.retain(|_, list| open(list));
                !by_value.is_empty()
            });
            !fields.is_empty()
        });
    }

    /// How many watchers are registered.
    pub fn len(&self) -> usize {
        let filtered: usize = (self.by_field.values())
            .flat_map(HashMap::values)
            .flat_map(HashMap::values)
            .map(Vec::len)
            .sum();
        self.by_prefix.values().map(Vec::len).sum::<usize>() + filtered
    }
}

/// Offers `event` to each watcher in `list`, dropping those that are gone or full.
fn offer(list: &mut Vec<Sender>, event: &Arc<Event>) {
    list.retain(|tx| tx.try_send(event.clone()).is_ok());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, KeyValue};
    use serde_json::json;

    fn event(key: &str, agent: &str, prev: Option<&str>) -> Arc<Event> {
        let kv = |agent: &str| {
            Arc::new(KeyValue {
                key: key.into(),
                value: serde_json::to_vec(&json!({"status": {"agent": agent}}))
                    .unwrap()
                    .into(),
                create_revision: 1,
                mod_revision: 2,
            })
        };
        Arc::new(Event::new(EventKind::Put, kv(agent), prev.map(kv)))
    }

    fn on(agent: &str) -> Option<FieldFilter> {
        Some(FieldFilter {
            path: "status.agent".into(),
            value: agent.into(),
        })
    }

    #[test]
    fn a_field_watcher_hears_only_changes_into_or_out_of_its_value() {
        let mut w = Watchers::default();
        let (a_tx, mut a) = mpsc::channel(16);
        let (b_tx, mut b) = mpsc::channel(16);
        let (all_tx, mut all) = mpsc::channel(16);
        let (other_tx, mut other) = mpsc::channel(16);
        w.add("/tasks/".into(), on("a"), a_tx);
        w.add("/tasks/".into(), on("b"), b_tx);
        w.add("/tasks/".into(), None, all_tx);
        w.add("/agents/".into(), on("a"), other_tx);
        assert_eq!(w.len(), 4);
        w.dispatch(&event("/tasks/ns/t1", "", None)); // created, unbound
        w.dispatch(&event("/tasks/ns/t1", "a", Some(""))); // bound to a
        w.dispatch(&event("/tasks/ns/t1", "b", Some("a"))); // moved to b
        w.dispatch(&event("/tasks/ns/t2", "b", Some("b"))); // a change on b
        let drain = |rx: &mut mpsc::Receiver<Arc<Event>>| {
            std::iter::from_fn(|| rx.try_recv().ok())
                .map(|e| (e.kv.key.clone(), field_value(&e.kv.value, "status.agent")))
                .collect::<Vec<_>>()
        };
        let t = |k: &str, a: &str| (format!("/tasks/ns/{k}"), a.to_string());
        assert_eq!(drain(&mut a), [t("t1", "a"), t("t1", "b")]);
        assert_eq!(drain(&mut b), [t("t1", "b"), t("t2", "b")]);
        assert_eq!(drain(&mut all).len(), 4);
        assert!(drain(&mut other).is_empty(), "another prefix's watcher");
        drop(a);
        w.prune_closed();
        assert_eq!(w.len(), 3, "the closed field watcher is gone");

        // Progress reaches the field watchers only, at most once a second.
        w.progress_if_due(7);
        w.progress_if_due(8);
        let progress = |rx: &mut mpsc::Receiver<Arc<Event>>| {
            std::iter::from_fn(|| rx.try_recv().ok())
                .map(|e| (e.kind, e.kv.mod_revision))
                .collect::<Vec<_>>()
        };
        assert_eq!(progress(&mut b), [(EventKind::Progress, 7)]);
        assert_eq!(progress(&mut other), [(EventKind::Progress, 7)]);
        assert!(
            progress(&mut all).is_empty(),
            "a whole-prefix watcher sees every change"
        );
    }
}
