//! A streamed response's buffer bounded in bytes, not in chunks: a watch may
//! queue at most [`WATCH_BYTES`] of encoded events for its client; the
//! producer waits for the client to read before it encodes more. A client
//! that never reads thus holds a bounded buffer, and the store drops its
//! watch once the store's own queue for it fills (it then resumes from a
//! resourceVersion, as every watch client does).

use super::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What one watch may hold encoded and unread.
pub const WATCH_BYTES: usize = 1 << 20;

/// The sending half: each chunk holds its size in the budget until the
/// response body hands it on.
pub struct Sender {
    tx: mpsc::UnboundedSender<(Bytes, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
    cap: u32,
}

/// A channel of at most `bytes` unread (a single larger chunk takes it all).
pub fn channel(bytes: usize) -> (Sender, Body) {
    let cap = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
    let (tx, rx) = mpsc::unbounded_channel::<(Bytes, OwnedSemaphorePermit)>();
    let body = futures::stream::unfold(rx, |mut rx| async move {
        // The permit goes when the chunk is handed to the connection.
        rx.recv()
            .await
            .map(|(b, _permit)| (Ok::<_, Infallible>(http_body::Frame::data(b)), rx))
    });
    let sender = Sender {
        tx,
        budget: Arc::new(Semaphore::new(cap as usize)),
        cap,
    };
    (sender, StreamBody::new(body).boxed_unsync())
}

impl Sender {
    fn size(&self, b: &Bytes) -> u32 {
        u32::try_from(b.len())
            .unwrap_or(u32::MAX)
            .clamp(1, self.cap)
    }

    /// Queues `b` once the budget has room; `Err` when the client is gone.
    pub async fn send(&self, b: Bytes) -> Result<(), ()> {
        let permit = tokio::select! {
            p = self.budget.clone().acquire_many_owned(self.size(&b)) => p.map_err(|_| ())?,
            _ = self.tx.closed() => return Err(()),
        };
        self.tx.send((b, permit)).map_err(|_| ())
    }

    /// Queues `b` if the budget has room now.
    pub fn try_send(&self, b: Bytes) -> Result<(), ()> {
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(self.size(&b))
            .map_err(|_| ())?;
        self.tx.send((b, permit)).map_err(|_| ())
    }

    /// Resolves when the client has gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unread_stream_holds_at_most_its_budget() {
        let (tx, mut body) = channel(1000);
        tx.send(Bytes::from(vec![0; 600])).await.unwrap();
        // Past the budget: waits until the client reads.
        let more = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            tx.send(Bytes::from(vec![0; 600])),
        )
        .await;
        assert!(more.is_err(), "a second 600 bytes fit a 1000-byte budget");
        assert!(tx.try_send(Bytes::from(vec![0; 600])).is_err());
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap().len(), 600);
        tx.send(Bytes::from(vec![0; 600])).await.unwrap();
        // A chunk larger than the whole budget still goes, alone.
        drop(body.frame().await);
        tx.send(Bytes::from(vec![0; 5000])).await.unwrap();
        drop(body);
        assert!(tx.send(Bytes::from_static(b"x")).await.is_err());
    }
}
