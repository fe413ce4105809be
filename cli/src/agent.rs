//! `mosaic agent`: the node agent, until SIGINT or SIGTERM.

use crate::cluster;
use crate::server::{init_logging, wait_for_signal};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Flags of `mosaic agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The kubeconfig to join with (DATA_DIR/agent.kubeconfig of `mosaic server`).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The Agent's name (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where task sandboxes live.
    #[arg(long, default_value = "./mosaic-agent-data")]
    pub data_dir: PathBuf,
    /// Resources to offer, e.g. `cpus=4,memory=8Gi,ports=[31000-32000]`
    /// (default: what the machine has, and ports 31000-32000 as Mesos agents).
    #[arg(long, default_value = "")]
    pub resources: String,
    /// Labels for the Agent, e.g. `topology.mosaic.dev/rack=r1`.
    #[arg(long, default_value = "")]
    pub labels: String,
    /// Where the cgroup hierarchies are mounted (v1, hybrid or v2).
    #[arg(long, default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// Seconds between heartbeats (Lease renewals); the Lease lasts four of them.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_seconds: u64,
    /// Kill the running tasks when the agent stops. Without it they run on,
    /// and the next agent started on this data dir adopts them.
    #[arg(long)]
    pub kill_tasks_on_exit: bool,
    /// Where the agent's HTTPS endpoint (task logs, /metrics) listens; port 0 picks a free one.
    #[arg(long, default_value = "0.0.0.0:5051")]
    pub listen: std::net::SocketAddr,
    /// The host name or address clients reach the endpoint by
    /// (default: the listen address, or the host name when that is 0.0.0.0).
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// Run simulated agents for scale tests: no processes; a task goes Running,
    /// then Finished after its `mosaic.dev/simulate-duration` annotation (e.g. "30s").
    #[arg(long)]
    pub simulate: bool,
    /// With --simulate: how many simulated agents this process runs (named NAME-0, NAME-1, ...).
    #[arg(long, default_value_t = 1, requires = "simulate")]
    pub count: usize,
    /// How long an ended task's sandbox (its output) is kept, e.g. 24h, 30m.
    #[arg(long, default_value = "24h")]
    pub gc_delay: String,
    #[command(flatten)]
    pub users: TaskUserArgs,
    #[command(flatten)]
    pub ports: PortArgs,
    #[command(flatten)]
    pub listener: crate::limits::ListenerArgs,
}

/// Where tasks may listen (`mosaic agent` and `mosaic up`), as Mesos's
/// `network/ports` isolator holds them.
#[derive(Args, Clone, Debug)]
pub struct PortArgs {
    /// Which listening ports tasks are held to: `range` (within the agent's
    /// `ports` resource, only the ports a task was given), `all` (no port
    /// but those given), `off`. A task listening where it may not is killed
    /// (reason PortNotAllocated).
    #[arg(long, default_value = "range")]
    pub port_isolation: mosaic_agent::ports::PortIsolation,
    /// How often each task's listening ports are looked at, e.g. 5s.
    #[arg(long, default_value = "5s")]
    pub port_check_interval: String,
}

impl PortArgs {
    /// The policy and the interval.
    pub fn policy(
        &self,
    ) -> anyhow::Result<(mosaic_agent::ports::PortIsolation, std::time::Duration)> {
        let every = cluster::parse_duration(&self.port_check_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| {
                format!(
                    "--port-check-interval {:?} is not a positive duration like 5s or 500ms",
                    self.port_check_interval
                )
            })?;
        Ok((self.port_isolation, every))
    }
}

/// Who tasks run as (`mosaic agent` and `mosaic up`).
#[derive(Args, Clone, Debug)]
pub struct TaskUserArgs {
    /// The unprivileged user tasks run as when they name none (never root;
    /// the default `mosaic-task` is created as a system account when missing).
    #[arg(long, default_value = mosaic_agent::users::DEFAULT_TASK_USER)]
    pub task_user: String,
    /// Users (names or uids, comma-separated) tasks may name in spec.user
    /// without an RBAC grant; root always needs the grant.
    #[arg(long, value_delimiter = ',')]
    pub allowed_task_users: Vec<String>,
}

impl TaskUserArgs {
    /// The agent's policy.
    pub fn policy(&self) -> mosaic_agent::users::UserPolicy {
        mosaic_agent::users::UserPolicy {
            task_user: self.task_user.clone(),
            allowed: self.allowed_task_users.clone(),
        }
    }
}

/// Runs the agent until a signal.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    init_logging();
    crate::limits::raise_open_files();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (port_isolation, port_check) = args.ports.policy()?;
        let ports = cluster::parse_ports(&args.resources)?;
        let mut cfg = mosaic_agent::AgentConfig {
            name: args.name.unwrap_or_else(cluster::hostname),
            data_dir: std::path::absolute(&args.data_dir).unwrap_or(args.data_dir),
            users: args.users.policy(),
            limits: args.listener.limits(),
            // The agent's own credentials are no business of its tasks.
            hide: args
                .kubeconfig
                .iter()
                .map(|k| std::path::absolute(k).unwrap_or_else(|_| k.clone()))
                .collect(),
            resources: Some(cluster::parse_resources(&args.resources)?),
            ports: ports.clone(),
            labels: cluster::parse_labels(&args.labels)?,
            cgroup_root: args.cgroup_root,
            heartbeat: std::time::Duration::from_secs(args.heartbeat_seconds.max(1)),
            executor: std::env::current_exe().context("finding the mosaic binary")?,
            kill_tasks_on_exit: args.kill_tasks_on_exit,
            listen: Some(args.listen),
            port_isolation,
            port_check,
            held_ports: ports,
            gc_delay: cluster::parse_duration(&args.gc_delay)
                .ok()
                .with_context(|| {
                    format!(
                        "--gc-delay {:?} is not a duration like 24h or 30m",
                        args.gc_delay
                    )
                })?,
            advertise_host: args.advertise_host.unwrap_or_else(|| {
                if args.listen.ip().is_unspecified() {
                    cluster::hostname()
                } else {
                    args.listen.ip().to_string()
                }
            }),
            serving: None,
        };
        if args.simulate {
            // Simulated agents share one client: the kubeconfig given (an
            // administrator's: they are a test harness, not machines).
            let client =
                cluster::component_client(args.kubeconfig.as_deref(), "mosaic-agent").await?;
            let cfgs = simulated(&cfg, args.count);
            mosaic_agent::simulate::run(client, cfgs, wait_for_signal()).await?;
            return Ok(());
        }
        let (client, serving) = crate::join::agent_client(
            args.kubeconfig.as_deref(),
            &cfg.name,
            &cfg.data_dir,
            &endpoint_hosts(&cfg.advertise_host, args.listen),
        )
        .await?;
        cfg.serving = serving;
        mosaic_agent::run(client, cfg, wait_for_signal()).await?;
        Ok(())
    })
}

/// The names an agent's endpoint is reached by (its serving certificate's).
pub fn endpoint_hosts(advertise: &str, listen: std::net::SocketAddr) -> Vec<String> {
    let mut hosts = vec![
        advertise.to_string(),
        "localhost".into(),
        "127.0.0.1".into(),
    ];
    if !listen.ip().is_unspecified() {
        hosts.push(listen.ip().to_string());
    }
    hosts.dedup();
    hosts
}

/// The configs of `count` simulated agents modelled on `base` (one keeps its name).
pub fn simulated(base: &mosaic_agent::AgentConfig, count: usize) -> Vec<mosaic_agent::AgentConfig> {
    (0..count)
        .map(|i| {
            let mut cfg = base.clone();
            if count > 1 {
                cfg.name = format!("{}-{i}", base.name);
            }
            cfg.labels.insert(
                mosaic_agent::simulate::SIMULATED_LABEL.into(),
                "true".into(),
            );
            cfg.listen = None;
            cfg
        })
        .collect()
}
