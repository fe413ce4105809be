//! Timestamps and uids as Kubernetes writes them, for every part of the API
//! server that stamps something (the verbs, the audit log, the garbage
//! collector), beneath the HTTP layer.

use rand::Rng;

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC). The text
/// is made once a second per thread: every write stamps one or two.
pub fn now() -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let t = jiff::Timestamp::now();
    LAST.with_borrow_mut(|(second, text)| {
        if *second != t.as_second() {
            *second = t.as_second();
            *text = t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        }
        text.clone()
    })
}

/// A random (version 4) UUID.
pub fn new_uid() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}
