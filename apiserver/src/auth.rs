//! Who is calling, and may they do it. Client certificates signed by the
//! cluster CA and bearer tokens identify callers: the admin and agent
//! identities' static tokens (`DATA_DIR/pki`), and ServiceAccount tokens (see
//! [`crate::tokens`]). Whether a caller may do
//! something is RBAC's answer ([`crate::rbac`]); this module words the refusal
//! as kube-apiserver does.

use crate::error::ApiError;
use crate::rbac::{self, Policy};
use crate::tokens::Signer;
use std::collections::HashMap;

pub use crate::identity::{Attributes, User};

/// Maps bearer tokens to users.
pub struct Authenticator {
    /// The admin's and the agents' bearer tokens (replaced when rotated).
    tokens: std::sync::RwLock<HashMap<String, User>>,
    signer: Signer,
}

/// What a bearer token turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Authenticated {
    /// A known caller.
    User(User),
    /// A well-signed, unexpired ServiceAccount token whose account this view
    /// of the policy does not have (a newer view may).
    UnknownAccount,
    /// Not a valid credential.
    No,
}

/// The admin user's name.
pub const ADMIN: &str = "mosaic:admin";
/// The agent identity's name.
pub const AGENT: &str = "mosaic:agent";

/// The in-process controllers' identity: not an admin, only what the
/// `mosaic:controllers` roles grant (the chart's controllers ClusterRole).
pub fn controllers_user() -> User {
    User {
        name: crate::rbac::bootstrap::CONTROLLERS_USER.into(),
        groups: vec![rbac::AUTHENTICATED.into()],
    }
}

/// The admin identity (what the admin token names).
pub fn admin_user() -> User {
    User {
        name: ADMIN.into(),
        groups: vec![rbac::MASTERS.into(), rbac::AUTHENTICATED.into()],
    }
}

impl Authenticator {
    /// The admin and agent identities, and ServiceAccount tokens signed with `sa_key`.
    pub fn new(admin_token: &str, agent_token: &str, sa_key: &[u8]) -> Self {
        Self {
            tokens: std::sync::RwLock::new(Self::static_tokens(admin_token, agent_token)),
            signer: Signer::new(sa_key),
        }
    }

    /// From now on, the admin and agent identities are these tokens' (and no
    /// longer the earlier ones').
    pub fn rotate(&self, admin_token: &str, agent_token: &str) {
        *self.tokens.write().expect("tokens lock") = Self::static_tokens(admin_token, agent_token);
    }

    fn static_tokens(admin_token: &str, agent_token: &str) -> HashMap<String, User> {
        let mut tokens = HashMap::new();
        tokens.insert(admin_token.to_string(), admin_user());
        tokens.insert(
            agent_token.to_string(),
            User {
                name: AGENT.into(),
                groups: vec![
                    rbac::bootstrap::AGENTS_GROUP.into(),
                    rbac::AUTHENTICATED.into(),
                ],
            },
        );
        tokens
    }

    /// Issues ServiceAccount tokens.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Who an `Authorization` header names, with ServiceAccounts looked up in `policy`.
    pub fn authenticate(&self, header: Option<&str>, policy: &Policy) -> Authenticated {
        let Some(token) = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Authenticated::No;
        };
        if let Some(u) = self.tokens.read().expect("tokens lock").get(token) {
            return Authenticated::User(u.clone());
        }
        let now = jiff::Timestamp::now().as_second();
        let Some(c) = self.signer.verify(token, now) else {
            return Authenticated::No;
        };
        match policy
            .service_accounts
            .get(&(c.namespace.clone(), c.name.clone()))
        {
            Some(uid) if *uid == c.uid => Authenticated::User(User {
                name: rbac::service_account_user(&c.namespace, &c.name),
                groups: vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{}", c.namespace),
                    rbac::AUTHENTICATED.into(),
                ],
            }),
            Some(_) => Authenticated::No,
            None => Authenticated::UnknownAccount,
        }
    }
}

/// The user a verified client certificate names, as Kubernetes's x509
/// authenticator reads it: the subject's CommonName is the user, each
/// Organization a group. Carried as a request extension from the TLS layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateUser(pub User);

impl CertificateUser {
    /// The user of a client certificate (DER) the TLS layer has verified against
    /// the cluster CA; `None` when it names no CommonName.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect();
        groups.push(rbac::AUTHENTICATED.into());
        Some(Self(User { name, groups }))
    }
}

/// The 403 kube-apiserver gives when RBAC refuses `a` to `user`.
pub fn forbidden(user: &User, a: &Attributes<'_>) -> ApiError {
    if a.resource.is_empty() {
        return ApiError::forbidden(format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            user.name, a.verb, a.path
        ));
    }
    let what = if a.subresource.is_empty() {
        format!("resource \"{}\"", a.resource)
    } else {
        format!("resource \"{}/{}\"", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let gr = if a.group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let named = if a.name.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", a.name)
    };
    ApiError::forbidden(format!(
        "{gr}{named} is forbidden: User \"{}\" cannot {} {what} in API group \"{}\" {scope}",
        user.name, a.verb, a.group
    ))
}
