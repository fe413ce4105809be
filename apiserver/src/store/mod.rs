//! The revisioned key-value store under the API server, in the style of etcd.
//!
//! One global revision counts every write; each key carries the revision that
//! created it and the one that last changed it. Writes are compare-and-swap on
//! that mod revision, history is kept for watch replay until compaction, and a
//! watch from revision `R` delivers every change after `R` exactly once, in order.
//!
//! [`Store`] is the small trait the HTTP layer uses; [`sqlite::SqliteStore`] is
//! the embedded, durable backend (a write is fsynced before it is acknowledged,
//! and concurrent writes share one fsync). An etcd backend fits the same trait:
//! its revisions, `Txn` compares on `mod_revision` and watches map one to one.

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(feature = "etcd")]
pub mod etcd;
mod field;
pub mod sqlite;
mod watchers;

pub use field::{FieldFilter, field_value};

use futures::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::mpsc;

/// One stored value and its revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/mosaic.dev/tasks/default/hello`.
    pub key: String,
    /// The stored bytes (a JSON object for the API server).
    pub value: Arc<[u8]>,
    /// The revision of the write that created this key.
    pub create_revision: i64,
    /// The revision of the write that last changed it (the delete, for a deleted key).
    pub mod_revision: i64,
}

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or changed.
    Put,
    /// The key was removed; the event carries its last value.
    Delete,
    /// No change: every change up to `kv.mod_revision` that this watch is to
    /// get has been delivered (as etcd's progress notifications). Only
    /// field-filtered watches get these, about once a second while the store
    /// is written, so their resourceVersion keeps up though they see few changes.
    Progress,
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The new value (for a delete: the last value, with `mod_revision` the delete's).
    pub kv: Arc<KeyValue>,
    /// The value before this change, when there was one and the store still knows it.
    pub prev: Option<Arc<KeyValue>>,
    /// Whatever the layer above derives from the event once and shares between
    /// its watchers (the API server: the object as served), made by the first.
    pub shared: std::sync::OnceLock<bytes::Bytes>,
}

impl Event {
    /// A change, with nothing derived yet.
    pub fn new(kind: EventKind, kv: Arc<KeyValue>, prev: Option<Arc<KeyValue>>) -> Self {
        Self {
            kind,
            kv,
            prev,
            shared: Default::default(),
        }
    }

    /// A progress notification at revision `rev` (see [`EventKind::Progress`]).
    pub fn progress(rev: i64) -> Self {
        let kv = KeyValue {
            key: String::new(),
            value: Arc::from(&[][..]),
            create_revision: 0,
            mod_revision: rev,
        };
        Self::new(EventKind::Progress, Arc::new(kv), None)
    }
}

/// The result of a range read.
#[derive(Debug, Default)]
pub struct ListResult {
    /// The matching values, in key order.
    pub items: Vec<Arc<KeyValue>>,
    /// The revision the read reflects.
    pub revision: i64,
    /// The last key looked at when `limit` cut the read short; `None` when the range is exhausted.
    pub more_after: Option<String>,
}

/// A read of a key range.
#[derive(Clone, Debug, Default)]
pub struct ListRequest<'a> {
    /// Keys starting with this.
    pub prefix: &'a str,
    /// Only keys strictly after this one.
    pub after: Option<&'a str>,
    /// At most this many values (0: no limit).
    pub limit: usize,
    /// Read as of this revision (`None`: the latest).
    pub revision: Option<i64>,
}

/// A stream of changes, delivered in batches in revision order. It ends when the
/// store drops a watcher that could not keep up; the client then resumes from
/// the last revision it saw.
pub type WatchStream = mpsc::Receiver<Arc<Event>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create of a key that exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// Update or delete of a key that does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key's mod revision is not the one the caller expected.
    #[error("key {key} was modified (now at revision {current})")]
    Conflict {
        /// The key.
        key: String,
        /// Its current mod revision.
        current: i64,
    },
    /// The revision asked for has been compacted away.
    #[error("revision {requested} is compacted (oldest kept: {compacted})")]
    Compacted {
        /// What the caller asked for.
        requested: i64,
        /// The store's compacted revision.
        compacted: i64,
    },
    /// The revision asked for is newer than the store's.
    #[error("revision {0} is in the future")]
    FutureRevision(i64),
    /// The backend cannot serve (e.g. the disk or the quorum is gone).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The embedded database failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// How to reach an etcd cluster (used when the server is built with the `etcd` feature).
#[derive(Clone, Debug, Default)]
pub struct EtcdConfig {
    /// Client URLs of the members (`http://127.0.0.1:2379`, or https with TLS).
    pub endpoints: Vec<String>,
    /// Where Mosaic's keys live (`/mosaic`).
    pub prefix: String,
    /// CA that signed the members' certificates (enables TLS).
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate for etcd's client-certificate authentication.
    pub cert_file: Option<std::path::PathBuf>,
    /// The key of `cert_file`.
    pub key_file: Option<std::path::PathBuf>,
}

/// A precondition on an update or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Whatever the key's revision.
    None,
    /// Only if the key's mod revision is this one.
    ModRevision(i64),
}

/// The operations the API server needs from its store.
pub trait Store: Send + Sync + 'static {
    /// The latest value of one key.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Arc<KeyValue>>, StoreError>>;
    /// A range read, at the latest revision or a past one.
    fn list<'a>(&'a self, req: ListRequest<'a>) -> BoxFuture<'a, Result<ListResult, StoreError>>;
    /// Create a key that must not exist; returns the stored value.
    fn create(
        &self,
        key: String,
        value: Vec<u8>,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>>;
    /// Replace a key's value; returns the stored value.
    fn update(
        &self,
        key: String,
        value: Vec<u8>,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>>;
    /// Remove a key; returns its last value, with `mod_revision` the delete's revision.
    fn delete(
        &self,
        key: String,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>>;
    /// Every change to keys under `prefix` after revision `after`.
    fn watch(&self, prefix: String, after: i64) -> BoxFuture<'_, Result<WatchStream, StoreError>>;
    /// The changes [`watch`](Store::watch) would deliver that `filter` selects
    /// (the field has its value before or after the change). This default
    /// filters a whole watch as it streams; a backend that can, files the
    /// watcher by the field's value so other changes never reach it.
    fn watch_field(
        &self,
        prefix: String,
        after: i64,
        filter: FieldFilter,
    ) -> BoxFuture<'_, Result<WatchStream, StoreError>> {
        Box::pin(async move {
            let mut all = self.watch(prefix, after).await?;
            let (tx, rx) = mpsc::channel(watchers::WATCH_BUFFER);
            tokio::spawn(async move {
                while let Some(e) = all.recv().await {
                    if filter.selects(&e) && tx.send(e).await.is_err() {
                        return;
                    }
                }
            });
            Ok(rx)
        })
    }
    /// The newest revision.
    fn revision(&self) -> i64;
    /// The oldest revision a watch or a past read can start from.
    fn compacted_revision(&self) -> i64;
    /// Drop history older than `revision` (the latest value of each live key stays).
    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Whether the backend can serve now (for `/readyz`), and if not why.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The end of a prefix range: the smallest key greater than every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    "\u{10FFFF}".to_string()
}
