//! Server-side apply and field ownership (`metadata.managedFields`), with the
//! semantics of kubernetes-sigs/structured-merge-diff: field sets in FieldsV1
//! form ([`fields`]), list and map merge types from the schema ([`schema`]),
//! merging an applied configuration ([`merge`]), and the ownership rules of
//! Apply and Update operations ([`managed`]).

pub mod fields;
pub mod managed;
pub mod merge;
pub mod schema;
pub mod update;

#[cfg(test)]
mod tests;
