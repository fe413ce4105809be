//! `mosaic backup`: an online copy of a server's data dir (the embedded store
//! and the cluster identity) that `mosaic server --data-dir` can start from.

use anyhow::{Context, bail};
use clap::Args;
use std::path::{Path, PathBuf};

/// Flags of `mosaic backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The data dir of the server to back up (it may be running).
    #[arg(long, default_value = "./mosaic-data", env = "MOSAIC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Where to write the backup: a new (or empty) directory that is itself a data dir.
    pub out: PathBuf,
}

/// Copies the store (one consistent snapshot) and the identity files.
pub fn run(args: BackupArgs) -> anyhow::Result<()> {
    if args
        .out
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        bail!(
            "{} is not empty: back up into a new directory",
            args.out.display()
        );
    }
    let pki = args.data_dir.join("pki");
    if !pki.is_dir() {
        bail!(
            "{} has no pki/: is it a Mosaic data dir (`mosaic server --data-dir`)?",
            args.data_dir.display()
        );
    }
    mosaic_apiserver::private::dir(&args.out)
        .with_context(|| format!("making {} private", args.out.display()))?;
    // The identity first: a store without it could not be served with the same credentials.
    copy_dir(&pki, &args.out.join("pki"))?;
    for f in ["kubeconfig", "agent.kubeconfig"] {
        let from = args.data_dir.join(f);
        if from.exists() {
            copy(&from, &args.out.join(f))?;
        }
    }
    mosaic_apiserver::store::sqlite::SqliteStore::backup(
        &args.data_dir.join("store"),
        &args.out.join("store"),
    )
    .context("copying the store")?;
    println!(
        "Backed up {} to {}; restore with: mosaic server --data-dir {}",
        args.data_dir.display(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    mosaic_apiserver::private::dir(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            copy(&entry.path(), &to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", to.display()))
}
