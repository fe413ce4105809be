//! Writes the API server refuses (403) are reported loudly: a warn-level log
//! line and a Warning Event (reason `Forbidden`) on the object, each naming
//! the verb and resource in the server's own words, so that a permission the
//! controllers' ClusterRole lacks shows at once, on `mosaic server` as on
//! Kubernetes. Once per object and kind of write, not every cycle: the
//! controllers go on retrying, and the Event would otherwise flood.

use kube::{Client, Resource, ResourceExt};
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

/// The (write, object uid) pairs already reported.
static REPORTED: LazyLock<Mutex<HashSet<(String, String)>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// At most this many pairs are remembered (then the set starts over).
const REMEMBERED: usize = 10_000;

/// Whether `e` is the API server's refusal (403).
pub fn is_refusal(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// Reports `e` when it is a refusal of `what` (a write of `obj`); whether it was.
pub async fn report<K>(client: &Client, obj: &K, what: &str, e: &kube::Error) -> bool
where
    K: Resource<DynamicType = ()>,
{
    let kube::Error::Api(status) = e else {
        return false;
    };
    if status.code != 403 {
        return false;
    }
    let key = (
        what.to_string(),
        obj.uid().unwrap_or_else(|| obj.name_any()),
    );
    {
        let mut seen = REPORTED.lock().expect("refusals lock");
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        if !seen.insert(key) {
            return true;
        }
    }
    tracing::warn!(
        kind = %K::kind(&()),
        object = %obj.name_any(),
        write = what,
        refusal = %status.message,
        "the API server refused a controller write (its ClusterRole lacks the permission); retrying"
    );
    let message = format!(
        "the controllers may not write this object's {what}: {}",
        status.message
    );
    crate::events::record(client, obj, "Warning", "Forbidden", &message).await;
    true
}
