//! `mosaic`: the one binary. Each subcommand lives in its own module; this file
//! only parses the command line and hands off.

mod agent;
mod apply;
mod backup;
mod bench;
mod cluster;
mod controllers;
mod drain;
mod execute;
mod get;
mod in_process;
mod join;
mod kubeconfig;
mod limits;
mod logs;
mod manifest;
mod marathon;
mod rollout;
mod rotate;
mod server;
mod top;
mod up;

use clap::{Parser, Subcommand};

// The server's request path allocates and frees many small JSON values from
// many threads; mimalloc does that at a fraction of glibc malloc's cost
// (malloc and free were about 30% of the server's profile under load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mosaic: a cluster manager with Mesos's offer-based allocation and Kubernetes's declarative API.
#[derive(Parser)]
#[command(name = "mosaic", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole cluster on this machine: API server, controllers and local agents.
    #[command(
        after_help = "Examples:\n  mosaic up --demo\n  mosaic up --data-dir /var/lib/mosaic --agents 2\n  KUBECONFIG=./mosaic-data/kubeconfig kubectl get agents,tasks"
    )]
    Up(up::UpArgs),
    /// Run the API server (HTTPS, Kubernetes-compatible) over the embedded store.
    #[command(
        after_help = "Examples:\n  mosaic server\n  mosaic server --data-dir /var/lib/mosaic --listen 0.0.0.0:6443\n  kubectl --kubeconfig ./mosaic-data/kubeconfig get tasks"
    )]
    Server(server::ServerArgs),
    /// Run the node agent: register this machine and run the tasks bound to it.
    #[command(
        after_help = "Examples:\n  mosaic agent --kubeconfig ./mosaic-data/agent.kubeconfig\n  mosaic agent --kubeconfig agent.kubeconfig --name node-1 --resources cpus=4,memory=8Gi --labels rack=r1"
    )]
    Agent(agent::AgentArgs),
    /// Run the controllers alone, against any Kubernetes-compatible API server.
    #[command(after_help = "Examples:\n  mosaic controllers --kubeconfig ~/.kube/config")]
    Controllers(controllers::ControllersArgs),
    /// Run one command as a task (as mesos-execute does): show its progress,
    /// stream its output, exit with its exit code.
    #[command(
        after_help = "Examples:\n  mosaic execute --command \"echo Hello World\"\n  mosaic execute --command \"python3 train.py\" --cpus 2 --memory 4Gi --name train\n  mosaic execute --command \"exit 7\"; echo $?   # prints 7"
    )]
    Execute(execute::ExecuteArgs),
    /// Create or update the objects in manifests; with --wait, until they are Ready.
    #[command(
        after_help = "Examples:\n  mosaic apply -f examples/hello-world.yaml --wait\n  mosaic apply -f examples/ --wait --timeout 2m\n  cat task.yaml | mosaic apply -f -"
    )]
    Apply(apply::ApplyArgs),
    /// List Mosaic's objects (agents, frameworks, roles, reservations, tasks, offers).
    #[command(
        after_help = "Examples:\n  mosaic get tasks\n  mosaic get agents -o wide\n  mosaic get tk hello -o yaml\n  mosaic get tasks -A"
    )]
    Get(get::GetArgs),
    /// Cordon an agent and move its work off: App instances first started
    /// elsewhere, other tasks killed at the deadline.
    Drain(drain::DrainArgs),
    /// Open a cordoned or drained agent to work again.
    Uncordon(drain::UncordonArgs),
    /// Follow, list or undo an App's rollouts (status, history, undo).
    Rollout(rollout::RolloutArgs),
    /// Show allocation by role and framework (dominant shares) and agent utilisation.
    #[command(
        after_help = "Examples:\n  mosaic top\n  mosaic top --kubeconfig ./mosaic-data/kubeconfig"
    )]
    Top(top::TopArgs),
    /// Print a task's output (stdout, or stderr), fetched from the agent that ran it.
    #[command(
        after_help = "Examples:\n  mosaic logs hello\n  mosaic logs -f train-model -n ml\n  mosaic logs hello --stderr --attempt 0"
    )]
    Logs(logs::LogsArgs),
    /// Measure the control plane: simulated agents, many tasks, placement speed and memory.
    #[command(
        after_help = "Examples:\n  mosaic bench --shape b --json bench-b.json\n  mosaic bench --agents 100 --tasks 10000 --frameworks 10 --roles 2"
    )]
    Bench(bench::BenchArgs),
    /// Write a kubeconfig for a user, with a client certificate signed by the cluster CA.
    #[command(
        after_help = "Examples:\n  mosaic kubeconfig --user alice --group analytics -o alice.kubeconfig\n  kubectl create rolebinding alice --role=task-author --user=alice -n team-a"
    )]
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Copy a server's data dir (store and credentials) while it runs; the copy is a
    /// data dir `mosaic server` can start from (the embedded store; for etcd use
    /// `etcdctl snapshot save`).
    #[command(
        after_help = "Examples:\n  mosaic backup --data-dir /var/lib/mosaic /backups/mosaic-2026-11-26\n  mosaic server --data-dir /backups/mosaic-2026-11-26   # restore"
    )]
    Backup(backup::BackupArgs),
    /// Replace the admin and agent bearer tokens (and the kubeconfigs holding
    /// them); a running server refuses the old ones within seconds.
    #[command(
        after_help = "Examples:\n  mosaic rotate-credentials --data-dir /var/lib/mosaic\n  scp /var/lib/mosaic/agent.kubeconfig node-1:/etc/mosaic/"
    )]
    RotateCredentials(rotate::RotateArgs),
    /// Print Mosaic's CustomResourceDefinitions as YAML (to install on a real Kubernetes cluster).
    #[command(after_help = "Examples:\n  mosaic crds | kubectl apply -f -")]
    Crds,
    /// Print the version.
    #[command(after_help = "Examples:\n  mosaic version")]
    Version,
    /// Internal: the per-task executor the agent starts (`mosaic executor RUN_DIR`).
    #[command(hide = true)]
    Executor {
        /// With --enter: the command to run inside the run's task (its health check).
        #[arg(long, value_name = "COMMAND")]
        enter: Option<String>,
        /// The run's directory, holding spec.json.
        run_dir: std::path::PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Up(_)
            | Command::Server(_)
            | Command::Agent(_)
            | Command::Controllers(_)
            | Command::Executor { .. }
    ) {
        // A command whose output is piped into `head` ends quietly when the
        // reader goes, as Unix tools do. (Daemons and the executor keep
        // ignoring SIGPIPE: an executor must outlive its agent's pipe.)
        // SAFETY: at the start of main, before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if let Err(e) = dispatch(cli) {
        // The whole chain of causes on one line, as kubectl prints errors.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Server(args) => server::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Controllers(args) => controllers::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Get(args) => get::run(args),
        Command::Kubeconfig(args) => kubeconfig::run(args),
        Command::Backup(args) => backup::run(args),
        Command::RotateCredentials(args) => rotate::run(args),
        Command::Top(args) => top::run(args),
        Command::Drain(args) => {
            let code = drain::drain(args)?;
            std::process::exit(code);
        }
        Command::Uncordon(args) => drain::uncordon(args),
        Command::Rollout(args) => {
            let code = rollout::run(args)?;
            std::process::exit(code);
        }
        Command::Apply(args) => {
            let code = apply::run(args)?;
            std::process::exit(code);
        }
        Command::Execute(args) => {
            let code = execute::run(args)?;
            std::process::exit(code);
        }
        Command::Crds => {
            print!("{}", mosaic_crds::all_crds_yaml());
            Ok(())
        }
        Command::Executor {
            enter: Some(command),
            run_dir,
        } => std::process::exit(mosaic_agent::enter::main(&run_dir, &command)),
        Command::Executor { run_dir, .. } => {
            std::process::exit(mosaic_agent::executor::main(&run_dir))
        }
        Command::Version => {
            println!("mosaic {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
