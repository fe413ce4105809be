//! Object metadata rules shared by every verb: timestamps, uids, names,
//! resourceVersion in and out of the store, and decoding request bodies.

use crate::error::{ApiError, Cause};
use crate::registry::ResourceInfo;
use crate::store::KeyValue;
use rand::Rng;
use serde_json::{Value, json};

pub use crate::stamps::{new_uid, now};

/// Five random lowercase alphanumerics, for `generateName`.
pub fn name_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..5)
        .map(|_| CHARS[r.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Checks a DNS-1123 subdomain name (what most kinds require).
pub fn check_name(name: &str, field: &str) -> Option<Cause> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    (!valid).then(|| Cause {
        reason: "FieldValueInvalid",
        message: format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
             characters, '-' or '.', and must start and end with an alphanumeric character"
        ),
        field: field.into(),
    })
}

/// Checks label keys and values.
pub fn check_labels(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(labels) = obj["metadata"]["labels"].as_object() else {
        return causes;
    };
    let ok_value = |v: &str| {
        v.len() <= 63
            && (v.is_empty()
                || (v
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
                    && v.as_bytes()[0].is_ascii_alphanumeric()
                    && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric()))
    };
    for (k, v) in labels {
        let name = k.rsplit('/').next().unwrap_or(k);
        if name.is_empty() || !ok_value(name) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"),
                field: "metadata.labels".into(),
            });
        }
        match v.as_str() {
            Some(s) if ok_value(s) => {}
            _ => causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'"),
                field: format!("metadata.labels.{k}"),
            }),
        }
    }
    causes
}

/// A stored value as an API object, with `metadata.resourceVersion` set.
pub fn from_store(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    v["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
    Ok(v)
}

/// A stored value as `info` serves it (see [`crate::conversion`]).
pub fn load(info: &ResourceInfo, kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v = from_store(kv)?;
    info.view.to_view(&mut v);
    Ok(v)
}

/// An object as `info` serves it, in its stored form.
pub fn store_bytes(info: &ResourceInfo, obj: &Value) -> Vec<u8> {
    if info.view.is_stored() {
        return to_store(obj);
    }
    let mut o = obj.clone();
    info.view.to_storage(&mut o);
    to_store(&o)
}

/// An API object as stored (no resourceVersion: the store's revision is it).
pub fn to_store(obj: &Value) -> Vec<u8> {
    let m = &obj["metadata"];
    if m.get("resourceVersion").is_none() && m.get("selfLink").is_none() {
        return serde_json::to_vec(obj).expect("a JSON value always serialises");
    }
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    serde_json::to_vec(&o).expect("a JSON value always serialises")
}

/// Parses a request body as JSON, or YAML when the content type says so.
pub fn decode(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if ct == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(body);
    }
    let v: Value = if ct.ends_with("yaml") && body.first().is_none_or(|b| *b != b'{') {
        serde_saphyr::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "couldn't decode the request body as JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?
    };
    Ok(v)
}

/// The resourceVersion an object carries, parsed.
pub fn resource_version(obj: &Value) -> Result<Option<i64>, ApiError> {
    match &obj["metadata"]["resourceVersion"] {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}"))),
        other => Err(ApiError::bad_request(format!(
            "invalid resourceVersion {other}"
        ))),
    }
}

/// Kubernetes's short human duration (`45s`, `5m3s`, `3h`, `2d`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s if s < 2 * 365 * 86400 => format!("{}d", s / 86400),
        s => format!("{}y", s / (365 * 86400)),
    }
}

/// Seconds since an RFC 3339 timestamp.
pub fn age_secs(ts: &str) -> Option<i64> {
    let t: jiff::Timestamp = ts.parse().ok()?;
    Some(jiff::Timestamp::now().as_second() - t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_random_version_4_uuids() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        for u in [a, b] {
            let parts: Vec<&str> = u.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{u}");
            assert!(parts[2].starts_with('4'), "version 4: {u}");
            assert!(
                matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "RFC 4122 variant: {u}"
            );
            assert!(
                u.bytes()
                    .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            );
        }
    }

    #[test]
    fn now_is_an_rfc3339_second_in_utc_and_follows_the_clock() {
        let before = jiff::Timestamp::now().as_second();
        let t: jiff::Timestamp = now().parse().expect("RFC 3339");
        let after = jiff::Timestamp::now().as_second();
        assert!((before..=after).contains(&t.as_second()));
        assert!(now().ends_with('Z') && now().len() == "2026-01-01T00:00:00Z".len());
    }
}
