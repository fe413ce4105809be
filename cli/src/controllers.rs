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
}

/// Runs the controllers until the process is stopped.
pub fn run(args: ControllersArgs) -> anyhow::Result<()> {
    init_logging();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let client = cluster::client(args.kubeconfig.as_deref()).await?;
        tokio::select! {
            r = mosaic_controllers::scheduler::run(client) => r.context("the scheduler stopped")?,
            _ = crate::server::wait_for_signal() => {}
        }
        Ok(())
    })
}
