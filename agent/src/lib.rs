//! Mosaic's node agent.
//!
//! [`run`] registers this machine as an Agent (capacity, labels, version,
//! cgroup mode), heartbeats through a Lease in `mosaic-system`, watches only
//! the Tasks bound to it (`status.agent=<name>`), runs each as a process in
//! its own sandbox directory with stdout and stderr in files there, and
//! reports Running, then Finished or Failed with the real exit code or signal.
//! It talks to the control plane only through the Kubernetes API.
//!
//! Each task runs in its own cgroup ([`cgroup`]: v1, hybrid or v2) with its
//! CPU quota and weight, memory limit (no swap beyond it) and a pids limit;
//! an OOM kill is reported as MemoryLimitExceeded, and CPU and memory usage
//! are sampled into `status.usage` while it runs.
//!
//! Each run goes through its own executor process ([`executor`]) that records
//! the task's outcome durably, so tasks keep running while the agent restarts
//! and their outcomes are reported when it is back. Health checks
//! ([`health`]) kill a task that stops answering.
//!
//! When the agent is root, every task runs isolated ([`launch`]): as an
//! unprivileged user ([`users`]: `spec.user`, else the agent's task user;
//! root only with an RBAC grant), in its own PID and mount namespaces (its own
//! `/proc`, a private `/tmp`, the agent's data dir hidden but for its own
//! sandbox), with no capabilities, `no_new_privs`, a default seccomp filter
//! ([`seccomp`]) and a clean environment; everything it started ends with it.

pub mod cgroup;
mod endpoint;
pub mod enter;
mod events;
pub mod executor;
pub mod gc;
mod health;
pub mod join;
pub mod launch;
mod metrics;
pub mod ports;
mod register;
mod runner;
mod seccomp;
pub mod simulate;
mod status;
mod thp;
pub mod users;

pub use endpoint::certificate_der;
pub use register::detect_resources;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use mosaic_crds::lean::LeanTask;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The sandbox of one run of a task: its working directory (unless
/// `spec.workingDir` says otherwise) and where its stdout and stderr go.
pub fn sandbox_dir(
    data_dir: &std::path::Path,
    ns: &str,
    name: &str,
    uid: &str,
    attempt: u32,
) -> PathBuf {
    data_dir
        .join("sandboxes")
        .join(ns)
        .join(format!("{name}-{uid}"))
        .join(attempt.to_string())
}

/// Makes `dir` (and its parents) with mode 0700 for `dir` itself: only the
/// agent reads its sandboxes and executor records.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The Agent's name (default: the host name).
    pub name: String,
    /// Where task sandboxes live.
    pub data_dir: PathBuf,
    /// Resources to offer, (millicores, bytes); `None`: what the machine has.
    pub resources: Option<(u64, u64)>,
    /// Host ports tasks may be given (Mesos's default is `[31000-32000]`).
    pub ports: mosaic_crds::ports::PortRanges,
    /// Where tasks may listen besides the ports they were given ([`ports`]).
    pub port_isolation: ports::PortIsolation,
    /// How often each task's listening ports are looked at.
    pub port_check: std::time::Duration,
    /// The ports tasks are held to: the agent's `ports` (under `mosaic up`,
    /// all its agents' together, as they share the host).
    pub held_ports: mosaic_crds::ports::PortRanges,
    /// Labels for the Agent object.
    pub labels: BTreeMap<String, String>,
    /// The cgroup hierarchy root (normally `/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// How often the heartbeat Lease is renewed (it lasts four heartbeats).
    pub heartbeat: std::time::Duration,
    /// The program run as `PROGRAM executor RUN_DIR` for each task (the `mosaic` binary).
    pub executor: PathBuf,
    /// Kill the tasks when the agent stops (`mosaic up`); otherwise they run
    /// on and the next agent on this data dir adopts them.
    pub kill_tasks_on_exit: bool,
    /// Where the HTTPS endpoint (logs, metrics) listens; `None`: no endpoint.
    pub listen: Option<std::net::SocketAddr>,
    /// The host name clients reach the endpoint by (published in `status.address`).
    pub advertise_host: String,
    /// How long an ended run's sandbox and record are kept before removal.
    pub gc_delay: std::time::Duration,
    /// Who tasks run as ([`users`]).
    pub users: users::UserPolicy,
    /// Paths hidden from tasks besides the agent's data dir (the server's
    /// data dir under `mosaic up`, the agent's kubeconfig).
    pub hide: Vec<PathBuf>,
    /// The endpoint's limits (timeouts, connection cap).
    pub limits: mosaic_listener::Limits,
    /// The endpoint's serving certificate and key (PEM) from the agent's
    /// identity ([`join`]); `None`: a self-signed one made at start.
    pub serving: Option<join::Serving>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Registering the Agent object failed.
    #[error("registering agent {name}: {source}")]
    Register {
        /// The agent.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The HTTPS endpoint could not start.
    #[error("starting the agent endpoint: {0}")]
    Endpoint(#[from] endpoint::EndpointError),
    /// The task user could not be found or made.
    #[error("{0}")]
    TaskUser(String),
    /// The data dir could not be made.
    #[error("creating {path}: {source}")]
    DataDir {
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` resolves; then kills the tasks it runs if told to.
pub async fn run(
    client: Client,
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    private_dir(&cfg.data_dir).map_err(|source| AgentError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    if rustix::process::geteuid().is_root() {
        let id = users::ensure_task_user(&cfg.users.task_user).map_err(AgentError::TaskUser)?;
        if id.is_privileged() {
            return Err(AgentError::TaskUser(
                users::UserError::RootDefault(cfg.users.task_user.clone()).to_string(),
            ));
        }
    } else {
        tracing::warn!(agent = %cfg.name, "the agent is not root: tasks run as its own user, without namespaces or seccomp, and tasks naming a user are refused");
    }
    if cfg.port_isolation != ports::PortIsolation::Off
        && let Some((lo, hi)) = ports::ephemeral_overlap(&cfg.held_ports)
    {
        tracing::warn!(agent = %cfg.name, "the kernel's ephemeral ports ({lo}-{hi}, net.ipv4.ip_local_port_range) overlap the ports tasks are held to: a task whose listener takes an ephemeral port there is killed (PortNotAllocated); reserve them with net.ipv4.ip_local_reserved_ports or move the range");
    }
    let mode = cgroup::Mode::detect(&cfg.cgroup_root);
    let endpoint = match cfg.listen {
        Some(addr) => {
            Some(endpoint::Endpoint::bind(addr, &cfg.advertise_host, cfg.serving.as_ref()).await?)
        }
        None => None,
    };
    let published = endpoint
        .as_ref()
        .map(|e| (e.address.clone(), e.certificate.clone()));
    tokio::pin!(shutdown);
    // The control plane may be starting, restarting or busy: keep trying, with
    // backoff, until registered; give up only on an error a retry cannot fix.
    let mut wait = std::time::Duration::from_millis(200);
    loop {
        match register::register(&client, &cfg, &mode, published.as_ref()).await {
            Ok(()) => break,
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 401 | 403 | 422) => {
                return Err(AgentError::Register {
                    name: cfg.name.clone(),
                    source: kube::Error::Api(s),
                });
            }
            Err(e) => {
                tracing::warn!(agent = %cfg.name, error = %e, "registering the agent failed; retrying in {wait:?}");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
        }
    }
    let gc = tokio::spawn(gc::run(cfg.data_dir.clone(), cfg.gc_delay));
    let heartbeat = tokio::spawn(register::heartbeat(
        client.clone(),
        cfg.name.clone(),
        cfg.heartbeat,
    ));
    let runner = Arc::new(runner::Runner::new(client.clone(), cfg.clone(), mode));
    let server = endpoint.map(|e| {
        tokio::spawn(e.serve(
            client.clone(),
            runner.clone(),
            cfg.data_dir.clone(),
            cfg.limits.clone(),
        ))
    });
    let tasks: Api<LeanTask> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("status.agent={}", cfg.name));
    // Field ownership is no business of the agent: its watch skips it unparsed.
    let stream = watcher(tasks, wc).default_backoff();
    futures::pin_mut!(stream);
    tracing::info!(agent = %cfg.name, "agent started");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            ev = stream.next() => match ev {
                Some(Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t))) => runner.observe(t.0).await,
                Some(Ok(watcher::Event::Delete(t))) => runner.forget(&t.0).await,
                Some(Ok(watcher::Event::InitDone)) => runner.reap_orphans().await,
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::debug!(error = %e, "task watch error (retrying)"),
                None => break,
            },
        }
    }
    heartbeat.abort();
    gc.abort();
    if let Some(s) = server {
        s.abort();
    }
    if cfg.kill_tasks_on_exit {
        runner.kill_all().await;
    } else {
        runner.drain(std::time::Duration::ZERO).await;
    }
    Ok(())
}
