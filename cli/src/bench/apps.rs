//! `mosaic bench --shape app`: an App on the simulated agents, in three
//! phases timed from the write that starts each to the App's status saying
//! it is done (what `kubectl wait` and `mosaic rollout status` see): N
//! instances from apply to all healthy, a rolling upgrade of them
//! (`minimumHealthCapacity: 0.9`) to all new and healthy, then a scale to 2N.
//! Each phase's rate is instances per second; the server's CPU per instance
//! is compared, by the caller, with plain Tasks' in the same run.

use super::procs;
use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use mosaic_crds::App;
use serde_json::json;
use std::time::{Duration, Instant};

/// What one phase measured.
pub struct Phase {
    /// Its name.
    pub name: &'static str,
    /// Instances it started.
    pub instances: usize,
    /// From its write to done.
    pub elapsed: Duration,
    /// The server's CPU seconds (API server and controllers) meanwhile.
    pub server_cpu: f64,
}

impl Phase {
    /// Instances per second.
    pub fn rate(&self) -> f64 {
        self.instances as f64 / self.elapsed.as_secs_f64()
    }

    /// The server's CPU milliseconds per instance.
    pub fn cpu_ms_per_instance(&self) -> f64 {
        self.server_cpu * 1000.0 / self.instances as f64
    }
}

const NAME: &str = "bench";
const NAMESPACE: &str = "bench-app";

/// Constraints from `FIELD:OPERATOR[:VALUE]` flags, as the App's spec has them.
pub fn constraints(flags: &[String]) -> anyhow::Result<Vec<serde_json::Value>> {
    flags
        .iter()
        .map(|f| {
            let mut parts = f.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(field), Some(op), value) if !field.is_empty() => {
                    let mut c = json!({"field": field, "operator": op});
                    if let Some(v) = value {
                        c["value"] = v.into();
                    }
                    Ok(c)
                }
                _ => bail!("--constraint {f:?}: not FIELD:OPERATOR[:VALUE]"),
            }
        })
        .collect()
}

/// Runs the three phases with `n` instances of `cpus_milli` and `memory`
/// each, under `constraints`.
pub async fn run(
    cluster: &procs::Cluster,
    (n, cpus_milli, memory): (usize, u64, u64),
    constraints: &[serde_json::Value],
    timeout: Duration,
) -> anyhow::Result<Vec<Phase>> {
    // Its own namespace (and so its own default framework), apart from the
    // plain Tasks the caller then times in `default`.
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))?;
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .context("creating the App's namespace")?;
    let apps: Api<App> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let app: App = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "App",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": n,
            "upgradeStrategy": {"minimumHealthCapacity": 0.9},
            "constraints": constraints,
            "template": {"spec": {
                "command": "sleep infinity",
                "env": [{"name": "VERSION", "value": "1"}],
                "resources": {"cpus": format!("{cpus_milli}m"), "memory": memory.to_string()},
            }},
        },
    }))?;
    let mut phases = Vec::new();
    let started = begin(cluster);
    apps.create(&PostParams::default(), &app)
        .await
        .context("creating the App")?;
    phases.push(finish(cluster, &apps, "apply", n, n, started, timeout).await?);

    let started = begin(cluster);
    let patch =
        json!({"spec": {"template": {"spec": {"env": [{"name": "VERSION", "value": "2"}]}}}});
    apps.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .context("changing the App's template")?;
    phases.push(finish(cluster, &apps, "rolling upgrade", n, n, started, timeout).await?);

    let started = begin(cluster);
    let patch = json!({"spec": {"replicas": 2 * n}});
    apps.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .context("scaling the App")?;
    phases.push(finish(cluster, &apps, "scale up", n, 2 * n, started, timeout).await?);
    Ok(phases)
}

fn begin(cluster: &procs::Cluster) -> (Instant, f64) {
    (Instant::now(), cluster.cpu()[0])
}

/// Waits until the App's status says `want` instances, all of its current
/// template and healthy, as of its latest generation.
async fn finish(
    cluster: &procs::Cluster,
    apps: &Api<App>,
    name: &'static str,
    instances: usize,
    want: usize,
    (start, cpu): (Instant, f64),
    timeout: Duration,
) -> anyhow::Result<Phase> {
    let want = want as i32;
    let mut last_report = Instant::now();
    loop {
        let a = apps.get(NAME).await.context("reading the App")?;
        let done = a.status.as_ref().is_some_and(|s| {
            s.observed_generation == a.metadata.generation
                && s.replicas == want
                && s.ready_replicas == want
                && s.updated_replicas == want
                && s.current_revision == s.update_revision
        });
        if done {
            let phase = Phase {
                name,
                instances,
                elapsed: start.elapsed(),
                server_cpu: cluster.cpu()[0] - cpu,
            };
            eprintln!(
                "mosaic bench: {name}: {instances} instances in {:.1} s ({:.0}/s)",
                phase.elapsed.as_secs_f64(),
                phase.rate()
            );
            return Ok(phase);
        }
        if start.elapsed() > timeout {
            bail!(
                "{name}: the App was not done after {timeout:?}: {:?}",
                a.status
            );
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            let s = a.status.unwrap_or_default();
            eprintln!(
                "mosaic bench: {name}: {} replicas, {} ready, {} updated after {:.0} s",
                s.replicas,
                s.ready_replicas,
                s.updated_replicas,
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
