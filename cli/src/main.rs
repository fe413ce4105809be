//! `mosaic`: the one binary. Each subcommand lives in its own module; this file
//! only parses the command line and hands off.

mod server;

use clap::{Parser, Subcommand};

/// Mosaic: a cluster manager with Mesos's offer-based allocation and Kubernetes's declarative API.
#[derive(Parser)]
#[command(name = "mosaic", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (HTTPS, Kubernetes-compatible) over the embedded store.
    #[command(
        after_help = "Examples:\n  mosaic server\n  mosaic server --data-dir /var/lib/mosaic --listen 0.0.0.0:6443\n  kubectl --kubeconfig ./mosaic-data/kubeconfig get tasks"
    )]
    Server(server::ServerArgs),
    /// Print Mosaic's CustomResourceDefinitions as YAML (to install on a real Kubernetes cluster).
    #[command(after_help = "Examples:\n  mosaic crds | kubectl apply -f -")]
    Crds,
    /// Print the version.
    Version,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(args),
        Command::Crds => {
            print!("{}", mosaic_crds::all_crds_yaml());
            Ok(())
        }
        Command::Version => {
            println!("mosaic {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
