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
    /// Seconds the leader's Lease (mosaic-system/mosaic-controllers) lasts unrenewed;
    /// of several replicas only the holder acts, and another takes over within this.
    #[arg(long, default_value_t = 15)]
    pub leader_lease_seconds: u64,
    /// Serve Prometheus /metrics over plain HTTP on this address (e.g. 0.0.0.0:9464).
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How to bind tasks: one write to `tasks/<name>/binding` (Mosaic's API
    /// server) or two (the finalizer, then the status: any Kubernetes).
    /// Default: as the API server's discovery says.
    #[arg(long, value_enum)]
    pub binding: Option<Binding>,
}

/// `--binding`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Binding {
    /// One POST to `tasks/<name>/binding`.
    Subresource,
    /// The finalizer, then the status.
    TwoWrites,
}

impl From<Binding> for mosaic_controllers::binding::Path {
    fn from(b: Binding) -> Self {
        match b {
            Binding::Subresource => Self::Subresource,
            Binding::TwoWrites => Self::TwoWrites,
        }
    }
}

/// Runs the controllers until the process is stopped.
pub fn run(args: ControllersArgs) -> anyhow::Result<()> {
    init_logging();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let client =
            cluster::component_client(args.kubeconfig.as_deref(), "mosaic-controllers").await?;
        let opts = mosaic_controllers::scheduler::Options {
            agent_lost_after: std::time::Duration::from_secs(args.agent_lost_after),
            binding: args.binding.map(Into::into),
        };
        let lease = std::time::Duration::from_secs(args.leader_lease_seconds.max(1));
        let elected = mosaic_controllers::manager::run_elected(
            client,
            opts,
            cluster::process_identity(),
            lease,
        );
        if let Some(addr) = args.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for /metrics on {addr}"))?;
            tokio::spawn(serve_metrics(listener));
        }
        tokio::select! {
            _ = elected => {}
            _ = crate::server::wait_for_signal() => {}
        }
        Ok(())
    })
}

/// Serves the controllers' Prometheus metrics at `/metrics` (plain HTTP, as scrapers expect).
async fn serve_metrics(listener: tokio::net::TcpListener) {
    use hyper_util::rt::TokioIo;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let (code, body) = if req.uri().path() == "/metrics" {
                        (http::StatusCode::OK, mosaic_controllers::metrics::text())
                    } else {
                        (
                            http::StatusCode::NOT_FOUND,
                            "only /metrics here\n".to_string(),
                        )
                    };
                    http::Response::builder()
                        .status(code)
                        .header(
                            http::header::CONTENT_TYPE,
                            mosaic_apiserver::http::metrics::CONTENT_TYPE,
                        )
                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
