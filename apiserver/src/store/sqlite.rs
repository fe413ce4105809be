//! The embedded durable backend: SQLite in WAL mode with `synchronous=FULL`,
//! one writer thread that group-commits, and the live key space kept in memory.
//!
//! Every write is a row of one append-only table whose integer primary key is
//! the revision (the shape kine gives k3s). The writer thread takes every write
//! waiting in its queue, checks each against the live state, appends the rows in
//! one transaction and commits it: one fsync acknowledges the whole batch. Only
//! then does it publish the batch to the in-memory state and to watchers, so a
//! reader never sees a write that could still be lost.
//!
//! The log is copied into the database beside the writer and kept short
//! (`checkpoint`). Reads of the latest state come from memory; reads of a past
//! revision (later pages of a paginated list) and watch replay come from the
//! table.

mod checkpoint;

use super::watchers::{WATCH_BUFFER, Watchers};
use super::{
    Event, EventKind, FieldFilter, KeyValue, ListRequest, ListResult, Precondition, Store,
    StoreError, WatchStream, prefix_end,
};
use checkpoint::Checkpointer;
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, mpsc as std_mpsc};
use tokio::sync::{mpsc, oneshot};

/// The most writes one commit takes.
const MAX_BATCH: usize = 2048;

/// About how long a batch that found other writes queued behind its first
/// may wait for more before it commits (group commit, as PostgreSQL's
/// `commit_delay` with `commit_siblings`): under concurrent writers one fsync
/// then covers many writes; a lone write never waits. The wait is whole
/// [`COMMIT_GAP`]s, the last one ending at most half a gap past this.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(3000);

/// A waiting batch looks for more writes this often, and commits as soon as
/// none came since it last looked (writers that wait for their answer are all
/// in the batch already).
const COMMIT_GAP: std::time::Duration = std::time::Duration::from_micros(1000);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
";

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    writes: Mutex<std_mpsc::Sender<WriteOp>>,
    history: Mutex<Connection>,
}

struct State {
    live: BTreeMap<String, Arc<KeyValue>>,
    revision: i64,
    compacted: i64,
    watchers: Watchers,
}

enum Op {
    Create(String, Vec<u8>),
    Update(String, Vec<u8>, Precondition),
    Delete(String, Precondition),
    Compact(i64),
}

struct WriteOp {
    op: Op,
    reply: oneshot::Sender<Result<Arc<KeyValue>, StoreError>>,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or creates) the store in `dir/store.db` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_log_limit(dir, checkpoint::RESET_FRAMES)
    }

    /// [`SqliteStore::open`] with the log restarted past `log_frames` pages.
    fn open_with_log_limit(dir: &Path, log_frames: usize) -> Result<Self, StoreError> {
        let path = dir.join("store.db");
        // Every Secret's value is in these files: only the server's user reads
        // them (SQLite gives the log files the database file's mode).
        crate::private::dir(dir)
            .and_then(|()| crate::private::file(&path))
            .and_then(|()| crate::private::tighten(&dir.join("store.db-wal")))
            .and_then(|()| crate::private::tighten(&dir.join("store.db-shm")))
            .map_err(|e| {
                StoreError::Unavailable(format!("making {} private: {e}", dir.display()))
            })?;
        let mut writer = open_connection(&path)?;
        writer.execute_batch(SCHEMA)?;
        let checkpointer = Checkpointer::start(&mut writer, open_connection(&path)?, log_frames)?;
        let (live, revision, compacted) = load(&writer)?;
        let history = open_connection(&path)?;
        let (tx, rx) = std_mpsc::channel();
        let inner = Arc::new(Inner {
            state: RwLock::new(State {
                live,
                revision,
                compacted,
                watchers: Watchers::default(),
            }),
            writes: Mutex::new(tx),
            history: Mutex::new(history),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(writer, weak, rx, checkpointer))
            .map_err(|e| StoreError::Unavailable(format!("starting the writer thread: {e}")))?;
        Ok(Self { inner })
    }

    /// Writes a consistent copy of the store in `dir` (a store's directory, as
    /// given to [`SqliteStore::open`]) to `dest_dir/store.db`, while the store
    /// may be serving: one read transaction sees one committed state, and the
    /// writer goes on meanwhile (WAL mode). The copy is fsynced.
    pub fn backup(dir: &Path, dest_dir: &Path) -> Result<(), StoreError> {
        let src = dir.join("store.db");
        if !src.exists() {
            return Err(StoreError::Unavailable(format!(
                "{} does not exist: is this a Mosaic data dir?",
                src.display()
            )));
        }
        let dest = dest_dir.join("store.db");
        // VACUUM INTO fills an empty file and keeps its mode.
        crate::private::dir(dest_dir)
            .and_then(|()| crate::private::file(&dest))
            .map_err(|e| {
                StoreError::Unavailable(format!("making {} private: {e}", dest.display()))
            })?;
        let conn = open_connection(&src)?;
        conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()])?;
        drop(conn);
        std::fs::File::open(&dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::Unavailable(format!("syncing {}: {e}", dest.display())))?;
        Ok(())
    }

    /// How many live watchers there are.
    pub fn watcher_count(&self) -> usize {
        self.inner.state.read().unwrap().watchers.len()
    }

    /// A watch of `prefix` after `after`: the history since then (only what
    /// `filter` selects), then live changes (filed under the filter's field and
    /// value, so others never reach it).
    async fn watch_with(
        &self,
        prefix: String,
        after: i64,
        filter: Option<FieldFilter>,
    ) -> Result<WatchStream, StoreError> {
        let (live_tx, mut live_rx) = mpsc::channel(WATCH_BUFFER);
        let upto = {
            let mut state = self.inner.state.write().unwrap();
            if after < state.compacted {
                return Err(StoreError::Compacted {
                    requested: after,
                    compacted: state.compacted,
                });
            }
            state.watchers.add(prefix.clone(), filter.clone(), live_tx);
            state.revision
        };
        if after >= upto {
            return Ok(live_rx);
        }
        let inner = self.inner.clone();
        let history = tokio::task::spawn_blocking(move || {
            let conn = inner.history.lock().unwrap();
            replay(&conn, &prefix, after, upto)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            let selected = |e: &Arc<Event>| filter.as_ref().is_none_or(|f| f.selects(e));
            for e in history.into_iter().filter(selected) {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            while let Some(e) = live_rx.recv().await {
                if e.kv.mod_revision > after && tx.send(e).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// How many live keys there are.
    pub fn key_count(&self) -> usize {
        self.inner.state.read().unwrap().live.len()
    }

    async fn submit(&self, op: Op) -> Result<Arc<KeyValue>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .writes
            .lock()
            .unwrap()
            .send(WriteOp { op, reply })
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?
    }
}

/// The live key space, the current revision and the compacted revision.
type Loaded = (BTreeMap<String, Arc<KeyValue>>, i64, i64);

fn load(conn: &Connection) -> Result<Loaded, StoreError> {
    let compacted: i64 = conn
        .query_row("SELECT v FROM meta WHERE k = 'compacted'", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let max_id: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM kv", [], |r| r.get(0))?;
    let mut stmt = conn.prepare(
        "SELECT kv.id, kv.name, kv.create_revision, kv.value FROM kv \
         JOIN (SELECT MAX(id) AS id FROM kv GROUP BY name) m ON kv.id = m.id \
         WHERE kv.deleted = 0",
    )?;
    let mut live = BTreeMap::new();
    let rows = stmt.query_map([], |r| {
        Ok(KeyValue {
            mod_revision: r.get(0)?,
            key: r.get(1)?,
            create_revision: r.get(2)?,
            value: Arc::from(r.get::<_, Vec<u8>>(3)?),
        })
    })?;
    for kv in rows {
        let kv = kv?;
        live.insert(kv.key.clone(), Arc::new(kv));
    }
    Ok((live, max_id.max(compacted), compacted))
}

fn writer_loop(
    mut conn: Connection,
    inner: std::sync::Weak<Inner>,
    rx: std_mpsc::Receiver<WriteOp>,
    mut checkpointer: Checkpointer,
) {
    while let Ok(first) = rx.recv() {
        let Some(inner) = inner.upgrade() else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if batch.len() > 1 && batch.len() < MAX_BATCH {
            // Asleep, not blocked on the channel: a write arriving meanwhile
            // wakes nobody (a blocked receiver costs each sender a futex wake
            // and this thread a switch); what came is taken each gap.
            let start = std::time::Instant::now();
            loop {
                std::thread::sleep(COMMIT_GAP);
                let before = batch.len();
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                if batch.len() == before
                    || batch.len() >= MAX_BATCH
                    || start.elapsed() + COMMIT_GAP / 2 >= COMMIT_DELAY
                {
                    break;
                }
            }
        }
        let (writes, compactions): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|w| !matches!(w.op, Op::Compact(_)));
        if !writes.is_empty() {
            commit_batch(&mut conn, &inner, writes);
            checkpointer.after_commit(&conn);
        }
        for c in compactions {
            let Op::Compact(rev) = c.op else { continue };
            let _ = c.reply.send(compact(&mut conn, &inner, rev));
        }
    }
}

/// Checks, appends and commits one batch, then publishes it.
fn commit_batch(conn: &mut Connection, inner: &Inner, batch: Vec<WriteOp>) {
    let mut results: Vec<Result<Arc<KeyValue>, StoreError>> = Vec::with_capacity(batch.len());
    let mut events: Vec<Arc<Event>> = Vec::new();
    let mut overlay: HashMap<String, Option<Arc<KeyValue>>> = HashMap::new();
    let outcome = (|| -> Result<i64, StoreError> {
        let state = inner.state.read().unwrap();
        let mut rev = state.revision;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO kv (id, name, deleted, create_revision, prev_revision, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for w in &batch {
                let key = match &w.op {
                    Op::Create(k, _) | Op::Update(k, _, _) | Op::Delete(k, _) => k,
                    Op::Compact(_) => unreachable!("compactions are split out"),
                };
                let current = match overlay.get(key) {
                    Some(v) => v.clone(),
                    None => state.live.get(key).cloned(),
                };
                let checked = check(&w.op, key, current.as_deref());
                let (kind, value, create_revision) = match checked {
                    Err(e) => {
                        results.push(Err(e));
                        continue;
                    }
                    Ok(x) => x,
                };
                rev += 1;
                let prev_revision = current.as_ref().map_or(0, |c| c.mod_revision);
                let deleted = kind == EventKind::Delete;
                let create_revision = create_revision.unwrap_or(rev);
                insert.execute(params![
                    rev,
                    key,
                    deleted,
                    create_revision,
                    prev_revision,
                    value
                ])?;
                let kv = Arc::new(KeyValue {
                    key: key.clone(),
                    value,
                    create_revision,
                    mod_revision: rev,
                });
                overlay.insert(key.clone(), (!deleted).then(|| kv.clone()));
                events.push(Arc::new(Event::new(kind, kv.clone(), current)));
                results.push(Ok(kv));
            }
        }
        drop(state);
        tx.commit()?;
        Ok(rev)
    })();
    match outcome {
        Ok(rev) => {
            let mut state = inner.state.write().unwrap();
            for (key, value) in overlay {
                match value {
                    Some(kv) => state.live.insert(key, kv),
                    None => state.live.remove(&key),
                };
            }
            state.revision = rev;
            for e in &events {
                state.watchers.dispatch(e);
            }
            state.watchers.progress_if_due(rev);
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed; the batch is not acknowledged");
            let msg = e.to_string();
            for r in results.iter_mut() {
                *r = Err(StoreError::Unavailable(msg.clone()));
            }
            results.resize_with(batch.len(), || Err(StoreError::Unavailable(msg.clone())));
        }
    }
    for (w, r) in batch.into_iter().zip(results) {
        let _ = w.reply.send(r);
    }
}

type Checked = (EventKind, Arc<[u8]>, Option<i64>);

fn check(op: &Op, key: &str, current: Option<&KeyValue>) -> Result<Checked, StoreError> {
    let pre_ok = |pre: &Precondition, cur: &KeyValue| match pre {
        Precondition::None => Ok(()),
        Precondition::ModRevision(r) if *r == cur.mod_revision => Ok(()),
        Precondition::ModRevision(_) => Err(StoreError::Conflict {
            key: key.to_string(),
            current: cur.mod_revision,
        }),
    };
    match (op, current) {
        (Op::Create(_, v), None) => Ok((EventKind::Put, Arc::from(v.as_slice()), None)),
        (Op::Create(..), Some(_)) => Err(StoreError::AlreadyExists(key.to_string())),
        (Op::Update(..) | Op::Delete(..), None) => Err(StoreError::NotFound(key.to_string())),
        (Op::Update(_, v, pre), Some(cur)) => {
            pre_ok(pre, cur)?;
            Ok((
                EventKind::Put,
                Arc::from(v.as_slice()),
                Some(cur.create_revision),
            ))
        }
        (Op::Delete(_, pre), Some(cur)) => {
            pre_ok(pre, cur)?;
            Ok((
                EventKind::Delete,
                cur.value.clone(),
                Some(cur.create_revision),
            ))
        }
        (Op::Compact(_), _) => unreachable!("compactions are split out"),
    }
}

fn compact(conn: &mut Connection, inner: &Inner, rev: i64) -> Result<Arc<KeyValue>, StoreError> {
    let current = inner.state.read().unwrap().revision;
    let rev = rev.min(current);
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM kv WHERE id <= ?1 AND (deleted = 1 OR id < \
         (SELECT MAX(k2.id) FROM kv k2 WHERE k2.name = kv.name AND k2.id <= ?1))",
        params![rev],
    )?;
    tx.execute(
        "INSERT INTO meta (k, v) VALUES ('compacted', ?1) \
         ON CONFLICT (k) DO UPDATE SET v = MAX(v, excluded.v)",
        params![rev],
    )?;
    tx.commit()?;
    let mut state = inner.state.write().unwrap();
    state.compacted = state.compacted.max(rev);
    state.watchers.prune_closed();
    Ok(Arc::new(KeyValue {
        key: String::new(),
        value: Arc::from(&[][..]),
        create_revision: 0,
        mod_revision: rev,
    }))
}

fn row_kv(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        mod_revision: r.get(0)?,
        key: r.get(1)?,
        create_revision: r.get(2)?,
        value: Arc::from(r.get::<_, Vec<u8>>(3)?),
    })
}

fn list_at(conn: &Connection, req: &ListRequest<'_>, rev: i64) -> Result<ListResult, StoreError> {
    let start = req
        .after
        .map(|a| format!("{a}\0"))
        .unwrap_or_else(|| req.prefix.to_string());
    let end = prefix_end(req.prefix);
    let limit = if req.limit == 0 {
        i64::MAX
    } else {
        req.limit as i64 + 1
    };
    let mut stmt = conn.prepare_cached(
        "SELECT kv.id, kv.name, kv.create_revision, kv.value FROM kv WHERE kv.id IN \
         (SELECT MAX(id) FROM kv WHERE name >= ?1 AND name < ?2 AND id <= ?3 GROUP BY name) \
         AND kv.deleted = 0 ORDER BY kv.name LIMIT ?4",
    )?;
    let mut items: Vec<Arc<KeyValue>> = stmt
        .query_map(params![start, end, rev, limit], row_kv)?
        .map(|r| r.map(Arc::new))
        .collect::<Result<_, _>>()?;
    let more_after = if req.limit > 0 && items.len() > req.limit {
        items.truncate(req.limit);
        items.last().map(|kv| kv.key.clone())
    } else {
        None
    };
    Ok(ListResult {
        items,
        revision: rev,
        more_after,
    })
}

fn replay(
    conn: &Connection,
    prefix: &str,
    after: i64,
    upto: i64,
) -> Result<Vec<Arc<Event>>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT kv.id, kv.name, kv.create_revision, kv.value, kv.deleted, \
                p.id, p.create_revision, p.value \
         FROM kv LEFT JOIN kv p ON p.id = kv.prev_revision \
         WHERE kv.id > ?1 AND kv.id <= ?2 AND kv.name >= ?3 AND kv.name < ?4 ORDER BY kv.id",
    )?;
    let rows = stmt.query_map(params![after, upto, prefix, prefix_end(prefix)], |r| {
        let kv = Arc::new(row_kv(r)?);
        let deleted: bool = r.get(4)?;
        let prev = match r.get::<_, Option<i64>>(5)? {
            Some(id) => Some(Arc::new(KeyValue {
                key: kv.key.clone(),
                mod_revision: id,
                create_revision: r.get(6)?,
                value: Arc::from(r.get::<_, Vec<u8>>(7)?),
            })),
            None => None,
        };
        let kind = if deleted {
            EventKind::Delete
        } else {
            EventKind::Put
        };
        Ok(Arc::new(Event::new(kind, kv, prev)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Arc<KeyValue>>, StoreError>> {
        Box::pin(async move { Ok(self.inner.state.read().unwrap().live.get(key).cloned()) })
    }

    fn list<'a>(&'a self, req: ListRequest<'a>) -> BoxFuture<'a, Result<ListResult, StoreError>> {
        Box::pin(async move {
            {
                let state = self.inner.state.read().unwrap();
                match req.revision {
                    Some(r) if r < state.compacted => {
                        return Err(StoreError::Compacted {
                            requested: r,
                            compacted: state.compacted,
                        });
                    }
                    Some(r) if r > state.revision => return Err(StoreError::FutureRevision(r)),
                    Some(r) if r != state.revision => {}
                    _ => return Ok(list_live(&state, &req)),
                }
            }
            let inner = self.inner.clone();
            let prefix = req.prefix.to_string();
            let after = req.after.map(str::to_string);
            let (limit, rev) = (req.limit, req.revision.unwrap_or_default());
            tokio::task::spawn_blocking(move || {
                let conn = inner.history.lock().unwrap();
                let req = ListRequest {
                    prefix: &prefix,
                    after: after.as_deref(),
                    limit,
                    revision: Some(rev),
                };
                list_at(&conn, &req, rev)
            })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
        })
    }

    fn create(
        &self,
        key: String,
        value: Vec<u8>,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>> {
        Box::pin(self.submit(Op::Create(key, value)))
    }

    fn update(
        &self,
        key: String,
        value: Vec<u8>,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>> {
        Box::pin(self.submit(Op::Update(key, value, pre)))
    }

    fn delete(
        &self,
        key: String,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>> {
        Box::pin(self.submit(Op::Delete(key, pre)))
    }

    fn watch(&self, prefix: String, after: i64) -> BoxFuture<'_, Result<WatchStream, StoreError>> {
        Box::pin(self.watch_with(prefix, after, None))
    }

    fn watch_field(
        &self,
        prefix: String,
        after: i64,
        filter: FieldFilter,
    ) -> BoxFuture<'_, Result<WatchStream, StoreError>> {
        Box::pin(self.watch_with(prefix, after, Some(filter)))
    }

    fn revision(&self) -> i64 {
        self.inner.state.read().unwrap().revision
    }

    fn compacted_revision(&self) -> i64 {
        self.inner.state.read().unwrap().compacted
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.submit(Op::Compact(revision)).await.map(|_| ()) })
    }
}

fn list_live(state: &State, req: &ListRequest<'_>) -> ListResult {
    use std::ops::Bound;
    let start = match req.after {
        Some(a) => Bound::Excluded(a.to_string()),
        None => Bound::Included(req.prefix.to_string()),
    };
    let end = Bound::Excluded(prefix_end(req.prefix));
    let mut items = Vec::new();
    let mut more_after = None;
    for (_, kv) in state.live.range((start, end)) {
        if req.limit > 0 && items.len() == req.limit {
            more_after = items.last().map(|kv: &Arc<KeyValue>| kv.key.clone());
            break;
        }
        items.push(kv.clone());
    }
    ListResult {
        items,
        revision: state.revision,
        more_after,
    }
}

#[cfg(test)]
mod tests;
