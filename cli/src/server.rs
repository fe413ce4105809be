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
    /// The store backend. Only `sqlite` (embedded) is available in this build.
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite"])]
    pub store: String,
    /// Seconds an agent's tasks stay Unreachable (its Lease expired) before they are Lost.
    #[arg(long, default_value_t = 60)]
    pub agent_lost_after: u64,
    /// Seconds between compactions of the store's history (watches can resume from
    /// any revision newer than one interval ago).
    #[arg(long, default_value_t = 300)]
    pub compaction_interval: u64,
    /// Append an audit log here: one JSON line (audit.k8s.io/v1 Event, level
    /// Metadata) per API request, with the caller, verb, object and response code.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Do not run the controllers in this process (run `mosaic controllers` instead).
    #[arg(long)]
    pub no_controllers: bool,
    /// Seconds the controllers' leader Lease lasts unrenewed (several servers or
    /// `mosaic controllers` replicas elect one leader).
    #[arg(long, default_value_t = 15)]
    pub leader_lease_seconds: u64,
}

/// Log to stderr, `RUST_LOG` style filtering, info by default.
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the server until a signal.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_logging();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let server = crate::cluster::start_server(
            &args.data_dir,
            args.listen,
            std::time::Duration::from_secs(args.compaction_interval),
            args.audit_log.as_deref(),
        )
        .await?;
        println!("Mosaic API server listening on {}", server.url);
        println!(
            "Point kubectl at it:  export KUBECONFIG={}",
            server.admin_kubeconfig.display()
        );
        let admin = kube::Client::new(server.in_process(), "default");
        let opts = mosaic_controllers::scheduler::Options {
            agent_lost_after: std::time::Duration::from_secs(args.agent_lost_after),
        };
        let election = mosaic_controllers::leader::Election::with_lease(
            format!("{}-{}", crate::cluster::hostname(), std::process::id()),
            std::time::Duration::from_secs(args.leader_lease_seconds.max(1)),
        );
        let controllers = tokio::spawn(async move {
            if args.no_controllers {
                return;
            }
            mosaic_controllers::leader::run_elected(admin.clone(), election, move || {
                mosaic_controllers::scheduler::run_supervised(admin.clone(), opts.clone())
            })
            .await
        });
        wait_for_signal().await;
        tracing::info!("shutting down");
        controllers.abort();
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
