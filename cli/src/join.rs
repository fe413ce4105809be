//! An agent's client: with its own identity (`mosaic_agent::join`) when the
//! server issues one, asked for with the credentials the agent was given;
//! else with those credentials as they are (a real Kubernetes cluster).

use anyhow::Context;
use mosaic_agent::join::{self, Identity, JoinError};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a new agent waits for an agent of its name to be seen stopped.
const WAIT_FOR_NAME: Duration = Duration::from_secs(120);

/// The agent `name`'s client, and its endpoint's serving certificate and key
/// when it has its own identity. `hosts` name the endpoint.
pub async fn agent_client(
    kubeconfig: Option<&Path>,
    name: &str,
    data_dir: &Path,
    hosts: &[String],
) -> anyhow::Result<(kube::Client, Option<mosaic_agent::join::Serving>)> {
    let base = crate::cluster::component_config(kubeconfig, "mosaic-agent").await?;
    if let Some(id) = join::load(data_dir) {
        return with_identity(&base, id);
    }
    let given = kube::Client::try_from(base.clone()).context("building the API client")?;
    let started = Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        match join::request(&given, name, hosts).await {
            Ok(Some(id)) => {
                join::save(data_dir, &id)?;
                tracing::info!(agent = name, "joined with its own identity");
                return with_identity(&base, id);
            }
            Ok(None) => return Ok((given, None)),
            Err(JoinError::Running(..)) if started.elapsed() < WAIT_FOR_NAME => {
                tracing::info!(
                    agent = name,
                    "an agent of this name is running; waiting for it to stop"
                );
            }
            // The control plane may be starting: as registration does, keep trying.
            Err(JoinError::Api(_, kube::Error::Api(s))) if s.code < 500 => {
                anyhow::bail!("asking for agent {name}'s identity: {}", s.message)
            }
            Err(e @ JoinError::Api(..)) if started.elapsed() < WAIT_FOR_NAME => {
                tracing::warn!(agent = name, error = %e, "asking for the agent's identity; retrying");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

fn with_identity(
    base: &kube::Config,
    id: Identity,
) -> anyhow::Result<(kube::Client, Option<mosaic_agent::join::Serving>)> {
    let cfg = join::client_config(base, &id);
    let client = kube::Client::try_from(cfg).context("building the agent's client")?;
    let serving = id.serving();
    Ok((client, Some(serving)))
}
