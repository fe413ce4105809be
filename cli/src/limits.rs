//! The flags every listener shares (`mosaic server`, `mosaic agent`, `mosaic
//! up`): its connection cap and idle timeout (see `mosaic_listener`).

use clap::Args;

/// Flags for a listener's limits.
#[derive(Args, Clone, Debug)]
pub struct ListenerArgs {
    /// Connections served at once on each listener; past it, a few are
    /// answered 503 and the rest closed.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// A connection with no request under way and no traffic for this long
    /// is closed, e.g. 90s, 5m.
    #[arg(long, default_value = "90s", value_parser = crate::cluster::parse_duration)]
    pub idle_timeout: std::time::Duration,
}

impl ListenerArgs {
    /// The limits these flags give.
    pub fn limits(&self) -> mosaic_listener::Limits {
        mosaic_listener::Limits {
            max_connections: self.max_connections.max(1),
            idle: self.idle_timeout,
            ..Default::default()
        }
    }
}

/// Lifts the soft limit on open files to the hard one (as a daemon does at
/// start), so the connection cap is reached before the descriptors run out.
pub fn raise_open_files() {
    match mosaic_listener::raise_open_files_limit() {
        Ok(n) => tracing::debug!(limit = n, "open files"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
}
