//! Admission that depends on who writes, run on every create and update of
//! a resource's main object: what an agent may write ([`crate::rbac::node`],
//! also run on status writes), who may run a Task as which Unix user
//! ([`crate::task_user`]), and RBAC's escalation prevention
//! ([`crate::rbac::escalation`]).

use super::objects::Request;
use crate::error::ApiError;
use crate::rbac::Policy;
use serde_json::Value;

/// Checks (and for Tasks, marks) `new`; `old` is the stored object on an
/// update. A refusal is decided again on a fresh view of RBAC when the store
/// has moved on (as requests are authorized), so a grant just written counts.
pub async fn admit(req: &Request, old: Option<&Value>, new: &mut Value) -> Result<(), ApiError> {
    let ns = req.route.namespace.as_deref().unwrap_or_default();
    if let Some(agent) = crate::rbac::node::agent_of(&req.user) {
        crate::rbac::node::restrict(agent, &req.route.info, ns, None, old, new)?;
    }
    let check = |policy: &Policy, new: &mut Value| {
        crate::task_user::admit(policy, &req.user, &req.route.info, ns, old, new)?;
        crate::rbac::escalation::check(policy, &req.user, &req.route.info, ns, new)
    };
    match check(&req.app.rbac.current(), new) {
        Ok(()) => Ok(()),
        Err(_) => check(&*req.app.rbac.refresh_if_stale().await, new),
    }
}

/// NodeRestriction on a status write (the main object's writes go through [`admit`]).
pub fn admit_status(req: &Request, old: &Value, new: &Value) -> Result<(), ApiError> {
    match crate::rbac::node::agent_of(&req.user) {
        Some(agent) => crate::rbac::node::restrict(
            agent,
            &req.route.info,
            req.route.namespace.as_deref().unwrap_or_default(),
            Some("status"),
            Some(old),
            new,
        ),
        None => Ok(()),
    }
}
