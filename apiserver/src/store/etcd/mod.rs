//! The store on an etcd v3 cluster, so several `mosaic server` replicas share
//! one state and any of them can serve. etcd's revisions are the resource
//! versions (a watch started on one replica resumes on another), every write
//! is a `Txn` comparing the key's mod revision, and watches are etcd watches.
//!
//! Keys live under a root prefix (`/mosaic` by default). Beside them, outside
//! the API's key space, `<root>!compacted` records the last compaction (a
//! compare-and-swap on its version, so replicas compact once per interval, as
//! kube-apiserver does) and `<root>!identity/<file>` the cluster identity the
//! replicas share ([`EtcdStore::share_identity`]).

use super::{
    EtcdConfig, Event, EventKind, KeyValue, ListRequest, ListResult, Precondition, Store,
    StoreError, WatchStream, prefix_end, watchers::WATCH_BUFFER,
};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures::future::BoxFuture;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

mod members;

use members::unavailable;

/// How long one request to etcd may take before the API answers 503. Longer
/// than etcd's own request timeout (5 s plus two election timeouts: 7 s with
/// its default flags), so that a proposal lost with a killed leader comes back
/// from etcd as a timeout (Unavailable), which the next member is asked to
/// carry out, rather than this deadline ending the request first. Under load
/// the election after a leader's death took long enough for that to happen.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The etcd backend. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// One client per member: a request goes to the member that answered last,
    /// and moves on to the next when that one is down or has no leader.
    clients: Vec<Client>,
    current: AtomicUsize,
    prefix: String,
    revision: AtomicI64,
    compacted: AtomicI64,
    /// The version of the compaction key when last read (for the compare-and-swap).
    compact_version: AtomicI64,
    /// Whether the last quorum read succeeded.
    healthy: AtomicBool,
    last_error: std::sync::Mutex<String>,
}

impl EtcdStore {
    fn meta_key(&self, name: &str) -> String {
        format!("{}!{name}", self.inner.prefix)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    fn saw(&self, header: Option<&etcd_client::ResponseHeader>) {
        if let Some(h) = header {
            self.inner
                .revision
                .fetch_max(h.revision(), Ordering::Relaxed);
        }
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Arc<KeyValue> {
        let key = String::from_utf8_lossy(kv.key());
        Arc::new(KeyValue {
            key: key
                .strip_prefix(self.inner.prefix.as_str())
                .unwrap_or(&key)
                .to_string(),
            value: kv.value().into(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// Makes the cluster identity (`files` under `data_dir/pki`) the same on
    /// every replica. A replica that has the whole set publishes it in one
    /// transaction, unless another replica's set is there already; then etcd's
    /// set is written here. So the first complete set wins, whole (a CA
    /// certificate never pairs with another replica's key), and is everyone's.
    /// Each replica still signs its own serving certificate.
    pub async fn share_identity(&self, data_dir: &Path, files: &[&str]) -> Result<(), StoreError> {
        let dir = data_dir.join("pki");
        let key = |name: &str| self.meta_key(&format!("identity/{name}"));
        let local: Vec<(String, Vec<u8>)> = files
            .iter()
            .filter_map(|n| std::fs::read(dir.join(n)).ok().map(|v| (key(n), v)))
            .collect();
        if let Some(first) = files.first()
            && local.len() == files.len()
        {
            let txn = Txn::new()
                .when([Compare::create_revision(key(first), CompareOp::Equal, 0)])
                .and_then(
                    local
                        .into_iter()
                        .map(|(k, v)| TxnOp::put(k, v, None))
                        .collect::<Vec<_>>(),
                );
            self.txn(txn).await?;
        }
        let prefix = key("");
        let resp = self
            .call(|c| {
                let prefix = prefix.clone();
                async move {
                    c.kv_client()
                        .get(prefix, Some(GetOptions::new().with_prefix()))
                        .await
                }
            })
            .await?;
        for kv in resp.kvs() {
            let name = String::from_utf8_lossy(kv.key());
            let Some(name) = name.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let path = dir.join(name);
            crate::pki::write_atomic(&path, kv.value(), true)
                .map_err(|e| unavailable(format!("writing {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// A write guarded by `compare`; on failure the key's current value tells
    /// which error it was.
    async fn guarded(
        &self,
        key: &str,
        compare: Compare,
        op: TxnOp,
    ) -> Result<(bool, etcd_client::TxnResponse), StoreError> {
        let full = self.full(key);
        let txn = Txn::new()
            .when([compare])
            .and_then([op])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.txn(txn).await?;
        Ok((resp.succeeded(), resp))
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse, StoreError> {
        let resp = self
            .call(|c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        self.saw(resp.header());
        Ok(resp)
    }

    fn current_of(&self, resp: &etcd_client::TxnResponse) -> Option<Arc<KeyValue>> {
        resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|k| self.kv(k)),
            _ => None,
        })
    }

    fn revision_of(resp: &etcd_client::TxnResponse) -> i64 {
        resp.header().map(|h| h.revision()).unwrap_or_default()
    }

    fn precondition(&self, key: &str, pre: Precondition) -> Compare {
        let full = self.full(key);
        match pre {
            Precondition::ModRevision(r) => Compare::mod_revision(full, CompareOp::Equal, r),
            Precondition::None => Compare::create_revision(full, CompareOp::Greater, 0),
        }
    }

    fn failed(&self, key: &str, resp: &etcd_client::TxnResponse) -> StoreError {
        match self.current_of(resp) {
            None => StoreError::NotFound(key.to_string()),
            Some(c) => StoreError::Conflict {
                key: key.to_string(),
                current: c.mod_revision,
            },
        }
    }
}

impl Store for EtcdStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Arc<KeyValue>>, StoreError>> {
        Box::pin(async move {
            let full = self.full(key);
            let resp = self
                .call(|c| {
                    let full = full.clone();
                    async move { c.kv_client().get(full, None).await }
                })
                .await?;
            self.saw(resp.header());
            Ok(resp.kvs().first().map(|k| self.kv(k)))
        })
    }

    fn list<'a>(&'a self, req: ListRequest<'a>) -> BoxFuture<'a, Result<ListResult, StoreError>> {
        Box::pin(async move {
            let start = match req.after {
                Some(a) => format!("{}{a}\0", self.inner.prefix),
                None => self.full(req.prefix),
            };
            let mut opts = GetOptions::new().with_range(self.full(&prefix_end(req.prefix)));
            if req.limit > 0 {
                opts = opts.with_limit(req.limit as i64);
            }
            if let Some(r) = req.revision {
                opts = opts.with_revision(r);
            }
            let resp = match self
                .call(|c| {
                    let (start, opts) = (start.clone(), opts.clone());
                    async move { c.kv_client().get(start, Some(opts)).await }
                })
                .await
            {
                Ok(r) => r,
                Err(StoreError::Compacted { .. }) => {
                    return Err(StoreError::Compacted {
                        requested: req.revision.unwrap_or_default(),
                        compacted: self.compacted_revision(),
                    });
                }
                Err(StoreError::FutureRevision(_)) => {
                    return Err(StoreError::FutureRevision(req.revision.unwrap_or_default()));
                }
                Err(e) => return Err(e),
            };
            self.saw(resp.header());
            let items: Vec<_> = resp.kvs().iter().map(|k| self.kv(k)).collect();
            let more_after = if resp.more() {
                items.last().map(|k| k.key.clone())
            } else {
                None
            };
            Ok(ListResult {
                items,
                revision: req
                    .revision
                    .unwrap_or_else(|| resp.header().map(|h| h.revision()).unwrap_or_default()),
                more_after,
            })
        })
    }

    fn create(
        &self,
        key: String,
        value: Vec<u8>,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>> {
        Box::pin(async move {
            let full = self.full(&key);
            let compare = Compare::create_revision(full.clone(), CompareOp::Equal, 0);
            let (ok, resp) = self
                .guarded(&key, compare, TxnOp::put(full, value.clone(), None))
                .await?;
            if !ok {
                return Err(StoreError::AlreadyExists(key));
            }
            let rev = Self::revision_of(&resp);
            Ok(Arc::new(KeyValue {
                key,
                value: value.into(),
                create_revision: rev,
                mod_revision: rev,
            }))
        })
    }

    fn update(
        &self,
        key: String,
        value: Vec<u8>,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>> {
        Box::pin(async move {
            let full = self.full(&key);
            let put = TxnOp::put(full, value.clone(), Some(PutOptions::new().with_prev_key()));
            let (ok, resp) = self
                .guarded(&key, self.precondition(&key, pre), put)
                .await?;
            if !ok {
                return Err(self.failed(&key, &resp));
            }
            let create_revision = resp
                .op_responses()
                .into_iter()
                .find_map(|r| match r {
                    TxnOpResponse::Put(p) => p.prev_key().map(|k| k.create_revision()),
                    _ => None,
                })
                .unwrap_or_default();
            Ok(Arc::new(KeyValue {
                key,
                value: value.into(),
                create_revision,
                mod_revision: Self::revision_of(&resp),
            }))
        })
    }

    fn delete(
        &self,
        key: String,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<Arc<KeyValue>, StoreError>> {
        Box::pin(async move {
            let full = self.full(&key);
            let del = TxnOp::delete(
                full,
                Some(etcd_client::DeleteOptions::new().with_prev_key()),
            );
            let (ok, resp) = self
                .guarded(&key, self.precondition(&key, pre), del)
                .await?;
            if !ok {
                return Err(self.failed(&key, &resp));
            }
            let prev = resp.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(|k| self.kv(k)),
                _ => None,
            });
            let prev = prev.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            Ok(Arc::new(KeyValue {
                mod_revision: Self::revision_of(&resp),
                ..(*prev).clone()
            }))
        })
    }

    fn watch(&self, prefix: String, after: i64) -> BoxFuture<'_, Result<WatchStream, StoreError>> {
        Box::pin(async move {
            // etcd confirms a watch before it reports its start compacted: ask
            // the mark first (kept current by every replica's compactions, and
            // by watches that etcd cancelled for compaction, below).
            let compacted = self.compacted_revision();
            if after < compacted {
                return Err(StoreError::Compacted {
                    requested: after,
                    compacted,
                });
            }
            let full = self.full(&prefix);
            let opts = WatchOptions::new()
                .with_range(self.full(&prefix_end(&prefix)))
                .with_start_revision(after + 1)
                .with_prev_key();
            // The first answer says whether the watch exists or its start is compacted.
            let (mut stream, first) = self
                .call(|c| {
                    let (full, opts) = (full.clone(), opts.clone());
                    async move {
                        let mut stream = c.watch_client().watch(full, Some(opts)).await?;
                        let first = stream.message().await?;
                        Ok((stream, first))
                    }
                })
                .await?;
            match first {
                Some(r) if r.canceled() && r.compact_revision() > 0 => {
                    return Err(StoreError::Compacted {
                        requested: after,
                        compacted: r.compact_revision(),
                    });
                }
                Some(r) if r.canceled() => return Err(unavailable(r.cancel_reason())),
                Some(_) => {}
                None => return Err(unavailable("the watch stream closed at once")),
            }
            let (tx, rx) = mpsc::channel(WATCH_BUFFER);
            let this = self.clone();
            tokio::spawn(async move {
                // The stream ends (and the API's watch with it, to be resumed by
                // the client) on any error, cancellation or compaction.
                while let Ok(Some(resp)) = stream.message().await {
                    if resp.canceled() {
                        // Compacted under the watch: the client's next watch
                        // from here gets 410 at once and relists.
                        this.inner
                            .compacted
                            .fetch_max(resp.compact_revision(), Ordering::Relaxed);
                        return;
                    }
                    this.saw(resp.header());
                    for e in resp.events() {
                        let Some(kv) = e.kv() else { continue };
                        let prev = e.prev_kv().map(|p| this.kv(p));
                        let event = match e.event_type() {
                            etcd_client::EventType::Put => {
                                Event::new(EventKind::Put, this.kv(kv), prev)
                            }
                            etcd_client::EventType::Delete => {
                                // etcd's delete event has an empty value: carry the last one.
                                let Some(p) = prev.clone() else { continue };
                                let last = KeyValue {
                                    mod_revision: kv.mod_revision(),
                                    ..(*p).clone()
                                };
                                Event::new(EventKind::Delete, Arc::new(last), prev)
                            }
                        };
                        if tx.send(Arc::new(event)).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok(rx)
        })
    }

    fn revision(&self) -> i64 {
        self.inner.revision.load(Ordering::Relaxed)
    }

    fn compacted_revision(&self) -> i64 {
        self.inner.compacted.load(Ordering::Relaxed)
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            // Only one replica compacts per interval: the one whose compare on the
            // mark's version wins.
            let key = self.meta_key("compacted");
            let seen = self.inner.compact_version.load(Ordering::Relaxed);
            let txn = Txn::new()
                .when([Compare::version(key.clone(), CompareOp::Equal, seen)])
                .and_then([TxnOp::put(key, revision.to_string(), None)]);
            let resp = self.txn(txn).await?;
            if !resp.succeeded() {
                return self.refresh().await;
            }
            match self
                .call(|c| async move { c.kv_client().compact(revision, None).await })
                .await
            {
                Ok(_) => {}
                Err(StoreError::Compacted { .. }) => {}
                Err(e) => return Err(e),
            }
            self.inner.compacted.fetch_max(revision, Ordering::Relaxed);
            self.refresh().await
        })
    }

    /// Whether the cluster answered the last quorum read (at most a second
    /// ago) and every request since, and if not why.
    fn ready(&self) -> Result<(), String> {
        if self.inner.healthy.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(self.inner.last_error.lock().unwrap().clone())
        }
    }
}

#[cfg(test)]
mod tests;
