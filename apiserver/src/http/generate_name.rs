//! Creates under a generated name (`metadata.generateName`): a name that is
//! taken is generated again, up to [`MAX_TRIES`] names in all, as
//! kube-apiserver does since RetryGenerateName (GA in 1.32). Five random
//! letters collide now and then once a prefix has thousands of objects (an
//! App's instances), and a client should not see those as conflicts.

use crate::store::StoreError;

/// How many names a create with `generateName` tries before it reports the
/// conflict (kube-apiserver's `maxNameGenerationCreateAttempts`).
pub const MAX_TRIES: u32 = 8;

/// The names one create tries.
pub struct Retry<'a> {
    /// The prefix the name was generated from (`None`: it was given).
    prefix: Option<&'a str>,
    /// Names tried so far.
    tries: u32,
}

impl<'a> Retry<'a> {
    /// For a create whose first name was generated from `prefix`, or given.
    pub fn new(prefix: Option<&'a str>) -> Self {
        Self { prefix, tries: 1 }
    }

    /// The name to try after a create failed with `e`, if any: a new one
    /// (`prefix` and `suffix()`) when the last was generated and is taken.
    pub fn next_after(
        &mut self,
        e: &StoreError,
        suffix: impl FnOnce() -> String,
    ) -> Option<String> {
        match (e, self.prefix) {
            (StoreError::AlreadyExists(_), Some(prefix)) if self.tries < MAX_TRIES => {
                self.tries += 1;
                Some(format!("{prefix}{}", suffix()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken() -> StoreError {
        StoreError::AlreadyExists("web-x".into())
    }

    #[test]
    fn a_taken_generated_name_is_generated_again_up_to_eight_names() {
        let mut r = Retry::new(Some("web-"));
        let names: Vec<String> = (0..20)
            .map_while(|i| r.next_after(&taken(), || format!("x{i}")))
            .collect();
        assert_eq!(names.len() as u32, MAX_TRIES - 1, "{names:?}");
        assert_eq!(names[0], "web-x0");
    }

    #[test]
    fn a_given_name_or_another_error_is_not_retried() {
        assert!(
            Retry::new(None)
                .next_after(&taken(), || "x".into())
                .is_none()
        );
        let gone = StoreError::NotFound("k".into());
        assert!(
            Retry::new(Some("web-"))
                .next_after(&gone, || "x".into())
                .is_none()
        );
    }
}
