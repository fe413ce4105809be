//! The body of a server-side apply of an object's status: its apiVersion,
//! kind and the status a writer owns, typed, so each writer (one field
//! manager each) sends only what it means to own.

use kube::Resource;
use serde::Serialize;

/// `{apiVersion, kind, status}` for `Patch::Apply` on the status subresource.
#[derive(Debug, Serialize)]
pub struct StatusApply<'a, S: Serialize> {
    /// The object's `apiVersion`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// The object's `kind`.
    pub kind: String,
    /// The status fields the writer owns.
    pub status: &'a S,
}

impl<'a, S: Serialize> StatusApply<'a, S> {
    /// The apply body of `status` for an object of kind `K`.
    pub fn of<K: Resource<DynamicType = ()>>(status: &'a S) -> Self {
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            status,
        }
    }
}
