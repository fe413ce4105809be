//! Reaching the etcd cluster: one client per member, and failover inside a
//! request (a member that is down, has no leader, or whose connection breaks
//! under the request hands it to the next, for up to [`REQUEST_TIMEOUT`]);
//! the errors it maps to 503; and the once-a-second quorum read that keeps the
//! revision, the compaction mark and readiness current.

use super::{EtcdConfig, EtcdStore, Inner, REQUEST_TIMEOUT, StoreError};
use etcd_client::{Client, ConnectOptions, TlsOptions};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
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
    pub(super) async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
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
    pub(super) async fn refresh(&self) -> Result<(), StoreError> {
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
}
