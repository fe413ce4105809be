//! `mosaic execute --command CMD`: the job of mesos-execute. Creates one
//! Task, shows its progress on stderr, streams its stdout, and exits with its
//! exit code (128 + N when signal N ended it, 1 when it failed otherwise).
//! Ctrl-C kills the task.

use crate::cluster;
use crate::logs::{self, LogsArgs};
use anyhow::{Context, bail};
use clap::Args;
use kube::Client;
use kube::api::{Api, PostParams};
use mosaic_crds::Task;
use mosaic_crds::task::TaskPhase;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `mosaic execute`.
#[derive(Args, Debug)]
pub struct ExecuteArgs {
    /// The command, run by `/bin/sh -c`.
    #[arg(long)]
    pub command: String,
    /// The task's name (default: execute-<random>).
    #[arg(long)]
    pub name: Option<String>,
    /// CPUs for the task (allocated and enforced).
    #[arg(long, default_value = "1")]
    pub cpus: String,
    /// Memory for the task (allocated and enforced).
    #[arg(long, default_value = "128Mi")]
    pub memory: String,
    /// The framework the task belongs to.
    #[arg(long, default_value = "default")]
    pub framework: String,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Runs the task; returns the exit code for the process.
pub fn run(args: ExecuteArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(execute(args))
}

async fn execute(args: ExecuteArgs) -> anyhow::Result<i32> {
    let (client, cfg) = cluster::user_client(args.kubeconfig.as_deref()).await?;
    let api: Api<Task> = Api::namespaced(client.clone(), &args.namespace);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("execute-{:08x}", rand_suffix()));
    let task: Task = serde_json::from_value(serde_json::json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": args.command, "framework": args.framework,
                 "resources": {"cpus": args.cpus, "memory": args.memory}}}))
    .context("building the task")?;
    api.create(&PostParams::default(), &task)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) => anyhow::anyhow!("creating task {name}: {}", s.message),
            e => anyhow::anyhow!("creating task {name} at {}: {e}", cfg.cluster_url),
        })?;
    eprintln!("task {name} created in namespace {}", args.namespace);
    let work = follow(&client, &cfg, &api, &name, &args);
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: killing task {name}");
            let _ = api.delete(&name, &Default::default()).await;
            Ok(130)
        }
    }
}

/// Shows the task's progress and output until it ends; its exit code for this process.
async fn follow(
    client: &Client,
    cfg: &kube::Config,
    api: &Api<Task>,
    name: &str,
    args: &ExecuteArgs,
) -> anyhow::Result<i32> {
    let mut last: Option<(Option<TaskPhase>, Option<String>)> = None;
    let mut streamed = false;
    loop {
        let t = api
            .get(name)
            .await
            .with_context(|| format!("reading task {name}"))?;
        let st = t.status.clone().unwrap_or_default();
        let now = (st.phase, st.reason.clone());
        if last.as_ref() != Some(&now) {
            let phase = st.phase.unwrap_or_default();
            match (&st.agent, &st.reason) {
                (Some(a), _) if phase == TaskPhase::Staging => {
                    eprintln!("task {name} Staging on agent {a}")
                }
                (_, Some(r)) => eprintln!(
                    "task {name} {phase:?} ({r}: {})",
                    st.message.clone().unwrap_or_default()
                ),
                _ => eprintln!("task {name} {phase:?}"),
            }
            last = Some(now);
        }
        let has_output = st.agent.is_some()
            && (matches!(st.phase, Some(TaskPhase::Running | TaskPhase::Killing))
                || (st.phase.is_some_and(|p| p.is_terminal()) && st.start_time.is_some()));
        if has_output && !streamed {
            streamed = true;
            let la = LogsArgs {
                task: name.to_string(),
                follow: true,
                stderr: false,
                attempt: None,
                namespace: args.namespace.clone(),
                kubeconfig: args.kubeconfig.clone(),
                direct: false,
            };
            match logs::open(client, cfg, &la).await {
                Ok(reader) => logs::copy_to_stdout(reader).await?,
                Err(e) => eprintln!("(the task's output is not available: {e:#})"),
            }
            continue;
        }
        if st.phase.is_some_and(|p| p.is_terminal()) {
            return Ok(match (st.phase, st.exit_code, st.signal) {
                (Some(TaskPhase::Finished), _, _) => 0,
                (_, Some(code), _) => code,
                (_, None, Some(sig)) => 128 + sig,
                _ => 1,
            });
        }
        if st.reason.as_deref() == Some("Unschedulable") && st.phase == Some(TaskPhase::Pending) {
            bail!(
                "task {name} cannot be placed: {} (it stays pending; delete it with: kubectl delete task {name})",
                st.message.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A random suffix for task names.
fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}
