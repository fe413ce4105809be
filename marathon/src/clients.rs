//! A Kubernetes client per caller: the API server's address and CA, with
//! the caller's token as the only credential. Clients are kept (a bounded
//! number) so that a caller's calls share connections.

use std::collections::HashMap;
use std::sync::Mutex;

/// How many callers' clients are kept.
const KEPT: usize = 256;

/// Makes and keeps callers' clients.
pub struct Clients {
    base: kube::Config,
    kept: Mutex<HashMap<String, kube::Client>>,
}

impl Clients {
    /// Clients of the API server `base` names; whatever credentials `base`
    /// holds are dropped.
    pub fn new(mut base: kube::Config) -> Self {
        base.auth_info = Default::default();
        Self {
            base,
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// The client acting as the holder of `token` (one [`crate::auth::token`]
    /// accepted: a valid header value).
    pub fn for_token(&self, token: &str) -> Result<kube::Client, kube::Error> {
        if let Some(c) = self.kept().get(token) {
            return Ok(c.clone());
        }
        let mut cfg = self.base.clone();
        cfg.auth_info.token = Some(token.to_string().into());
        let client = kube::Client::try_from(cfg)?;
        let mut kept = self.kept();
        if kept.len() >= KEPT
            && let Some(some) = kept.keys().next().cloned()
        {
            kept.remove(&some);
        }
        kept.insert(token.to_string(), client.clone());
        Ok(client)
    }

    /// The kept clients (a panic elsewhere while it was held leaves a map
    /// that is still whole).
    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, kube::Client>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}
