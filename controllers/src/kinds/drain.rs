//! Drains: an Agent with `spec.drain` (set by `mosaic drain`, with
//! `spec.unschedulable`) has its App instances moved by the App controller,
//! within each App's upgrade strategy; this controller kills whatever is
//! still on it at the drain's deadline (deleting a Task kills it with its
//! grace period), and says so in a Warning Event on the Agent.

use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use mosaic_crds::Agent;
use mosaic_crds::task::Task;
use std::sync::Arc;
use std::time::Duration;

/// What a drain reconcile could not do.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The drain's deadline is not an RFC 3339 time.
    #[error("agent {agent}: spec.drain.deadline {deadline:?} is not an RFC 3339 time")]
    Deadline {
        /// The agent.
        agent: String,
        /// What it says.
        deadline: String,
    },
    /// The API did not answer or refused.
    #[error("agent {agent}: {what}: {source}")]
    Api {
        /// The agent.
        agent: String,
        /// What was asked.
        what: &'static str,
        /// The answer.
        #[source]
        source: kube::Error,
    },
}

/// Runs the drain controller until the process ends.
pub async fn run(client: Client, registry: crate::index::Registry) {
    super::agent_specs::run(client, registry, reconcile, error_policy).await;
}

async fn reconcile(agent: Arc<Agent>, client: Arc<Client>) -> Result<Action, DrainError> {
    let started = std::time::Instant::now();
    let done = reconcile_once(agent, client).await;
    crate::metrics::reconciled("drain", started);
    done
}

async fn reconcile_once(agent: Arc<Agent>, client: Arc<Client>) -> Result<Action, DrainError> {
    let Some(drain) = &agent.spec.drain else {
        return Ok(Action::await_change());
    };
    let name = agent.name_any();
    let deadline: jiff::Timestamp = drain.deadline.parse().map_err(|_| DrainError::Deadline {
        agent: name.clone(),
        deadline: drain.deadline.clone(),
    })?;
    let now = jiff::Timestamp::now();
    if now < deadline {
        let wait = Duration::try_from(deadline.duration_since(now)).unwrap_or_default();
        return Ok(Action::requeue(
            wait.min(Duration::from_secs(300)) + Duration::from_millis(10),
        ));
    }
    let api = Api::<Task>::all((*client).clone());
    let api_error = |what| {
        let agent = name.clone();
        move |source| DrainError::Api {
            agent,
            what,
            source,
        }
    };
    let on_it = api
        .list(&ListParams::default().fields(&format!("status.agent={name}")))
        .await
        .map_err(api_error("listing its tasks"))?;
    let left: Vec<Task> = on_it
        .items
        .into_iter()
        .filter(|t| {
            t.metadata.deletion_timestamp.is_none()
                && !t
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p.is_terminal())
        })
        .collect();
    if left.is_empty() {
        // A task bound in the moment the cordon took effect may still
        // arrive: look again soon while the drain stands.
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let names: Vec<String> = left.iter().map(|t| t.name_any()).collect();
    crate::events::record(
        &client,
        agent.as_ref(),
        "Warning",
        "DrainDeadline",
        &format!(
            "the drain's deadline passed: killing the {} task(s) still here: {}",
            left.len(),
            names.join(", ")
        ),
    )
    .await;
    for t in &left {
        let tasks = Api::<Task>::namespaced((*client).clone(), &t.namespace().unwrap_or_default());
        match tasks.delete(&t.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                crate::refused::report(&client, t, "delete (drain)", &e).await;
                return Err(api_error("killing a task at the deadline")(e));
            }
        }
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}

fn error_policy(agent: Arc<Agent>, e: &DrainError, _client: Arc<Client>) -> Action {
    tracing::warn!(agent = %agent.name_any(), error = %e, "draining an agent; retrying in 10s");
    Action::requeue(Duration::from_secs(10))
}
