//! `mosaic controllers`: the controllers alone, against any Kubernetes-compatible API server.

use crate::cluster;
use crate::server::init_logging;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Flags of `mosaic controllers`.
#[derive(Args, Debug)]
pub struct ControllersArgs {
    /// The kubeconfig to use (default: KUBECONFIG, as kubectl).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds an agent's tasks stay Unreachable (its Lease expired) before they are Lost.
    #[arg(long, default_value_t = 60)]
    pub agent_lost_after: u64,
}

/// Runs the controllers until the process is stopped.
pub fn run(args: ControllersArgs) -> anyhow::Result<()> {
    init_logging();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let client = cluster::client(args.kubeconfig.as_deref()).await?;
        let opts = mosaic_controllers::scheduler::Options {
            agent_lost_after: std::time::Duration::from_secs(args.agent_lost_after),
        };
        tokio::select! {
            _ = mosaic_controllers::scheduler::run_supervised(client, opts) => {}
            _ = crate::server::wait_for_signal() => {}
        }
        Ok(())
    })
}
