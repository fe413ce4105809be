//! `mosaic bench`: the whole control plane under load. It starts `mosaic
//! server` (API server on the embedded store, with the controllers) and a
//! process of simulated agents as child processes, submits tasks through the
//! API from many concurrent clients, and measures placement throughput and
//! create->Running latency (as this process's watch sees them), API write
//! throughput, the allocator's cycle time (from the server's /metrics) and the
//! server's peak RSS. It prints a table and, with `--json`, writes the figures.
//! With `--shape app` it first times an App's phases (see [`apps`]).

mod apps;
mod procs;
mod report;
mod teardown;
mod workload;

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The benchmark shapes of docs/benchmarks.md.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Shape {
    /// 1,000 agents, 100,000 tasks in 100 frameworks (Nomad C1M's shape, scaled down).
    A,
    /// 5,000 agents, 50,000 tasks (kube-scheduler's SchedulingBasic 5000Nodes_50000Pods).
    B,
    /// Mesos's MultiFrameworkAllocations: 80 agents of 64 cpus; 4 frameworks x 4,000
    /// tasks of 0.07 cpus, 500 x 5 of 0.1, 50 x 20 of 1.
    C,
    /// Issue 24's App benchmark: an App of 10,000 instances on 1,000 agents
    /// (apply, rolling upgrade, scale to 20,000), then 10,000 plain Tasks on
    /// the same cluster for comparison.
    App,
}

/// Flags of `mosaic bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A preset shape; the flags below override its figures.
    #[arg(long, value_enum)]
    pub shape: Option<Shape>,
    /// Simulated agents.
    #[arg(long)]
    pub agents: Option<usize>,
    /// Tasks submitted.
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Frameworks the tasks are spread over.
    #[arg(long)]
    pub frameworks: Option<usize>,
    /// Roles the frameworks are spread over (weights 1, 2, 3, ...).
    #[arg(long)]
    pub roles: Option<usize>,
    /// What each simulated agent offers.
    #[arg(long)]
    pub agent_resources: Option<String>,
    /// What each task asks for.
    #[arg(long)]
    pub task_resources: Option<String>,
    /// Concurrent clients creating tasks.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Tasks created per second in all (0: as fast as the clients go). Below
    /// the placement throughput, latency is the pipeline's, not a queue's.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds to wait for every task to be Running.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Where the server and agents keep their data (a temporary folder under it).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Write the figures to this file as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// `--shape app`: a placement constraint on the App, as
    /// `FIELD:OPERATOR[:VALUE]` (e.g. `hostname:GROUP_BY`); repeatable.
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
}

/// Runs the benchmark and prints its figures.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    crate::server::init_logging();
    let plan = workload::Plan::from_args(&args)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let figures = rt.block_on(async {
        let tmp = match &args.dir {
            Some(d) => std::fs::create_dir_all(d).and_then(|()| tempfile::tempdir_in(d)),
            None => tempfile::tempdir(),
        }
        .context("making the benchmark's data folder")?;
        eprintln!("mosaic bench: machine: {}", procs::machine());
        eprintln!(
            "mosaic bench: {} agents ({}), {} tasks in {} frameworks over {} roles, {} clients{}; data in {}",
            plan.agents,
            plan.agent_resources,
            plan.total_tasks(),
            plan.groups.iter().map(|g| g.frameworks).sum::<usize>(),
            plan.roles,
            args.clients,
            if args.rate > 0.0 { format!(" at {} tasks/s", args.rate) } else { String::new() },
            tmp.path().display()
        );
        let cluster = procs::Cluster::start(tmp.path(), &plan).await?;
        let load = workload::Load {
            clients: args.clients,
            rate: args.rate,
            timeout: Duration::from_secs(args.timeout),
        };
        let app = match args.shape {
            Some(Shape::App) => {
                let g = &plan.groups[0];
                let n = plan.total_tasks();
                let constraints = apps::constraints(&args.constraints)?;
                let sized = (n, g.cpus_milli, g.memory);
                match apps::run(&cluster, sized, &constraints, load.timeout).await {
                    Ok(phases) => Some(phases),
                    Err(e) => {
                        let _ = cluster.stop().await;
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        let mut result = workload::run(&cluster, &plan, &load).await;
        let mut deleted = None;
        if let (Some(_), Ok(_)) = (&app, &result) {
            let names = plan.tasks().into_iter().map(|t| t.name).collect();
            match teardown::delete_all(&cluster, names, load.clients, load.timeout).await {
                Ok(phase) => deleted = Some(phase),
                Err(e) => result = Err(e),
            }
        }
        let end = cluster.stop().await;
        let (mut figures, end) = (result?, end?);
        figures.peak_rss_bytes = end.peak_rss_bytes;
        Ok::<_, anyhow::Error>((figures, app, deleted))
    })?;
    let (figures, app, deleted) = figures;
    if let Some(phases) = app {
        let per_task = figures.cpu_seconds[0] * 1000.0 / plan.total_tasks() as f64;
        println!("App phases (server CPU per instance against {per_task:.2} ms per plain Task):");
        for p in &phases {
            println!(
                "  {:<16} {:>6} instances  {:>6.1} s  {:>6.0} instances/s  {:>5.2} ms CPU/instance ({:.2}x)",
                p.name,
                p.instances,
                p.elapsed.as_secs_f64(),
                p.rate(),
                p.cpu_ms_per_instance(),
                p.cpu_ms_per_instance() / per_task
            );
        }
        if let (Some(d), Some(r)) = (
            &deleted,
            phases.iter().find(|p| p.name == "rolling upgrade"),
        ) {
            // A replaced instance is one start and one end.
            let start_end = per_task + d.cpu_ms_per_instance();
            println!(
                "Plain Tasks deleted after: {:.0}/s, {:.2} ms CPU each; the rolling upgrade's {:.2} ms per replaced instance is {:.2}x a plain Task's start and end ({start_end:.2} ms)",
                d.rate(),
                d.cpu_ms_per_instance(),
                r.cpu_ms_per_instance(),
                r.cpu_ms_per_instance() / start_end
            );
        }
        println!("Plain Tasks on the same cluster, after the App:");
    }
    figures.print(&plan);
    if let Some(path) = &args.json {
        std::fs::write(path, figures.json(&plan))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
