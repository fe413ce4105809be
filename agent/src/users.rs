//! Who a task runs as: `spec.user` (a name, a uid, or `uid:gid`), else the
//! agent's task user, resolved against this machine's user database, and
//! checked against the agent's policy as Mesos's `--switch_user` and Pod
//! Security's restricted profile do:
//!
//! - a user named in the agent's `--allowed-task-users` (by default only the
//!   task user) runs;
//! - root (uid 0 or gid 0), and any user outside the list, runs only when the
//!   API server recorded that whoever created the Task may `use` that user
//!   (the `mosaic.dev/task-user-grant` annotation, which only the API server
//!   writes: it checks RBAC's `use` verb on `taskusers/<user>`);
//! - anything else is refused with reason `UserNotAllowed`.

use nix::unistd::{Gid, Group, Uid, User};

pub use mosaic_crds::task::USER_GRANT_ANNOTATION as GRANT_ANNOTATION;

/// The default task user's name.
pub const DEFAULT_TASK_USER: &str = "mosaic-task";

/// A resolved Unix identity for a task's processes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The name, when the user database has one (`USER`, `LOGNAME`).
    pub name: Option<String>,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups (from the group database, for a named user).
    pub groups: Vec<u32>,
}

impl Identity {
    /// Whether this identity holds root's powers (uid 0) or root's group.
    pub fn is_privileged(&self) -> bool {
        self.uid == 0 || self.gid == 0 || self.groups.contains(&0)
    }
}

/// The agent's policy on task users.
#[derive(Clone, Debug)]
pub struct UserPolicy {
    /// Tasks that name no user run as this one (never root).
    pub task_user: String,
    /// Users tasks may name without a grant (the task user always may).
    pub allowed: Vec<String>,
}

impl Default for UserPolicy {
    fn default() -> Self {
        Self {
            task_user: DEFAULT_TASK_USER.into(),
            allowed: Vec::new(),
        }
    }
}

/// Why a task may not run as the user it names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// The user database has no such user.
    #[error("no user {0:?} on this agent")]
    Unknown(String),
    /// The spelling is neither a name nor `uid[:gid]`.
    #[error("{0:?} is not a user name, a uid or uid:gid")]
    Malformed(String),
    /// Root, or a user outside the allowed list, without a grant.
    #[error(
        "tasks may not run as {user:?} on this agent: {why}; it needs the agent's --allowed-task-users to name it, or RBAC's \"use\" verb on taskusers {user:?} (mosaic.dev) for whoever creates the task"
    )]
    NotAllowed {
        /// The user as the task names it.
        user: String,
        /// What makes it need a grant.
        why: &'static str,
    },
    /// The agent's own task user is root.
    #[error("the agent's --task-user {0:?} is root; tasks never run as root by default")]
    RootDefault(String),
}

/// Resolves `spec` (`name`, `uid`, `uid:gid` or `name:gid`) to an identity.
pub fn resolve(spec: &str) -> Result<Identity, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(UserError::Malformed(spec.into()));
    }
    let entry = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)).ok().flatten(),
        Err(_) => Some(
            User::from_name(user)
                .ok()
                .flatten()
                .ok_or_else(|| UserError::Unknown(user.into()))?,
        ),
    };
    let uid = match &entry {
        Some(e) => e.uid.as_raw(),
        None => user
            .parse::<u32>()
            .map_err(|_| UserError::Malformed(spec.into()))?,
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| UserError::Unknown(format!("group {g}")))?
                .gid
                .as_raw(),
        },
        // As Kubernetes's runAsUser without runAsGroup: the user's primary
        // group when the database knows it, else a group of the same number.
        None => entry.as_ref().map_or(uid, |e| e.gid.as_raw()),
    };
    let groups = match (&entry, group) {
        (Some(e), None) => supplementary(&e.name, e.gid),
        _ => Vec::new(),
    };
    Ok(Identity {
        name: entry.map(|e| e.name),
        uid,
        gid,
        groups,
    })
}

/// A named user's groups from the group database (its primary group included).
fn supplementary(name: &str, primary: Gid) -> Vec<u32> {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return vec![primary.as_raw()];
    };
    match nix::unistd::getgrouplist(&cname, primary) {
        Ok(gs) => gs.into_iter().map(Gid::as_raw).collect(),
        Err(_) => vec![primary.as_raw()],
    }
}

impl UserPolicy {
    /// Who a task runs as: `user` as the task names it (or the task user),
    /// with `grant` the API server's record of the creator's `use` grant.
    pub fn identity_for(
        &self,
        user: Option<&str>,
        grant: Option<&str>,
    ) -> Result<Identity, UserError> {
        let Some(user) = user else {
            let id = resolve(&self.task_user)?;
            if id.is_privileged() {
                return Err(UserError::RootDefault(self.task_user.clone()));
            }
            return Ok(id);
        };
        let id = resolve(user)?;
        let granted = grant == Some(user);
        if granted {
            return Ok(id);
        }
        if id.is_privileged() {
            return Err(UserError::NotAllowed {
                user: user.into(),
                why: "it is root or in root's group",
            });
        }
        let listed = user == self.task_user
            || self.allowed.iter().any(|a| {
                a == user
                    || resolve(a).is_ok_and(|other| other.uid == id.uid && other.gid == id.gid)
            });
        if !listed {
            return Err(UserError::NotAllowed {
                user: user.into(),
                why: "it is not among the agent's allowed task users",
            });
        }
        Ok(id)
    }
}

/// Makes sure the agent's task user exists: the default `mosaic-task` is
/// created as a system account with no login and no home when missing (as
/// a package's postinst would); any other name must exist already.
pub fn ensure_task_user(name: &str) -> Result<Identity, String> {
    match resolve(name) {
        Ok(id) => Ok(id),
        Err(UserError::Unknown(_)) if name == DEFAULT_TASK_USER => {
            let out = std::process::Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    name,
                ])
                .output()
                .map_err(|e| format!("running useradd to create the task user {name}: {e}"))?;
            // 9: another agent on this machine made it first.
            if !out.status.success() && out.status.code() != Some(9) {
                return Err(format!(
                    "useradd could not create the task user {name}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            resolve(name).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("--task-user: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> UserPolicy {
        UserPolicy {
            task_user: "nobody".into(),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn spellings_resolve_as_kubernetes_run_as_user_does() {
        let root = resolve("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(resolve("0").unwrap().name.as_deref(), Some("root"));
        let numeric = resolve("4242:4343").unwrap();
        assert_eq!((numeric.uid, numeric.gid, numeric.name), (4242, 4343, None));
        assert_eq!(resolve("4242").unwrap().gid, 4242);
        assert!(matches!(
            resolve("no-such-user-x"),
            Err(UserError::Unknown(_))
        ));
        assert!(matches!(resolve(":1"), Err(UserError::Malformed(_))));
        assert!(matches!(resolve("1:"), Err(UserError::Malformed(_))));
    }

    #[test]
    fn root_and_unlisted_users_need_the_grant() {
        let p = policy(&["4242"]);
        assert_eq!(
            p.identity_for(None, None).unwrap().name.as_deref(),
            Some("nobody")
        );
        assert!(matches!(
            p.identity_for(Some("root"), None),
            Err(UserError::NotAllowed { .. })
        ));
        assert!(matches!(
            p.identity_for(Some("4242:0"), None),
            Err(UserError::NotAllowed { .. })
        ));
        // A grant for another user is no grant.
        assert!(p.identity_for(Some("root"), Some("0")).is_err());
        assert_eq!(p.identity_for(Some("root"), Some("root")).unwrap().uid, 0);
        assert_eq!(p.identity_for(Some("4242"), None).unwrap().uid, 4242);
        assert!(matches!(
            p.identity_for(Some("4343"), None),
            Err(UserError::NotAllowed { .. })
        ));
        assert_eq!(
            p.identity_for(Some("4343"), Some("4343")).unwrap().uid,
            4343
        );
    }

    #[test]
    fn a_root_default_is_refused() {
        let p = UserPolicy {
            task_user: "root".into(),
            allowed: vec![],
        };
        assert!(matches!(
            p.identity_for(None, None),
            Err(UserError::RootDefault(_))
        ));
    }
}
