//! Events expire, as kube-apiserver's `--event-ttl` (one hour by default) makes
//! them: an Event last seen longer ago than the TTL is deleted, so a long-lived
//! cluster does not keep every Event it ever recorded. "Last seen" is the
//! latest of the Event's `lastTimestamp`, `eventTime`, `series.lastObservedTime`
//! and `metadata.creationTimestamp`. A sweep runs every tenth of the TTL (at
//! most every minute); a delete is a compare-and-swap, so an Event updated
//! meanwhile, or swept by another server of the same cluster, is left alone.

use crate::store::{ListRequest, Precondition, Store, StoreError};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Where both core/v1 and events.k8s.io/v1 Events are kept.
const PREFIX: &str = "/core/events/";

/// Sweeps expired Events for as long as the server runs.
pub async fn run(store: Arc<dyn Store>, ttl: Duration) {
    let every = (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep(&*store, ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "expired events deleted"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired events"),
        }
    }
}

/// Deletes the Events last seen more than `ttl` ago; how many went.
pub async fn sweep(store: &dyn Store, ttl: Duration) -> Result<usize, StoreError> {
    let oldest = jiff::Timestamp::now().as_millisecond() - ttl.as_millis() as i64;
    let mut after: Option<String> = None;
    let mut deleted = 0;
    loop {
        let page = store
            .list(ListRequest {
                prefix: PREFIX,
                after: after.as_deref(),
                limit: 1000,
                revision: None,
            })
            .await?;
        for kv in &page.items {
            if last_seen_ms(&kv.value).is_some_and(|t| t < oldest) {
                let pre = Precondition::ModRevision(kv.mod_revision);
                match store.delete(kv.key.clone(), pre).await {
                    Ok(_) => deleted += 1,
                    Err(StoreError::NotFound(_) | StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match page.more_after {
            Some(k) => after = Some(k),
            None => return Ok(deleted),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Times {
    last_timestamp: Option<String>,
    event_time: Option<String>,
    series: Option<Series>,
    metadata: Option<Meta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Series {
    last_observed_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    creation_timestamp: Option<String>,
}

/// When a stored Event was last seen (ms since the epoch), if it says.
fn last_seen_ms(value: &[u8]) -> Option<i64> {
    let t: Times = serde_json::from_slice(value).ok()?;
    [
        t.last_timestamp,
        t.event_time,
        t.series.and_then(|s| s.last_observed_time),
        t.metadata.and_then(|m| m.creation_timestamp),
    ]
    .into_iter()
    .flatten()
    .filter_map(|s| s.parse::<jiff::Timestamp>().ok())
    .map(|ts| ts.as_millisecond())
    .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use serde_json::json;

    fn event(last: &str, created: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "creationTimestamp": created},
            "lastTimestamp": last, "reason": "Scheduled"}))
        .unwrap()
    }

    #[test]
    fn last_seen_is_the_latest_time_an_event_names() {
        let e = event("2026-01-01T00:00:10Z", "2026-01-01T00:00:00Z");
        let want: jiff::Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(last_seen_ms(&e), Some(want.as_millisecond()));
        let series = serde_json::to_vec(&json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "eventTime": "2026-01-01T00:00:01.000000Z", "series": {"lastObservedTime": "2026-01-01T00:05:00.000000Z"}}))
        .unwrap();
        let want: jiff::Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        assert_eq!(last_seen_ms(&series), Some(want.as_millisecond()));
        assert_eq!(last_seen_ms(b"{}"), None);
        assert_eq!(last_seen_ms(b"not json"), None);
    }

    #[tokio::test]
    async fn a_sweep_deletes_only_events_older_than_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let now = jiff::Timestamp::now();
        let old = (now - jiff::SignedDuration::from_secs(7200)).to_string();
        let recent = (now - jiff::SignedDuration::from_secs(60)).to_string();
        store
            .create("/core/events/default/old".into(), event(&old, &old))
            .await
            .unwrap();
        store
            .create("/core/events/default/recent".into(), event(&recent, &old))
            .await
            .unwrap();
        // Not an Event, however old it looks.
        store
            .create("/core/eventsx/default/other".into(), event(&old, &old))
            .await
            .unwrap();
        let n = sweep(&store, Duration::from_secs(3600)).await.unwrap();
        assert_eq!(n, 1);
        assert!(
            store
                .get("/core/events/default/old")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get("/core/events/default/recent")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .get("/core/eventsx/default/other")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(sweep(&store, Duration::from_secs(3600)).await.unwrap(), 0);
    }
}
