//! `mosaic server`: the API server over the embedded store, with the
//! controllers in-process, until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `mosaic server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Where the store, credentials and kubeconfigs live.
    #[arg(long, default_value = "./mosaic-data", env = "MOSAIC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address and port to serve HTTPS on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// The store backend: `sqlite` (embedded, in the data dir) or `etcd` (an etcd v3
    /// cluster several servers share; needs a build with `--features etcd`).
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "etcd"])]
    pub store: String,
    /// etcd client URLs, comma-separated (with `--store etcd`).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_endpoints: Vec<String>,
    /// The key prefix under which this cluster's objects live in etcd.
    #[arg(long, default_value = "/mosaic")]
    pub etcd_prefix: String,
    /// CA certificate of the etcd members (turns on TLS to etcd).
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd (with `--etcd-keyfile`).
    #[arg(long, requires = "etcd_keyfile")]
    pub etcd_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long, requires = "etcd_certfile")]
    pub etcd_keyfile: Option<PathBuf>,
    /// More names or addresses for the serving certificate, comma-separated (a load
    /// balancer in front of several servers).
    #[arg(long, value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Seconds an agent's tasks stay Unreachable (its Lease expired) before they are Lost.
    #[arg(long, default_value_t = 60)]
    pub agent_lost_after: u64,
    /// Seconds between compactions of the store's history (watches can resume from
    /// any revision newer than one interval ago).
    #[arg(long, default_value_t = 300)]
    pub compaction_interval: u64,
    /// How long an Event is kept after it was last seen, as kube-apiserver's
    /// `--event-ttl` (e.g. `1h`, `30m`, `90s`).
    #[arg(long, default_value = "1h", value_parser = crate::cluster::parse_duration)]
    pub event_ttl: std::time::Duration,
    /// Append an audit log here: one JSON line (audit.k8s.io/v1 Event, level
    /// Metadata) per API request, with the caller, verb, object and response code.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Do not run the controllers in this process (run `mosaic controllers` instead).
    #[arg(long)]
    pub no_controllers: bool,
    #[command(flatten)]
    pub listener: crate::limits::ListenerArgs,
    /// Seconds the controllers' leader Lease lasts unrenewed (several servers or
    /// `mosaic controllers` replicas elect one leader).
    #[arg(long, default_value_t = 15)]
    pub leader_lease_seconds: u64,
    #[command(flatten)]
    pub marathon: crate::marathon::MarathonArgs,
}

/// Log to stderr, `RUST_LOG` style filtering, info by default; colours only
/// on a terminal (a log file gets plain text).
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs the server until a signal.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_logging();
    crate::limits::raise_open_files();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let mut cfg = mosaic_apiserver::ServerConfig::new(args.data_dir.clone(), args.listen);
        cfg.compaction_interval = std::time::Duration::from_secs(args.compaction_interval);
        cfg.event_ttl = args.event_ttl;
        cfg.audit_log = args.audit_log.clone();
        cfg.tls_sans = args.tls_san.clone();
        cfg.limits = args.listener.limits();
        if args.store == "etcd" {
            cfg.etcd = Some(mosaic_apiserver::store::EtcdConfig {
                endpoints: args.etcd_endpoints.clone(),
                prefix: args.etcd_prefix.clone(),
                ca_file: args.etcd_cafile.clone(),
                cert_file: args.etcd_certfile.clone(),
                key_file: args.etcd_keyfile.clone(),
            });
        }
        let server = crate::cluster::start_server(cfg).await?;
        println!("Mosaic API server listening on {}", server.url);
        println!(
            "Point kubectl at it:  export KUBECONFIG={}",
            server.admin_kubeconfig.display()
        );
        let marathon = crate::marathon::start(
            &args.marathon,
            &server,
            &args.data_dir,
            args.listener.limits(),
        )
        .await?;
        let client = crate::in_process::controllers(&server);
        let opts = mosaic_controllers::scheduler::Options {
            agent_lost_after: std::time::Duration::from_secs(args.agent_lost_after),
            ..Default::default()
        };
        let lease = std::time::Duration::from_secs(args.leader_lease_seconds.max(1));
        let controllers = tokio::spawn(async move {
            if args.no_controllers {
                return;
            }
            let identity = crate::cluster::process_identity();
            mosaic_controllers::manager::run_elected(client, opts, identity, lease).await
        });
        wait_for_signal().await;
        tracing::info!("shutting down");
        controllers.abort();
        if let Some(m) = marathon {
            m.abort();
        }
        server.stop().await;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
