//! Exact resource amounts: CPU in millicores and memory in bytes, as integers,
//! so sums and differences never drift the way floating point would.

use std::ops::{Add, AddAssign, Sub, SubAssign};

/// An amount of CPU and memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// CPU in thousandths of a core.
    pub cpus_milli: u64,
    /// Memory in bytes.
    pub memory: u64,
}

impl Resources {
    /// Nothing.
    pub const ZERO: Resources = Resources {
        cpus_milli: 0,
        memory: 0,
    };

    /// `cpus_milli` millicores and `memory` bytes.
    pub const fn new(cpus_milli: u64, memory: u64) -> Self {
        Self { cpus_milli, memory }
    }

    /// Whether every component is at most `other`'s.
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.cpus_milli <= other.cpus_milli && self.memory <= other.memory
    }

    /// Whether both components are zero.
    pub fn is_zero(&self) -> bool {
        self.cpus_milli == 0 && self.memory == 0
    }

    /// Whether any component is zero (nothing useful can be offered from it).
    pub fn any_zero(&self) -> bool {
        self.cpus_milli == 0 || self.memory == 0
    }

    /// Component-wise minimum.
    pub fn min(&self, other: &Resources) -> Resources {
        Resources::new(
            self.cpus_milli.min(other.cpus_milli),
            self.memory.min(other.memory),
        )
    }

    /// Component-wise subtraction that stops at zero.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources::new(
            self.cpus_milli.saturating_sub(other.cpus_milli),
            self.memory.saturating_sub(other.memory),
        )
    }

    /// The largest fraction of `total` this amount takes in any dimension (DRF's dominant share).
    pub fn dominant_share(&self, total: &Resources) -> f64 {
        let frac = |a: u64, t: u64| if t == 0 { 0.0 } else { a as f64 / t as f64 };
        frac(self.cpus_milli, total.cpus_milli).max(frac(self.memory, total.memory))
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources::new(self.cpus_milli + o.cpus_milli, self.memory + o.memory)
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        *self = *self + o;
    }
}

impl Sub for Resources {
    type Output = Resources;
    /// Panics in debug builds on underflow: allocations must always add up.
    fn sub(self, o: Resources) -> Resources {
        Resources::new(self.cpus_milli - o.cpus_milli, self.memory - o.memory)
    }
}

impl SubAssign for Resources {
    fn sub_assign(&mut self, o: Resources) {
        *self = *self - o;
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cpus={} memory={}",
            crate::units::format_millis(self.cpus_milli),
            crate::units::format_bytes(self.memory)
        )
    }
}
