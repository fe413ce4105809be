//! `mosaic rotate-credentials`: new admin and agent bearer tokens, on the
//! server's machine. The kubeconfigs in the data dir are rewritten; a running
//! server refuses the old tokens within seconds. Hand the new
//! `agent.kubeconfig` to every agent (`mosaic agent --kubeconfig`).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Flags of `mosaic rotate-credentials`.
#[derive(Args, Debug)]
pub struct RotateArgs {
    /// The server's data dir.
    #[arg(long, default_value = "./mosaic-data", env = "MOSAIC_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Rotates the tokens.
pub fn run(args: RotateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.data_dir.join("pki/admin.token").exists(),
        "{} has no pki/admin.token: is it a Mosaic data dir (`mosaic server --data-dir`)?",
        args.data_dir.display()
    );
    mosaic_apiserver::pki::rotate_tokens(&args.data_dir).context("rotating the tokens")?;
    println!(
        "Rotated the admin and agent tokens; {}/kubeconfig and agent.kubeconfig hold the new ones.\n\
         A running server refuses the old tokens within 2 s: give agents the new agent.kubeconfig.",
        args.data_dir.display()
    );
    Ok(())
}
