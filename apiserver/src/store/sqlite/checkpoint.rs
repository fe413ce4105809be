//! Keeping the write-ahead log short without making commits wait for it.
//!
//! A background thread copies the log into the database (a PASSIVE
//! checkpoint) every 200 ms, on its own connection, while the writer goes on
//! committing. That alone never lets the log start again: SQLite rewinds to
//! the log's first byte only when a write transaction begins with every frame
//! already copied, and with a second connection checkpointing while the writer
//! appends there is always a tail left. The log then grows without bound (the
//! disk fills) and every commit appends to a growing file (new blocks to
//! allocate and zero, the file size in every sync) instead of overwriting
//! cached blocks.
//!
//! So once the log passes a limit ([`RESET_FRAMES`]), the writer asks the
//! background thread for passes at once until what they leave behind is short
//! ([`SHORT_TAIL`]), then finishes the checkpoint on its own connection, and
//! the next commit starts the log again. Commits pause meanwhile for the copy
//! of that tail and one sync of the database file: 2 to 25 ms measured under
//! shape (b) of `mosaic bench`, once per limit's worth of log.

use crate::store::StoreError;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The log's length, in frames (pages), past which the writer has the log
/// start again (64 MiB at 4 KiB pages). Finishing a checkpoint pauses commits
/// for one sync of the database file (a few milliseconds, up to about 20 under
/// a full disk queue), so this is large: the pause comes once per 64 MiB
/// written.
pub(super) const RESET_FRAMES: usize = 16384;

/// How many frames may be left for the writer to copy itself; with more, it
/// asks the background thread for another pass.
const SHORT_TAIL: usize = 256;

/// How often the background thread copies the log when nobody asks.
const INTERVAL: Duration = Duration::from_millis(200);

/// What the writer and the background thread share.
#[derive(Default)]
struct Shared {
    /// Frames in the log after the writer's last commit (SQLite's WAL hook).
    frames: AtomicUsize,
    /// The writer wants a pass now.
    requested: AtomicBool,
    /// A requested pass has finished.
    ready: AtomicBool,
    /// Frames copied into the database by the background thread's last pass.
    backfilled: AtomicUsize,
    /// The store is closed: the background thread ends.
    closed: AtomicBool,
}

/// The writer's side: started with the store, stops the background thread
/// when dropped (with the writer thread).
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    background: std::thread::Thread,
    /// A pass was requested and is not finished yet.
    asked: bool,
    /// The log's length past which it should start again.
    limit: usize,
}

impl Checkpointer {
    /// Registers the WAL hook on the writer's connection and starts the
    /// background thread on `conn`, a second connection to the same file.
    /// The log starts again once it is `limit` frames long.
    pub(super) fn start(
        writer: &mut Connection,
        conn: Connection,
        limit: usize,
    ) -> Result<Self, StoreError> {
        // This hook takes the place of SQLite's automatic checkpoint (the
        // same hook), so no checkpoint runs inside a commit.
        let shared = Arc::new(Shared::default());
        let hook = shared.clone();
        writer.wal_hook(Some(
            move |_: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
                let frames = usize::try_from(frames).unwrap_or(0);
                hook.frames.store(frames, Ordering::Relaxed);
                Ok(())
            },
        ))?;
        let bg = shared.clone();
        let background = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || background_loop(&conn, &bg))
            .map_err(|e| StoreError::Unavailable(format!("starting the checkpoint thread: {e}")))?
            .thread()
            .clone();
        Ok(Self {
            shared,
            background,
            asked: false,
            limit,
        })
    }

    /// Called by the writer after each commit: asks for passes once the log
    /// is long, and finishes the checkpoint once one leaves a short tail.
    pub(super) fn after_commit(&mut self, writer: &Connection) {
        let frames = self.shared.frames.load(Ordering::Relaxed);
        if frames < self.limit {
            self.asked = false;
            return;
        }
        if self.shared.ready.swap(false, Ordering::AcqRel) {
            let tail = frames.saturating_sub(self.shared.backfilled.load(Ordering::Acquire));
            if tail > SHORT_TAIL {
                self.ask();
                return;
            }
            self.asked = false;
            // Should the background thread be in a pass of its own, this
            // copies nothing, the log does not start again, and the next
            // commit asks anew.
            if let Err(e) = checkpoint(writer) {
                tracing::debug!(error = %e, "finishing a WAL checkpoint");
            }
        } else if !self.asked {
            self.ask();
        }
    }

    fn ask(&mut self) {
        self.asked = true;
        self.shared.requested.store(true, Ordering::Release);
        self.background.unpark();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.background.unpark();
    }
}

/// One PASSIVE checkpoint: copies what it can without waiting for anyone.
/// Returns how many frames of the log are now in the database (0 when
/// another checkpoint was running).
fn checkpoint(conn: &Connection) -> rusqlite::Result<usize> {
    let copied: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(2))?;
    Ok(usize::try_from(copied).unwrap_or(0))
}

fn background_loop(conn: &Connection, shared: &Shared) {
    loop {
        std::thread::park_timeout(INTERVAL);
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let requested = shared.requested.swap(false, Ordering::AcqRel);
        match checkpoint(conn) {
            Ok(copied) => {
                shared.backfilled.store(copied, Ordering::Release);
                if requested {
                    shared.ready.store(true, Ordering::Release);
                }
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}
