//! An App's revision: a short, stable hash of its instance template (as a
//! Deployment names its ReplicaSets), used in instance names and labels.

use mosaic_crds::app::InstanceTemplate;
use std::hash::Hasher;

/// Letters that make no words (Kubernetes' safe alphabet).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The revision of `template`: 10 characters of its FNV-1a hash.
pub fn of(template: &InstanceTemplate) -> String {
    let json = serde_json::to_vec(template).expect("a template is JSON");
    let mut h = fnv::FnvHasher::default();
    h.write(&json);
    let mut n = h.finish();
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_follows_the_template_and_only_it() {
        let mut t = InstanceTemplate::default();
        t.spec.command = Some("sleep 1".into());
        let a = of(&t);
        assert_eq!(a, of(&t.clone()));
        assert_eq!(a.len(), 10);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        t.spec.command = Some("sleep 2".into());
        assert_ne!(a, of(&t));
    }
}
