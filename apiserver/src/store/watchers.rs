//! Live watch fan-out, filtered at the source: each watcher is filed under its
//! key prefix, and an event is offered only to the watchers whose prefix is one
//! of the `/`-bounded prefixes of its key. A watcher whose buffer is full is
//! dropped (its stream ends) rather than let it hold up the writer.

use super::Event;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How many events may wait for one watcher before it is dropped as too slow.
pub const WATCH_BUFFER: usize = 16 * 1024;

#[derive(Default)]
pub struct Watchers {
    by_prefix: HashMap<String, Vec<mpsc::Sender<Arc<Event>>>>,
}

impl Watchers {
    /// Adds a watcher on `prefix`.
    pub fn add(&mut self, prefix: String, tx: mpsc::Sender<Arc<Event>>) {
        self.by_prefix.entry(prefix).or_default().push(tx);
    }

    /// Offers `event` to every watcher of a prefix of its key.
    pub fn dispatch(&mut self, event: &Arc<Event>) {
        if self.by_prefix.is_empty() {
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
            let Some(list) = self.by_prefix.get_mut(prefix) else {
                continue;
            };
            list.retain(|tx| tx.try_send(event.clone()).is_ok());
            if list.is_empty() {
                self.by_prefix.remove(prefix);
            }
        }
    }

    /// Drops watchers whose receiver went away.
    pub fn prune_closed(&mut self) {
        self.by_prefix.retain(|_, list| {
            list.retain(|tx| !tx.is_closed());
            !list.is_empty()
        });
    }

    /// How many watchers are registered.
    pub fn len(&self) -> usize {
        self.by_prefix.values().map(Vec::len).sum()
    }
}
