//! Writes of many instances in slow-start batches, as Kubernetes's
//! ReplicaSet controller makes Pods (`slowStartBatch`): one, then two, four
//! and so on at once (at most [`MAX_IN_FLIGHT`]), stopping after the first
//! batch with a failure, so that a write refused for all (a quota, a missing
//! permission) costs one call rather than thousands, and a large App is
//! started at the API server's pace rather than one call at a time.

use std::future::Future;

/// The most writes one App has in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// Runs `write` for each item in slow-start batches; the first error, if
/// any, once its batch has ended (the batch's other writes have happened).
pub async fn slow_start<T, E, F, Fut>(items: impl IntoIterator<Item = T>, write: F) -> Result<(), E>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut items = items.into_iter().peekable();
    let mut size = 1;
    while items.peek().is_some() {
        let batch: Vec<Fut> = items.by_ref().take(size).map(&write).collect();
        for r in futures::future::join_all(batch).await {
            r?;
        }
        size = (size * 2).min(MAX_IN_FLIGHT);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn batches_double_and_stop_after_the_first_failure() {
        let calls = Mutex::new(Vec::new());
        let r = slow_start(0..100, |i| {
            calls.lock().unwrap().push(i);
            async move { if i == 5 { Err(i) } else { Ok(()) } }
        })
        .await;
        assert_eq!(r, Err(5));
        // Batches 1, 2, 4: the one holding item 5 (3..7) ends, none after.
        assert_eq!(*calls.lock().unwrap(), (0..7).collect::<Vec<_>>());
        let calls = Mutex::new(0);
        slow_start(0..1000, |_| {
            *calls.lock().unwrap() += 1;
            async { Ok::<(), ()>(()) }
        })
        .await
        .unwrap();
        assert_eq!(*calls.lock().unwrap(), 1000);
    }
}
