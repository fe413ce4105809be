//! `--marathon-listen`: Marathon's v2 REST API (`mosaic-marathon`) beside
//! `mosaic server` or `mosaic up`, over the Apps of one namespace. Plain
//! HTTP on a loopback address; elsewhere TLS, with the cluster's serving
//! certificate or the one `--marathon-tls` names.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The Marathon API's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct MarathonArgs {
    /// Serve Marathon's v2 REST API here (e.g. 127.0.0.1:8080).
    #[arg(long)]
    pub marathon_listen: Option<SocketAddr>,
    /// The namespace whose Apps Marathon's apps are.
    #[arg(long, default_value = "default")]
    pub marathon_namespace: String,
    /// TLS for the Marathon API: `CERT.pem,KEY.pem` (default: the cluster's
    /// serving certificate when not on loopback; plain HTTP on loopback).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    pub marathon_tls: Vec<PathBuf>,
}

/// Starts the Marathon API if asked for; it serves until the process ends.
pub async fn start(
    args: &MarathonArgs,
    server: &mosaic_apiserver::RunningServer,
    data_dir: &Path,
    limits: mosaic_listener::Limits,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = args.marathon_listen else {
        return Ok(None);
    };
    let kc = kube::config::Kubeconfig::read_from(&server.admin_kubeconfig)?;
    let base = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--marathon-listen {addr}"))?;
    let port = listener.local_addr()?.port();
    let tls = if !args.marathon_tls.is_empty() {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).with_context(|| format!("--marathon-tls {}", p.display()))
        };
        Some(acceptor(
            &read(&args.marathon_tls[0])?,
            &read(&args.marathon_tls[1])?,
        )?)
    } else if addr.ip().is_loopback() {
        None
    } else {
        let pki = mosaic_apiserver::pki::load_or_create(data_dir, &[])?;
        Some(acceptor(&pki.serving_cert_pem, &pki.serving_key_pem)?)
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "Marathon API (namespace {}) listening on {scheme}://{}",
        args.marathon_namespace,
        listener.local_addr()?
    );
    let gateway = Arc::new(mosaic_marathon::Gateway {
        clients: mosaic_marathon::clients::Clients::new(base),
        namespace: args.marathon_namespace.clone(),
        port,
    });
    // Checked before the task starts, so a refusal is an error of the command.
    if tls.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(mosaic_marathon::ServeError::PlainOffLoopback(addr));
    }
    Ok(Some(tokio::spawn(async move {
        if let Err(e) =
            mosaic_marathon::serve(gateway, listener, tls, limits, std::future::pending()).await
        {
            tracing::error!(error = %e, "the Marathon API stopped");
        }
    })))
}

/// A TLS acceptor serving `cert_pem` with `key_pem`.
fn acceptor(cert_pem: &str, key_pem: &str) -> anyhow::Result<mosaic_marathon::TlsAcceptor> {
    mosaic_marathon::tls_acceptor(cert_pem, key_pem)
        .context("the Marathon API's certificate and key")
}
