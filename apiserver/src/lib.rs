//! Mosaic's watched store: a Kubernetes-compatible HTTPS API over an embedded,
//! durable, revisioned key-value store.
//!
//! ```text
//!   kubectl / helm / kube-rs ──HTTPS──▶ serve (rustls, h1+h2) ──▶ http::App::handle
//!                                                                 │ authn/authz (auth)
//!                                                                 │ route → discovery | openapi | objects | list | watch
//!                                                                 ▼
//!                              registry (built-ins + CRDs) ◀── schema / admission
//!                                                                 ▼
//!                                             store::Store (SqliteStore: group commit, watch fan-out)
//! ```
//!
//! A newcomer starts at [`start`], then [`http::App::handle`], then [`store`].

pub mod admission;
pub mod apiextensions;
#[cfg(test)]
mod arbitrary_json;
pub mod audit;
pub mod auth;
mod bootstrap;
mod builtin_rules;
mod builtin_schema;
pub mod cel;
pub mod conversion;
pub mod core;
mod default_sa;
pub mod error;
pub mod event_ttl;
pub mod gc;
pub mod http;
pub mod identity;
pub mod inprocess;
pub mod namespaces;
mod paths;
pub mod pki;
pub mod private;
pub mod rbac;
pub mod registry;
pub mod schema;
mod schema_lists;
mod schema_pattern;
pub mod serve;
pub mod serving;
pub mod ssa;
pub mod stamps;
pub mod store;
pub mod task_user;
pub mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use store::Store;
use tokio::sync::oneshot;

/// How a server is started.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where the store, the PKI and the kubeconfigs live.
    pub data_dir: PathBuf,
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// How often history older than one interval is compacted away.
    pub compaction_interval: std::time::Duration,
    /// How long an Event is kept after it was last seen (kube-apiserver's `--event-ttl`).
    pub event_ttl: std::time::Duration,
    /// More Prometheus text for `/metrics` (the in-process controllers' metrics).
    pub extra_metrics: Option<fn(&mut prometheus_client::registry::Registry)>,
    /// The listener's limits (timeouts, connection cap).
    pub limits: mosaic_listener::Limits,
    /// Concurrent requests per user and in all.
    pub seats: http::seats::Limits,
    /// Where to append the audit log (one JSON line per request), if anywhere.
    pub audit_log: Option<PathBuf>,
    /// The etcd cluster to keep state in; `None`: the embedded store in `data_dir`.
    pub etcd: Option<store::EtcdConfig>,
    /// More names and addresses for the serving certificate (a load balancer's).
    pub tls_sans: Vec<String>,
}

impl ServerConfig {
    /// The embedded store in `data_dir`, serving on `listen`, with the defaults.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            compaction_interval: std::time::Duration::from_secs(300),
            event_ttl: std::time::Duration::from_secs(3600),
            extra_metrics: None,
            limits: Default::default(),
            seats: Default::default(),
            audit_log: None,
            etcd: None,
            tls_sans: Vec::new(),
        }
    }
}

/// The files of `DATA_DIR/pki` every replica of one cluster shares.
const SHARED_IDENTITY: [&str; 7] = [
    "ca.key",
    "ca.crt",
    "agent-ca.key",
    "agent-ca.crt",
    "admin.token",
    "agent.token",
    "service-account.key",
];

/// Opens the store the configuration names (with etcd: after adopting or
/// publishing the cluster identity, so every replica has the same).
async fn open_store(cfg: &ServerConfig) -> Result<Arc<dyn Store>, StartError> {
    let Some(etcd) = &cfg.etcd else {
        return Ok(Arc::new(store::sqlite::SqliteStore::open(
            &cfg.data_dir.join("store"),
        )?));
    };
    #[cfg(feature = "etcd")]
    {
        let store = store::etcd::EtcdStore::connect(etcd).await?;
        store
            .share_identity(&cfg.data_dir, &SHARED_IDENTITY)
            .await?;
        // Made here when no replica made it yet; then published (a replica that
        // published first wins, and its files replace these).
        pki::load_or_create(&cfg.data_dir, &[])?;
        store
            .share_identity(&cfg.data_dir, &SHARED_IDENTITY)
            .await?;
        Ok(Arc::new(store))
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = (etcd, SHARED_IDENTITY);
        Err(StartError::Store(store::StoreError::Unavailable(
            "this mosaic binary was built without etcd support: build it with `--features etcd`"
                .into(),
        )))
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("opening the store")]
    Store(#[from] store::StoreError),
    /// The PKI could not be loaded or made.
    #[error("cluster credentials")]
    Pki(#[from] pki::PkiError),
    /// TLS could not be set up.
    #[error("TLS")]
    Tls(#[from] serve::TlsError),
    /// The listen address could not be bound.
    #[error("listening on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The data dir could not be made private.
    #[error("making the data dir {path} private (0700)")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Built-in objects could not be written.
    #[error("writing built-in objects: {0}")]
    Bootstrap(String),
    /// The audit log could not be opened.
    #[error("opening the audit log {path}")]
    Audit {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A running server.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The URL clients use.
    pub url: String,
    /// The request handler (also usable in-process).
    pub app: Arc<http::App>,
    /// `DATA_DIR/kubeconfig`.
    pub admin_kubeconfig: PathBuf,
    /// `DATA_DIR/agent.kubeconfig`.
    pub agent_kubeconfig: PathBuf,
    /// The admin identity's token (for in-process clients).
    pub admin_token: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting connections and waits for the listener to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// A tower service for in-process clients, acting as the admin.
    pub fn in_process(&self) -> inprocess::InProcess {
        inprocess::InProcess::new(self.app.clone(), auth::admin_user())
    }

    /// A tower service for the in-process controllers, acting as their own
    /// least-privilege identity (`system:mosaic:controllers`).
    pub fn controllers(&self) -> inprocess::InProcess {
        inprocess::InProcess::new(self.app.clone(), auth::controllers_user())
    }

    /// Waits until the listener ends (it ends only on [`RunningServer::stop`]).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Opens the store, writes the built-in objects and credentials, and starts serving.
pub async fn start(cfg: ServerConfig) -> Result<RunningServer, StartError> {
    private::dir(&cfg.data_dir).map_err(|source| StartError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let store = open_store(&cfg).await?;
    let registry = Arc::new(registry::Registry::new());
    bootstrap::run(store.as_ref(), &registry)
        .await
        .map_err(StartError::Bootstrap)?;
    // Every namespace's `default` ServiceAccount, as kube-controller-manager makes them.
    default_sa::ensure_all(store.as_ref(), &registry)
        .await
        .map_err(|e| StartError::Bootstrap(e.to_string()))?;

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let url = if host.contains(':') {
        format!("https://[{host}]:{}", addr.port())
    } else {
        format!("https://{host}:{}", addr.port())
    };
    let mut hosts = vec![host.clone()];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        hosts.push(h.trim().to_string());
    }
    hosts.extend(cfg.tls_sans.iter().cloned());
    hosts.retain(|h| !h.is_empty());
    let pki = pki::load_or_create(&cfg.data_dir, &hosts)?;
    let admin_kubeconfig = cfg.data_dir.join("kubeconfig");
    let agent_kubeconfig = cfg.data_dir.join("agent.kubeconfig");
    pki::write_atomic(
        &admin_kubeconfig,
        pki::kubeconfig(&url, &pki.ca_pem, "admin", &pki.admin_token).as_bytes(),
        true,
    )?;
    pki::write_atomic(
        &agent_kubeconfig,
        pki::kubeconfig(&url, &pki.ca_pem, "agent", &pki.agent_token).as_bytes(),
        true,
    )?;
    let (tls, serving) = serve::acceptor(&pki.serving_cert_pem, &pki.serving_key_pem, &pki.ca_pem)?;
    tokio::spawn(serving::renew(
        serving,
        cfg.data_dir.clone(),
        hosts.clone(),
        std::time::Duration::from_secs(3600),
    ));

    let audit = match &cfg.audit_log {
        Some(path) => Some(
            audit::AuditLog::open(path).map_err(|source| StartError::Audit {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let rbac = rbac::cache::PolicyCache::start(store.clone()).await?;
    let core = Arc::new(core::Core {
        namespaces: namespaces::ActiveNamespaces::start(store.clone()),
        store: store.clone(),
        registry,
    });
    gc::spawn(&core);
    let app = Arc::new(http::App {
        core,
        authn: auth::Authenticator::new(
            &pki.admin_token,
            &pki.agent_token,
            pki.service_account_key.as_bytes(),
        ),
        rbac,
        audit,
        metrics: Default::default(),
        external_url: url.clone(),
        extra_metrics: cfg.extra_metrics,
        connections: Default::default(),
        data_dir: cfg.data_dir.clone(),
        seats: http::seats::Seats::new(cfg.seats),
        agent_tls: serve::agent_client_config(&cfg.data_dir, &pki.agent_ca_pem)?,
    });
    tokio::spawn(reload_tokens(
        Arc::downgrade(&app),
        cfg.data_dir.clone(),
        (pki.admin_token.clone(), pki.agent_token.clone()),
    ));
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(serve::run(
        listener,
        tls,
        app.clone(),
        cfg.limits.clone(),
        async {
            let _ = rx.await;
        },
    ));
    tokio::spawn(event_ttl::run(store.clone(), cfg.event_ttl));
    tokio::spawn(compaction_loop(store, cfg.compaction_interval));
    tracing::info!(%url, "serving");
    Ok(RunningServer {
        addr,
        url,
        app,
        admin_kubeconfig,
        agent_kubeconfig,
        admin_token: pki.admin_token.clone(),
        shutdown: Some(tx),
        task,
    })
}

/// Every interval, drops history older than the revision seen one interval
/// before (kube-apiserver's policy for etcd, whose default interval is 5 minutes).
async fn compaction_loop(store: Arc<dyn Store>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(100)));
    tick.tick().await;
    let mut previous = store.revision();
    loop {
        tick.tick().await;
        if previous > store.compacted_revision()
            && let Err(e) = store.compact(previous).await
        {
            tracing::warn!(error = %e, "compaction failed");
        }
        previous = store.revision();
    }
}

/// Takes rotated admin and agent tokens (`mosaic rotate-credentials`) from
/// `data_dir/pki` within two seconds, while the server lives.
async fn reload_tokens(
    app: std::sync::Weak<http::App>,
    data_dir: PathBuf,
    mut current: (String, String),
) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let Some(app) = app.upgrade() else { return };
        match pki::tokens(&data_dir) {
            Ok(now) if now != current && !now.0.is_empty() && !now.1.is_empty() => {
                app.authn.rotate(&now.0, &now.1);
                tracing::info!("took rotated admin and agent tokens");
                current = now;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the tokens"),
        }
    }
}
