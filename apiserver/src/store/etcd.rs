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
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, TlsOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::future::BoxFuture;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long one request to etcd may take before the API answers 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

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

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("etcd: {e}"))
}

fn timeout_error() -> StoreError {
    StoreError::Unavailable(format!(
        "etcd did not answer within {}s: is a quorum of its members up?",
        REQUEST_TIMEOUT.as_secs()
    ))
}

/// Whether a failure means the member is down, unreachable or without a
/// leader, so another member may be asked. That includes a connection that
/// broke under the request (the member died as it was sent): the request then
/// goes to another member, and should the dead one have committed it first,
/// the retry's compare fails (409 or 404), never a second, different write.
fn member_unavailable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            // A connection that broke under the request (the member was
            // killed) shows as Unknown or Cancelled with a transport error under it.
            let broken = s.message().contains("transport error")
                || std::error::Error::source(s).is_some_and(|e| e.is::<tonic::transport::Error>());
            s.code() == tonic::Code::Unavailable
                || (matches!(s.code(), tonic::Code::Unknown | tonic::Code::Cancelled) && broken)
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

fn map_error(e: etcd_client::Error) -> StoreError {
    let text = e.to_string();
    if text.contains("required revision is a future revision") {
        return StoreError::FutureRevision(0);
    }
    if text.contains("required revision has been compacted") {
        // The caller knows which revision it asked for.
        return StoreError::Compacted {
            requested: 0,
            compacted: 0,
        };
    }
    unavailable(text)
}

fn read_pem(path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| unavailable(format!("reading {}: {e}", path.display())))
}

impl EtcdStore {
    /// Connects to the cluster (no request is made yet) and starts the loop
    /// that keeps the revision, the compaction mark and the health current.
    pub async fn connect(cfg: &EtcdConfig) -> Result<Self, StoreError> {
        if cfg.endpoints.is_empty() {
            return Err(unavailable("no endpoints given (--etcd-endpoints)"));
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true)
            // A member without a leader refuses at once (and ends its watches)
            // rather than letting requests wait for a quorum that may not come.
            .with_require_leader(true);
        if let Some(ca) = &cfg.ca_file {
            let mut tls =
                TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(read_pem(ca)?));
            if let (Some(c), Some(k)) = (&cfg.cert_file, &cfg.key_file) {
                tls = tls.identity(etcd_client::Identity::from_pem(read_pem(c)?, read_pem(k)?));
            }
            opts = opts.with_tls(tls);
        }
        let mut clients = Vec::new();
        for e in &cfg.endpoints {
            // Lazy: a member that is down now is tried again on each request.
            clients.push(
                Client::connect([e], Some(opts.clone()))
                    .await
                    .map_err(unavailable)?,
            );
        }
        let prefix = cfg.prefix.trim_end_matches('/').to_string();
        let store = Self {
            inner: Arc::new(Inner {
                clients,
                current: AtomicUsize::new(0),
                prefix,
                revision: AtomicI64::new(0),
                compacted: AtomicI64::new(0),
                compact_version: AtomicI64::new(0),
                healthy: AtomicBool::new(false),
                last_error: Default::default(),
            }),
        };
        store.refresh().await?;
        let weak = Arc::downgrade(&store.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let _ = EtcdStore { inner }.refresh().await;
            }
        });
        Ok(store)
    }

    /// Runs one request on the current member, moving on to the next ones while
    /// they refuse it unprocessed (down, or without a leader during an
    /// election), round after round, for at most [`REQUEST_TIMEOUT`] in all. A
    /// timeout is not retried: the request may have been carried out.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let r = self.call_members(f).await;
        // Readiness follows every answer, not only the periodic read.
        match &r {
            Ok(_) => self.inner.healthy.store(true, Ordering::Relaxed),
            Err(StoreError::Unavailable(m)) => {
                self.inner.healthy.store(false, Ordering::Relaxed);
                *self.inner.last_error.lock().unwrap() = m.clone();
            }
            Err(_) => {}
        }
        r
    }

    async fn call_members<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let clients = &self.inner.clients;
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let mut idx = self.inner.current.load(Ordering::Relaxed);
        let mut last = String::new();
        loop {
            for _ in 0..clients.len() {
                match tokio::time::timeout_at(deadline, f(clients[idx].clone())).await {
                    Ok(Ok(v)) => {
                        self.inner.current.store(idx, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Ok(Err(e)) if member_unavailable(&e) => last = e.to_string(),
                    Ok(Err(e)) => return Err(map_error(e)),
                    Err(_) => return Err(timeout_error()),
                }
                idx = (idx + 1) % clients.len();
            }
            let pause = tokio::time::Instant::now() + Duration::from_millis(100);
            if pause >= deadline {
                return Err(unavailable(format!(
                    "no member of the etcd cluster took the request within {}s (is a quorum up?); last error: {last}",
                    REQUEST_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep_until(pause).await;
        }
    }

    /// A quorum read of the compaction mark: it refreshes the revision, the
    /// compacted revision and the health (false when no quorum answers).
    async fn refresh(&self) -> Result<(), StoreError> {
        let key = self.meta_key("compacted");
        match self
            .call(|c| {
                let key = key.clone();
                async move { c.kv_client().get(key, None).await }
            })
            .await
        {
            Ok(resp) => {
                self.saw(resp.header());
                if let Some(k) = resp.kvs().first() {
                    self.inner
                        .compact_version
                        .store(k.version(), Ordering::Relaxed);
                    let rev = std::str::from_utf8(k.value())
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .unwrap_or_default();
                    self.inner.compacted.fetch_max(rev, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the cluster answered the last quorum read (at most a second ago),
    /// and if not why.
    pub fn health(&self) -> Result<(), String> {
        if self.inner.healthy.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(self.inner.last_error.lock().unwrap().clone())
        }
    }

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

    fn ready(&self) -> Result<(), String> {
        self.health()
    }
}

#[cfg(test)]
mod tests {
    //! The store conformance suite against a real etcd member (Debian's
    //! etcd-server; `$ETCD` or /usr/bin/etcd), one per test.
    use super::*;
    use crate::store::conformance;

    struct Member {
        child: std::process::Child,
        _dir: tempfile::TempDir,
        url: String,
    }

    impl Drop for Member {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    async fn store() -> (Member, EtcdStore) {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (port(), port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let bin = std::env::var("ETCD").unwrap_or_else(|_| "/usr/bin/etcd".into());
        let child = std::process::Command::new(&bin)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} (apt-get install etcd-server): {e}"));
        let member = Member {
            child,
            _dir: dir,
            url,
        };
        let cfg = EtcdConfig {
            endpoints: vec![member.url.clone()],
            prefix: "/test".into(),
            ..Default::default()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match EtcdStore::connect(&cfg).await {
                Ok(s) => return (member, s),
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("etcd at {} did not answer in 20 s: {e}", member.url)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    #[tokio::test]
    async fn writes_and_revisions() {
        let (_m, s) = store().await;
        conformance::writes_and_revisions(&s).await;
    }

    #[tokio::test]
    async fn list_pages_at_a_past_revision() {
        let (_m, s) = store().await;
        conformance::list_pages_at_a_past_revision(&s).await;
    }

    #[tokio::test]
    async fn watch_replays_then_follows() {
        let (_m, s) = store().await;
        conformance::watch_replays_then_follows(&s).await;
    }

    #[tokio::test]
    async fn compaction() {
        let (_m, s) = store().await;
        conformance::compaction(&s).await;
    }

    #[tokio::test]
    async fn replicas_compact_once_per_interval() {
        let (m, a) = store().await;
        let b = EtcdStore::connect(&EtcdConfig {
            endpoints: vec![m.url.clone()],
            prefix: "/test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        for i in 0..10 {
            a.create(format!("/k/{i}"), vec![1]).await.unwrap();
        }
        // Both saw the same mark; A compacts first, so B's proposal loses the
        // compare-and-swap and B adopts A's compaction instead of making its own.
        let r = a.revision();
        a.compact(r - 5).await.unwrap();
        b.compact(r - 2).await.unwrap();
        assert_eq!(b.compacted_revision(), r - 5);
        assert_eq!(a.compacted_revision(), r - 5);
        // The next interval: B's turn, seen by A within its next refresh.
        b.compact(r - 2).await.unwrap();
        assert_eq!(b.compacted_revision(), r - 2);
        a.refresh().await.unwrap();
        assert_eq!(a.compacted_revision(), r - 2);
    }

    #[tokio::test]
    async fn the_identity_is_published_once_and_adopted_by_the_others() {
        let (_m, s) = store().await;
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(first.path().join("pki")).unwrap();
        std::fs::write(first.path().join("pki/ca.crt"), b"first").unwrap();
        s.share_identity(first.path(), &["ca.crt"]).await.unwrap();
        // A second replica with a CA of its own adopts the published one.
        std::fs::create_dir_all(second.path().join("pki")).unwrap();
        std::fs::write(second.path().join("pki/ca.crt"), b"second").unwrap();
        s.share_identity(second.path(), &["ca.crt"]).await.unwrap();
        assert_eq!(
            std::fs::read(second.path().join("pki/ca.crt")).unwrap(),
            b"first"
        );
        // The identity lives outside the API's key space.
        let all = s
            .list(ListRequest {
                prefix: "/",
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(all.items.is_empty(), "{:?}", all.items);
    }
}
