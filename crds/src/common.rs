//! Types shared by several kinds: resource quantities and status conditions.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// An amount of each resource Mosaic allocates, as Kubernetes quantity strings
/// (`cpus: "500m"`, `memory: 256Mi`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceQuantities {
    /// CPU cores; `500m` is half a core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Quantity>,
    /// Memory in bytes, with binary or decimal suffixes (`128Mi`, `1G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Scratch disk in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Quantity>,
}

/// A quantity that does not parse, or is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {value:?} for {field}: {message}")]
pub struct QuantityError {
    /// The field, e.g. `cpus`.
    pub field: &'static str,
    /// The text given.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

fn parse(
    field: &'static str,
    q: &Quantity,
) -> Result<kube_quantity::ParsedQuantity, QuantityError> {
    kube_quantity::ParsedQuantity::try_from(q).map_err(|e| QuantityError {
        field,
        value: q.0.clone(),
        message: e.to_string(),
    })
}

impl ResourceQuantities {
    /// CPU in millicores (`500m` -> 500, `2` -> 2000), if set.
    pub fn cpus_milli(&self) -> Result<Option<u64>, QuantityError> {
        let Some(q) = &self.cpus else { return Ok(None) };
        let cores = parse("cpus", q)?.to_bytes_f64().unwrap_or(-1.0);
        if !(0.0..=1e12).contains(&cores) {
            return Err(QuantityError {
                field: "cpus",
                value: q.0.clone(),
                message: "must be a non-negative number of cores".into(),
            });
        }
        Ok(Some((cores * 1000.0).round() as u64))
    }

    /// Memory in bytes, if set.
    pub fn memory_bytes(&self) -> Result<Option<u64>, QuantityError> {
        let Some(q) = &self.memory else {
            return Ok(None);
        };
        parse("memory", q)?
            .to_bytes_u64()
            .map(Some)
            .ok_or_else(|| QuantityError {
                field: "memory",
                value: q.0.clone(),
                message: "must be a non-negative whole number of bytes".into(),
            })
    }

    /// Checks that every quantity set parses.
    pub fn validate(&self) -> Result<(), QuantityError> {
        self.cpus_milli()?;
        self.memory_bytes()?;
        if let Some(d) = &self.disk {
            parse("disk", d)?
                .to_bytes_u64()
                .ok_or_else(|| QuantityError {
                    field: "disk",
                    value: d.0.clone(),
                    message: "must be a non-negative whole number of bytes".into(),
                })?;
        }
        Ok(())
    }

    /// Quantities from millicores and bytes, written as Kubernetes writes them.
    pub fn from_units(cpus_milli: u64, memory: u64) -> Self {
        Self {
            cpus: Some(Quantity(format_millis(cpus_milli))),
            memory: Some(Quantity(format_bytes(memory))),
            disk: None,
        }
    }
}

pub use mosaic_allocator::units::{format_bytes, format_millis};

/// The condition types every Mosaic kind reports.
pub mod condition_types {
    /// The object has reached what its spec asks for.
    pub const READY: &str = "Ready";
    /// The object failed for good and will not make progress without a change.
    pub const STALLED: &str = "Stalled";
    /// A Task was bound to an agent.
    pub const SCHEDULED: &str = "Scheduled";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(cpus: &str, memory: &str) -> ResourceQuantities {
        ResourceQuantities {
            cpus: Some(Quantity(cpus.into())),
            memory: Some(Quantity(memory.into())),
            disk: None,
        }
    }

    #[test]
    fn quantities_parse_exactly() {
        assert_eq!(q("500m", "128Mi").cpus_milli(), Ok(Some(500)));
        assert_eq!(q("2", "1Gi").memory_bytes(), Ok(Some(1 << 30)));
        assert_eq!(q("0.25", "1G").cpus_milli(), Ok(Some(250)));
        assert_eq!(q("1", "1G").memory_bytes(), Ok(Some(1_000_000_000)));
        assert!(q("lots", "1Gi").validate().is_err());
        assert!(q("1", "12Qi").validate().is_err());
        assert_eq!(ResourceQuantities::from_units(1500, 64), q("1500m", "64"));
        assert_eq!(ResourceQuantities::from_units(2000, 4 << 30), q("2", "4Gi"));
        assert_eq!(format_bytes(128 << 20), "128Mi");
        assert_eq!(format_bytes(1536 << 10), "1536Ki");
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_bytes(1000), "1000");
    }
}
