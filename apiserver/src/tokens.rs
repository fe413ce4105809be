//! ServiceAccount tokens, as the TokenRequest API (`serviceaccounts/<name>/token`)
//! issues them: JSON Web Tokens (HS256, signed with the cluster's
//! service-account key) naming the account's namespace, name and uid, with an
//! expiry. A token stops working when it expires or when its ServiceAccount is
//! deleted (the uid no longer matches), as Kubernetes's bound tokens do.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The issuer written into each token.
pub const ISSUER: &str = "https://mosaic.dev/serviceaccount";

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid when the token was issued.
    pub uid: String,
    /// Expiry, Unix seconds.
    pub expires: i64,
}

#[derive(Serialize, Deserialize)]
struct Account {
    name: String,
    uid: String,
}

#[derive(Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: Account,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: i64,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

/// Issues and checks tokens with one secret.
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    /// A signer keyed by `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A token for the account, valid from `now` until `expires` (Unix seconds).
    pub fn issue(&self, claims: &Claims, audiences: &[String], now: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = Payload {
            iss: ISSUER.into(),
            sub: crate::identity::service_account_user(&claims.namespace, &claims.name),
            aud: audiences.to_vec(),
            exp: claims.expires,
            iat: now,
            nbf: now,
            kubernetes: KubernetesClaims {
                namespace: claims.namespace.clone(),
                serviceaccount: Account {
                    name: claims.name.clone(),
                    uid: claims.uid.clone(),
                },
            },
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).expect("claims serialize"));
        let signed = format!("{header}.{payload}");
        let sig = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// The claims of a token this signer issued that has not expired at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let (signed, sig) = token.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        hmac::verify(&self.key, signed.as_bytes(), &sig).ok()?;
        let (_, payload) = signed.split_once('.')?;
        let payload: Payload =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        if payload.iss != ISSUER || now >= payload.exp || now + 60 < payload.nbf {
            return None;
        }
        Some(Claims {
            namespace: payload.kubernetes.namespace,
            name: payload.kubernetes.serviceaccount.name,
            uid: payload.kubernetes.serviceaccount.uid,
            expires: payload.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires: i64) -> Claims {
        Claims {
            namespace: "team-a".into(),
            name: "builder".into(),
            uid: "u-1".into(),
            expires,
        }
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let s = Signer::new(b"secret");
        let t = s.issue(&claims(2_000), &["mosaic".into()], 1_000);
        assert_eq!(s.verify(&t, 1_500), Some(claims(2_000)));
        assert_eq!(s.verify(&t, 2_000), None, "expired at exp");
    }

    #[test]
    fn another_key_or_a_changed_payload_is_refused() {
        let s = Signer::new(b"secret");
        let t = s.issue(&claims(2_000), &[], 1_000);
        assert_eq!(Signer::new(b"other").verify(&t, 1_500), None);
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let forged = Signer::new(b"other").issue(
            &Claims {
                name: "admin".into(),
                ..claims(2_000)
            },
            &[],
            1_000,
        );
        parts[1] = forged.split('.').nth(1).unwrap().to_string();
        assert_eq!(s.verify(&parts.join("."), 1_500), None);
        assert_eq!(s.verify("not-a-token", 1_500), None);
    }
}
