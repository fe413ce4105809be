//! Leader election on a `coordination.k8s.io/v1` Lease, as Kubernetes
//! controllers do it, so that of several controller replicas exactly one acts.
//!
//! Every replica tries every `retry` to take or renew the Lease
//! `mosaic-controllers` in `mosaic-system`. Writes carry the Lease's
//! resourceVersion, so two replicas can never both take it. A replica takes it
//! when it is free or its holder has not renewed it for `lease_duration`; the
//! holder renews it and steps down (stops its controllers) when it has not
//! managed to renew for `renew_deadline`, which is shorter than the lease
//! duration, so the old leader has stopped before anyone else may start.

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The Lease's name (in `mosaic-system`).
pub const LEASE: &str = "mosaic-controllers";

/// Timing of the election.
#[derive(Clone, Debug)]
pub struct Election {
    /// This replica's identity (host name and pid, say).
    pub identity: String,
    /// How long a Lease not renewed stays its holder's.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down.
    pub renew_deadline: Duration,
    /// How often to try to take or renew.
    pub retry: Duration,
}

impl Election {
    /// Kubernetes's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(identity: impl Into<String>) -> Self {
        Self::with_lease(identity, Duration::from_secs(15))
    }

    /// A lease of `lease_duration`, renewed within two thirds of it, tried every tenth.
    pub fn with_lease(identity: impl Into<String>, lease_duration: Duration) -> Self {
        Self {
            identity: identity.into(),
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry: (lease_duration / 10).max(Duration::from_millis(200)),
        }
    }
}

fn micro_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One attempt to take or renew the Lease; whether this replica holds it now.
async fn try_hold(api: &Api<Lease>, e: &Election) -> Result<bool, kube::Error> {
    let now = jiff::Timestamp::now();
    let secs = e.lease_duration.as_secs().max(1) as i32;
    let current = match api.get_opt(LEASE).await? {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": LEASE, "namespace": "mosaic-system"},
                "spec": {"holderIdentity": e.identity, "leaseDurationSeconds": secs,
                         "acquireTime": micro_time(now), "renewTime": micro_time(now), "leaseTransitions": 0}}))
            .expect("a valid Lease");
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(err) => Err(err),
            };
        }
        Some(l) => l,
    };
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let mine = holder == e.identity;
    let expired = spec.renew_time.as_ref().is_none_or(|r| {
        let lasts =
            jiff::SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(secs).into());
        r.0.checked_add(lasts).is_ok_and(|until| until <= now)
    });
    if !mine && !holder.is_empty() && !expired {
        return Ok(false);
    }
    let mut next = current.clone();
    let s = next.spec.get_or_insert_with(Default::default);
    if !mine {
        s.acquire_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            now,
        ));
        s.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    s.holder_identity = Some(e.identity.clone());
    s.lease_duration_seconds = Some(secs);
    s.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        now,
    ));
    // A replace with the resourceVersion read: a compare-and-swap.
    match api.replace(LEASE, &PostParams::default(), &next).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Runs `work` (made afresh by `start` each time this replica becomes leader)
/// only while this replica holds the Lease; never returns.
pub async fn run_elected<F, Fut>(client: Client, e: Election, start: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, "mosaic-system");
    let mut leading: Option<tokio::task::JoinHandle<()>> = None;
    let mut last_renewed = Instant::now();
    loop {
        let held = match tokio::time::timeout(
            e.retry.max(Duration::from_secs(1)),
            try_hold(&api, &e),
        )
        .await
        {
            Ok(Ok(h)) => h,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "leader election: the Lease could not be read or written");
                false
            }
            Err(_) => {
                tracing::warn!("leader election: the API did not answer in time");
                false
            }
        };
        if held {
            last_renewed = Instant::now();
            if leading.is_none() {
                tracing::info!(identity = %e.identity, "became the leader; starting the controllers");
                leading = Some(tokio::spawn(start()));
                crate::metrics::METRICS.leader.set(1);
            }
        } else if let Some(work) = &leading
            && last_renewed.elapsed() >= e.renew_deadline.min(e.lease_duration)
        {
            tracing::warn!(identity = %e.identity, "lost the leadership; stopping the controllers");
            work.abort();
            leading = None;
            crate::metrics::METRICS.leader.set(0);
        }
        tokio::time::sleep(e.retry).await;
    }
}
