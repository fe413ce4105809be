//! `mosaic drain AGENT [--deadline 10m]` and `mosaic uncordon AGENT`, as
//! `kubectl drain` and `kubectl uncordon` for nodes: drain cordons the
//! Agent and sets `spec.drain` (the controllers move App instances off first
//! and kill what is left at the deadline), then follows it until no task
//! runs there; uncordon clears both. `kubectl patch agent` can do the same.

use crate::cluster;
use anyhow::{Context, bail};
use clap::Args;
use kube::api::{Api, ListParams, Patch, PatchParams};
use mosaic_crds::agent::Drain;
use mosaic_crds::{Agent, Task};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags of `mosaic drain`.
#[derive(Args, Debug)]
pub struct DrainArgs {
    /// The Agent to drain.
    pub agent: String,
    /// How long tasks other than App instances may go on before they are
    /// killed (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "10m")]
    pub deadline: String,
    /// Return once the drain is set, without following it.
    #[arg(long)]
    pub no_wait: bool,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Flags of `mosaic uncordon`.
#[derive(Args, Debug)]
pub struct UncordonArgs {
    /// The Agent to open to work again.
    pub agent: String,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// The spec fields drain and uncordon own, as a merge patch.
#[derive(Debug, serde::Serialize)]
struct SpecPatch {
    spec: SpecFields,
}

#[derive(Debug, serde::Serialize)]
struct SpecFields {
    unschedulable: bool,
    /// `null` clears it.
    drain: Option<Drain>,
}

/// Runs `mosaic drain`; the exit code.
pub fn drain(args: DrainArgs) -> anyhow::Result<i32> {
    let grace: jiff::SignedDuration = args.deadline.parse().with_context(|| {
        format!(
            "--deadline {:?}: not a duration such as 90s or 10m",
            args.deadline
        )
    })?;
    if grace.is_negative() {
        bail!("--deadline must not be negative");
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (client, _) = cluster::user_client(args.kubeconfig.as_deref()).await?;
        let agents: Api<Agent> = Api::all(client.clone());
        let deadline = jiff::Timestamp::now() + grace;
        set(
            &agents,
            &args.agent,
            true,
            Some(Drain {
                deadline: deadline.to_string(),
            }),
        )
        .await?;
        println!("agent/{} cordoned; draining until {deadline}", args.agent);
        if args.no_wait {
            return Ok(0);
        }
        let tasks: Api<Task> = Api::all(client);
        let give_up = Instant::now()
            + Duration::try_from(grace).unwrap_or_default()
            + Duration::from_secs(120);
        let mut last = usize::MAX;
        loop {
            let on_it = tasks
                .list(&ListParams::default().fields(&format!("status.agent={}", args.agent)))
                .await
                .context("listing the agent's tasks")?;
            let left = on_it
                .items
                .iter()
                .filter(|t| {
                    !t.status
                        .as_ref()
                        .and_then(|s| s.phase)
                        .is_some_and(|p| p.is_terminal())
                })
                .count();
            if left == 0 {
                println!("agent/{} drained", args.agent);
                return Ok(0);
            }
            if left != last {
                println!("agent/{}: {left} task(s) left", args.agent);
                last = left;
            }
            if Instant::now() >= give_up {
                eprintln!("error: agent/{} still runs {left} task(s)", args.agent);
                return Ok(1);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// Runs `mosaic uncordon`.
pub fn uncordon(args: UncordonArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (client, _) = cluster::user_client(args.kubeconfig.as_deref()).await?;
        set(&Api::all(client), &args.agent, false, None).await?;
        println!("agent/{} uncordoned", args.agent);
        Ok(())
    })
}

async fn set(
    agents: &Api<Agent>,
    name: &str,
    cordon: bool,
    drain: Option<Drain>,
) -> anyhow::Result<()> {
    // A missing agent is an error here, not a patch's 404.
    agents
        .get(name)
        .await
        .with_context(|| format!("agent/{name}"))?;
    let patch = SpecPatch {
        spec: SpecFields {
            unschedulable: cordon,
            drain,
        },
    };
    agents
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("changing agent/{name}"))?;
    Ok(())
}
