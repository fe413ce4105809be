//! The caller's bearer token, as Marathon's clients send credentials:
//! `Authorization: token=<token>` (Marathon's, and DC/OS's), HTTP Basic with
//! the token as the password (the user name is free), or `Bearer <token>`.
//! Every call is then made to the API server with that token, so the API
//! server authenticates the caller and RBAC authorizes each call.

use base64::Engine;

/// The token `authorization` carries, if it carries one.
pub fn token(authorization: Option<&str>) -> Option<String> {
    let a = authorization?.trim();
    let token = if let Some(t) = a.strip_prefix("token=") {
        t.to_string()
    } else if let Some(t) = a
        .strip_prefix("Bearer ")
        .or_else(|| a.strip_prefix("bearer "))
    {
        t.trim().to_string()
    } else if let Some(b) = a
        .strip_prefix("Basic ")
        .or_else(|| a.strip_prefix("basic "))
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        text.split_once(':')?.1.to_string()
    } else {
        return None;
    };
    // It must make a valid header again (`Authorization: Bearer <token>`):
    // anything else is no token.
    let sendable = http::HeaderValue::from_str(&format!("Bearer {token}")).is_ok();
    (!token.is_empty() && token.len() <= 16 * 1024 && sendable).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::token;

    #[test]
    fn marathons_ways_of_sending_a_token() {
        assert_eq!(token(Some("token=abc")).as_deref(), Some("abc"));
        assert_eq!(token(Some("Bearer abc")).as_deref(), Some("abc"));
        // "user:abc"
        assert_eq!(token(Some("Basic dXNlcjphYmM=")).as_deref(), Some("abc"));
        assert_eq!(token(Some("Basic !!")), None);
        assert_eq!(token(Some("token=")), None);
        assert_eq!(token(Some("Digest x")), None);
        // "x:\x01": not a value a header can carry.
        assert_eq!(token(Some("Basic eDoB")), None);
        assert_eq!(token(None), None);
    }
}
