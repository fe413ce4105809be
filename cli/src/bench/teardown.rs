//! `mosaic bench --shape app`'s last phase: the plain Tasks, all Running,
//! deleted by as many concurrent clients as created them, timed from the
//! first delete to the last Task gone (killed by its agent, its finalizer
//! released). A rolling upgrade both starts an instance and ends one for each
//! it replaces, so its CPU is also set against a plain Task's start and end.

use super::apps::Phase;
use super::procs;
use super::workload::Lite;
use anyhow::{Context, bail};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams};
use kube::runtime::watcher;
use mosaic_crds::Task;
use std::time::{Duration, Instant};

/// Deletes the Tasks `names` in `default` with `clients` at once and waits
/// (at most `timeout`) until a watch has seen every one of them go.
pub async fn delete_all(
    cluster: &procs::Cluster,
    names: Vec<String>,
    clients: usize,
    timeout: Duration,
) -> anyhow::Result<Phase> {
    let ar = ApiResource::erase::<Task>(&());
    let lite: Api<Lite> = Api::namespaced_with(cluster.client.clone(), "default", &ar);
    let mut events = watcher(lite, watcher::Config::default()).boxed();
    // The watch is listed and open before the clock starts.
    loop {
        match events.next().await {
            Some(Ok(watcher::Event::InitDone)) => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("watching the Tasks"),
            None => bail!("the Task watch ended before it was listed"),
        }
    }
    let total = names.len();
    let mut waiting: std::collections::HashSet<String> = names.iter().cloned().collect();
    let (start, cpu) = (Instant::now(), cluster.cpu()[0]);
    let api: Api<Task> = Api::namespaced(cluster.client.clone(), "default");
    let deletes = futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                api.delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting task {name}"))
                    .map(drop)
            }
        })
        .buffer_unordered(clients.max(1))
        .collect::<Vec<anyhow::Result<()>>>();
    // Only these Tasks' deletions count; a relist (which brings no Delete
    // events) is taken as the list of those still there.
    let gone = async {
        let mut listed = std::collections::HashSet::new();
        while !waiting.is_empty() {
            match events.next().await {
                Some(Ok(watcher::Event::Delete(t))) => {
                    waiting.remove(&t.name_any());
                }
                Some(Ok(watcher::Event::Init)) => listed.clear(),
                Some(Ok(watcher::Event::InitApply(t))) => {
                    listed.insert(t.name_any());
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    waiting.retain(|n| listed.contains(n));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("watching the Tasks"),
                None => bail!(
                    "the Task watch ended with {} of {total} not gone",
                    waiting.len()
                ),
            }
        }
        Ok(())
    };
    let (results, gone) = tokio::time::timeout(timeout, futures::future::join(deletes, gone))
        .await
        .with_context(|| format!("the plain Tasks were not all gone after {timeout:?}"))?;
    for r in results {
        r?;
    }
    gone?;
    let phase = Phase {
        name: "plain delete",
        instances: total,
        elapsed: start.elapsed(),
        server_cpu: cluster.cpu()[0] - cpu,
    };
    eprintln!(
        "mosaic bench: {total} plain Tasks deleted and gone in {:.1} s ({:.0}/s)",
        phase.elapsed.as_secs_f64(),
        phase.rate()
    );
    Ok(phase)
}
