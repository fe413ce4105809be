//! The bodies of status writes, typed: a server-side apply of an object's
//! status (its apiVersion, kind, optionally its name and the resourceVersion
//! it was read at, and the status a writer owns), so each writer (one field
//! manager each) sends only what it means to own; and a merge patch of a
//! status guarded by the resourceVersion it was read at.

use kube::Resource;
use serde::Serialize;

/// `{apiVersion, kind, [metadata], status}` for `Patch::Apply` on the status subresource.
#[derive(Debug, Serialize)]
pub struct StatusApply<'a, S: Serialize> {
    /// The object's `apiVersion`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// The object's `kind`.
    pub kind: String,
    /// Its name, namespace and the resourceVersion the write is guarded by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Guard>,
    /// The status fields the writer owns.
    pub status: &'a S,
}

/// The metadata a status write names: `{name, namespace, resourceVersion}`, each when known.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Guard {
    /// The object's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The revision it was read at: the write is refused (409) if it changed since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

impl Guard {
    /// The name and namespace of `obj`.
    pub fn named<K: Resource>(obj: &K) -> Self {
        Guard {
            name: obj.meta().name.clone(),
            namespace: obj.meta().namespace.clone(),
            resource_version: None,
        }
    }

    /// The name and namespace of `obj`, and the revision it was read at.
    pub fn read<K: Resource>(obj: &K) -> Self {
        Guard {
            resource_version: obj.meta().resource_version.clone(),
            ..Guard::named(obj)
        }
    }
}

impl<'a, S: Serialize> StatusApply<'a, S> {
    /// The apply body of `status` for an object of kind `K`.
    pub fn of<K: Resource<DynamicType = ()>>(status: &'a S) -> Self {
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            metadata: None,
            status,
        }
    }

    /// The apply body of `status` for `obj`, naming it (and guarded by `guard`).
    pub fn with<K: Resource<DynamicType = ()>>(guard: Guard, status: &'a S) -> Self {
        Self {
            metadata: Some(guard),
            ..Self::of::<K>(status)
        }
    }
}

/// `{metadata: {resourceVersion}, status}`: a merge patch of a status that
/// is refused (409) if the object changed since it was read.
#[derive(Debug, Serialize)]
pub struct GuardedStatus<'a, S: Serialize> {
    /// The revision it was read at.
    pub metadata: Guard,
    /// The status fields written.
    pub status: &'a S,
}

impl<'a, S: Serialize> GuardedStatus<'a, S> {
    /// `status` for `obj` as read.
    pub fn of<K: Resource>(obj: &K, status: &'a S) -> Self {
        GuardedStatus {
            metadata: Guard {
                resource_version: obj.meta().resource_version.clone(),
                ..Guard::default()
            },
            status,
        }
    }
}

/// `{status}`: a merge patch of a status.
#[derive(Debug, Serialize)]
pub struct StatusMerge<'a, S: Serialize> {
    /// The status fields written.
    pub status: &'a S,
}
