//! `mosaic rollout status|history|undo app/NAME`: an App's rollouts, as
//! `kubectl rollout` shows a Deployment's. `status` follows the current one
//! to its end with a progress line per change; `history` lists the templates
//! the App keeps (`status.revisions`); `undo` puts an earlier one back
//! (the previous, or `--to-revision N`), which the App controller then rolls
//! out like any template change.

use crate::cluster;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kube::api::{Api, PostParams};
use mosaic_crds::App;
use mosaic_crds::app::Revision;
use mosaic_crds::common::condition_types::READY;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags of `mosaic rollout`.
#[derive(Args, Debug)]
pub struct RolloutArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The App's namespace.
    #[arg(short, long, default_value = "default", global = true)]
    pub namespace: String,
}

/// `mosaic rollout` actions.
#[derive(Subcommand, Debug)]
pub enum Action {
    /// Follow the App's rollout until every instance runs the current template and is healthy.
    Status {
        /// `app/NAME`.
        app: String,
        /// Give up (exit 1) after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// List the templates the App keeps, by revision number.
    History {
        /// `app/NAME`.
        app: String,
    },
    /// Roll the App back to an earlier template.
    Undo {
        /// `app/NAME`.
        app: String,
        /// The revision number to go back to (default: the one before the current).
        #[arg(long)]
        to_revision: Option<i64>,
    },
}

/// Runs `mosaic rollout`; the exit code.
pub fn run(args: RolloutArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (client, _) = cluster::user_client(args.kubeconfig.as_deref()).await?;
        let apps: Api<App> = Api::namespaced(client, &args.namespace);
        match args.action {
            Action::Status { app, timeout } => status(&apps, name(&app)?, timeout).await,
            Action::History { app } => {
                let a = apps.get(name(&app)?).await.context("reading the App")?;
                println!("REVISION  HASH        CURRENT");
                let current = a.status.as_ref().and_then(|s| s.update_revision.clone());
                for r in revisions(&a) {
                    let mark = if Some(&r.revision) == current.as_ref() {
                        "*"
                    } else {
                        ""
                    };
                    println!("{:<9} {:<11} {mark}", r.number, r.revision);
                }
                Ok(0)
            }
            Action::Undo { app, to_revision } => undo(&apps, name(&app)?, to_revision).await,
        }
    })
}

/// `NAME` of `app/NAME` (or of a bare name).
fn name(arg: &str) -> anyhow::Result<&str> {
    match arg.split_once('/') {
        Some(("app" | "apps" | "app.mosaic.dev" | "apps.mosaic.dev", n)) if !n.is_empty() => Ok(n),
        Some((kind, _)) => bail!("mosaic rollout works on Apps (app/NAME), not {kind:?}"),
        None if !arg.is_empty() => Ok(arg),
        None => bail!("name the App as app/NAME"),
    }
}

fn revisions(a: &App) -> Vec<Revision> {
    let mut list = a
        .status
        .as_ref()
        .map(|s| s.revisions.clone())
        .unwrap_or_default();
    list.sort_by_key(|r| r.number);
    list
}

/// Follows the rollout; 0 once it is done, 1 on timeout.
async fn status(apps: &Api<App>, name: &str, timeout: u64) -> anyhow::Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut last = String::new();
    loop {
        let a = apps.get(name).await.context("reading the App")?;
        let want = a.spec.replicas;
        let st = a.status.clone().unwrap_or_default();
        let observed = st.observed_generation == a.metadata.generation;
        let ready = st
            .conditions
            .iter()
            .any(|c| c.type_ == READY && c.status == "True");
        if observed && ready {
            println!("app/{name} successfully rolled out");
            return Ok(0);
        }
        let line = if !observed {
            format!("Waiting for app/{name}: the controller has not seen its latest spec yet...")
        } else {
            format!(
                "Waiting for app/{name} rollout to finish: {} of {want} instances up to date, {} healthy...",
                st.updated_replicas, st.ready_replicas
            )
        };
        if line != last {
            println!("{line}");
            last = line;
        }
        if Instant::now() >= deadline {
            eprintln!("error: app/{name} did not finish its rollout within {timeout}s");
            return Ok(1);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Puts an earlier template back.
async fn undo(apps: &Api<App>, name: &str, to: Option<i64>) -> anyhow::Result<i32> {
    let a = apps.get(name).await.context("reading the App")?;
    let list = revisions(&a);
    let current = list.last().map(|r| r.number).unwrap_or(0);
    let target = match to {
        Some(n) => list.iter().find(|r| r.number == n),
        None => list.iter().rev().find(|r| r.number < current),
    };
    let Some(target) = target else {
        let known: Vec<i64> = list.iter().map(|r| r.number).collect();
        bail!(
            "app/{name} has no revision {} to go back to (it keeps {known:?})",
            to.map_or("before the current one".into(), |n| n.to_string())
        );
    };
    // The whole template replaced, guarded by the resourceVersion read, so
    // a concurrent change is not overwritten (409 instead).
    let mut changed = a.clone();
    changed.spec.template = target.template.clone();
    changed.status = None;
    apps.replace(name, &PostParams::default(), &changed)
        .await
        .context("changing the App's template")?;
    println!(
        "app/{name} rolled back to revision {} ({})",
        target.number, target.revision
    );
    Ok(0)
}
