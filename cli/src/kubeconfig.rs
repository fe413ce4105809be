//! `mosaic kubeconfig`: a kubeconfig for a person, with a client certificate
//! signed by the cluster's CA (the subject names the user and their group, as
//! Kubernetes reads them), like `kubeadm kubeconfig user`. Runs where the
//! server's data dir is, since it needs the CA's key. What the user may do is
//! then up to RBAC bindings naming that user or group.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Flags of `mosaic kubeconfig`.
#[derive(Args, Debug)]
pub struct KubeconfigArgs {
    /// The server's data dir (its CA signs the certificate).
    #[arg(long, default_value = "./mosaic-data", env = "MOSAIC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The user name (the certificate's CommonName).
    #[arg(long)]
    pub user: String,
    /// The user's group (the certificate's Organization).
    #[arg(long)]
    pub group: Option<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Write the kubeconfig here (mode 0600) instead of printing it.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Prints or writes the kubeconfig.
pub fn run(args: KubeconfigArgs) -> anyhow::Result<()> {
    let admin = args.data_dir.join("kubeconfig");
    let text = std::fs::read_to_string(&admin).with_context(|| {
        format!(
            "reading {} (is --data-dir the server's data dir?)",
            admin.display()
        )
    })?;
    let kc: kube::config::Kubeconfig =
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", admin.display()))?;
    let server = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .with_context(|| format!("{} names no server", admin.display()))?;
    let ca = std::fs::read_to_string(args.data_dir.join("pki/ca.crt"))
        .context("reading the cluster CA")?;
    let (cert, key) = mosaic_apiserver::pki::user_certificate(
        &args.data_dir,
        &args.user,
        args.group.as_deref(),
        args.days,
    )
    .context("signing the user's certificate")?;
    let out =
        mosaic_apiserver::pki::kubeconfig_with_certificate(&server, &ca, &args.user, &cert, &key);
    match args.output {
        Some(path) => mosaic_apiserver::pki::write_atomic(&path, out.as_bytes(), true)
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{out}"),
    }
    Ok(())
}
