//! The Agent object and its heartbeat Lease.

use crate::AgentConfig;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use mosaic_crds::agent::{AgentResources, AgentStatus};
use mosaic_crds::status_apply::StatusApply;
use mosaic_crds::{Agent, ResourceQuantities, lifecycle};
use serde_json::json;
use std::time::Duration;

/// The label every simulated Agent carries.
pub const SIMULATED_LABEL: &str = "mosaic.dev/simulated";

/// A Lease lasts this many heartbeats.
const LEASE_HEARTBEATS: u64 = 4;

/// The field manager of what the agent reports in its Agent's status.
pub const FIELD_MANAGER: &str = "mosaic-agent";

fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// What this machine has: (millicores, bytes of memory).
pub fn detect_resources() -> (u64, u64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64 * 1000;
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(1 << 30, |kb| kb * 1024);
    (cpus, mem)
}

/// Creates or updates the Agent and reports its status.
pub async fn register(
    client: &Client,
    cfg: &AgentConfig,
    mode: &crate::cgroup::Mode,
    endpoint: Option<&(String, String)>,
) -> Result<(), kube::Error> {
    let api: Api<Agent> = Api::all(client.clone());
    let mut labels = cfg.labels.clone();
    labels.insert("mosaic.dev/hostname".into(), cfg.name.clone());
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": cfg.name, "labels": labels}, "spec": {}}))
    .expect("a valid Agent");
    match api.create(&PostParams::default(), &agent).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            api.patch(
                &cfg.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": labels}})),
            )
            .await?;
        }
        Err(e) => return Err(e),
    }
    let (cpus, mem) = cfg.resources.unwrap_or_else(detect_resources);
    let q = AgentResources::new(ResourceQuantities::from_units(cpus, mem), &cfg.ports);
    let current = api.get(&cfg.name).await?;
    let status = AgentStatus::registered(
        q,
        mode.name(),
        env!("CARGO_PKG_VERSION"),
        endpoint.cloned(),
        current.metadata.generation,
        lifecycle::now(),
    );
    // Applied as the agent's own field manager: what it reports is its own,
    // and the conditions others own (a maintenance window's) stay.
    let body = StatusApply::of::<Agent>(&status);
    api.patch_status(
        &cfg.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    let simulated = cfg.labels.contains_key(SIMULATED_LABEL);
    if *mode == crate::cgroup::Mode::None && !simulated {
        tracing::warn!(agent = %cfg.name, root = %cfg.cgroup_root.display(),
            "no usable cgroups: tasks run WITHOUT resource limits (status.cgroup: none)");
        let message = format!(
            "no usable cgroups under {}: tasks on this agent run without CPU, memory or pids limits",
            cfg.cgroup_root.display()
        );
        crate::events::record(
            client,
            &cfg.name,
            &current,
            "Warning",
            "NoCgroups",
            &message,
        )
        .await;
    }
    Ok(())
}

/// Renews the agent's Lease in `mosaic-system` every `every`; it lasts four heartbeats.
pub async fn heartbeat(client: Client, name: String, every: Duration) {
    let lease_seconds = (every.as_secs() * LEASE_HEARTBEATS).max(1) as i32;
    let api: Api<Lease> = Api::namespaced(client, "mosaic-system");
    let mut renewed = false;
    loop {
        let body = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": lease_seconds, "renewTime": now_micro()},
        });
        let lease: Lease = serde_json::from_value(body.clone()).expect("a valid Lease");
        let (pp, post, merge) = (
            PatchParams::default(),
            PostParams::default(),
            Patch::Merge(&body),
        );
        let patch = || api.patch(&name, &pp, &merge);
        let create = || api.create(&post, &lease);
        // The first renewal creates the Lease (a restarted agent finds it there:
        // 409, then a patch); later ones patch it (gone meanwhile: 404, then a
        // create). So a new agent's first heartbeat is one request, not a refusal
        // and a retry.
        let res = if renewed {
            match patch().await {
                Err(kube::Error::Api(s)) if s.code == 404 => create().await.map(|_| ()),
                other => other.map(|_| ()),
            }
        } else {
            match create().await {
                Err(kube::Error::Api(s)) if s.code == 409 => patch().await.map(|_| ()),
                other => other.map(|_| ()),
            }
        };
        match res {
            Ok(()) => renewed = true,
            Err(e) => tracing::warn!(error = %e, "renewing the agent lease"),
        }
        tokio::time::sleep(every).await;
    }
}
