//! One controller manager: the scheduler cycle and every kind's controller,
//! started together (under the caller's leader election), sharing one watch
//! and cache per kind ([`crate::index::Registry`]), and each started again if
//! it stops. A kind with its own controller registers it in [`crate::kinds`].

use crate::index::Registry;
use crate::scheduler;
use crate::watches::AbortOnDrop;
use kube::Client;
use std::time::Duration;

/// Runs the scheduler and every registered controller until the process ends.
pub async fn run(client: Client, opts: scheduler::Options) {
    let registry = Registry::new(client.clone());
    let mut all = vec![tokio::spawn(scheduler::run_supervised(
        client.clone(),
        registry.clone(),
        opts,
    ))];
    for r in crate::kinds::CONTROLLERS {
        all.push(tokio::spawn(supervised(
            r,
            client.clone(),
            registry.clone(),
        )));
    }
    let _stop_with_me = AbortOnDrop(all.iter().map(|t| t.abort_handle()).collect());
    futures::future::join_all(all).await;
}

/// Runs the manager whenever this process leads (`identity`, holding the
/// Lease `mosaic-system/mosaic-controllers`, which lasts `lease` unrenewed):
/// what `mosaic up`, `mosaic server` and `mosaic controllers` all run.
pub async fn run_elected(
    client: Client,
    opts: scheduler::Options,
    identity: String,
    lease: Duration,
) {
    let election = crate::leader::Election::with_lease(identity, lease);
    crate::leader::run_elected(client.clone(), election, move || {
        run(client.clone(), opts.clone())
    })
    .await
}

/// Runs `r`, starting it again (after a second) if it stops or panics.
async fn supervised(r: &'static crate::kinds::Registration, client: Client, registry: Registry) {
    loop {
        let task = tokio::spawn((r.run)(client.clone(), registry.clone()));
        let _stop_with_me = AbortOnDrop(vec![task.abort_handle()]);
        match task.await {
            Ok(()) => tracing::error!(
                controller = r.name,
                "a controller stopped; starting it again"
            ),
            Err(e) => {
                tracing::error!(controller = r.name, error = %e, "a controller panicked; starting it again")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
