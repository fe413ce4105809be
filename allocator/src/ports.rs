//! Host ports as a resource, as Mesos agents offer them: each agent has
//! ranges of ports (`[31000-32000]` by default), a task asks for some ports
//! (any free one, or a fixed one), and no two tasks on an agent ever hold the
//! same port.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Port ranges (inclusive), sorted and merged: Mesos's `[31000-32000,40000-40010]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortRanges(Vec<(u16, u16)>);

/// Text that is not a list of port ranges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid port ranges {text:?}: {why} (write them as Mesos does: [31000-32000,40000-40010])"
)]
pub struct PortRangesError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

impl PortRanges {
    /// The ranges given, sorted and merged; a range with `begin > end` is empty.
    pub fn new(ranges: impl IntoIterator<Item = (u16, u16)>) -> Self {
        // Port 0 is no port ("any" in a request): never offered.
        let mut v: Vec<(u16, u16)> = ranges
            .into_iter()
            .map(|(b, e)| (b.max(1), e))
            .filter(|(b, e)| b <= e)
            .collect();
        v.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(v.len());
        for (b, e) in v {
            match merged.last_mut() {
                Some((_, last)) if u32::from(b) <= u32::from(*last) + 1 => *last = (*last).max(e),
                _ => merged.push((b, e)),
            }
        }
        Self(merged)
    }

    /// Mesos agents' default, `[31000-32000]`.
    pub fn mesos_default() -> Self {
        Self(vec![(31000, 32000)])
    }

    /// How many ports they hold.
    pub fn len(&self) -> u32 {
        self.0
            .iter()
            .map(|(b, e)| u32::from(*e) - u32::from(*b) + 1)
            .sum()
    }

    /// Whether they hold no port.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `port` is in one of them.
    pub fn contains(&self, port: u16) -> bool {
        let i = self.0.partition_point(|(_, e)| *e < port);
        self.0.get(i).is_some_and(|(b, _)| *b <= port)
    }

    /// Whether every port of `other` is in these.
    pub fn covers(&self, other: &PortRanges) -> bool {
        other
            .0
            .iter()
            .all(|(b, e)| self.contains(*b) && self.contains(*e) && self.run_from(*b) >= *e)
    }

    /// The last port of the range holding `port` (which it must hold).
    fn run_from(&self, port: u16) -> u16 {
        let i = self.0.partition_point(|(_, e)| *e < port);
        self.0[i].1
    }

    /// The port at position `n` (0-based) counting through the ranges in order.
    fn nth(&self, mut n: u32) -> Option<u16> {
        for (b, e) in &self.0 {
            let len = u32::from(*e) - u32::from(*b) + 1;
            if n < len {
                return Some(*b + n as u16);
            }
            n -= len;
        }
        None
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    /// These ports cut into `n` parts of (nearly) equal size, in order:
    /// for agents that share a machine.
    pub fn split(&self, n: usize) -> Vec<PortRanges> {
        let n = n.max(1) as u32;
        let len = self.len();
        let mut out = Vec::with_capacity(n as usize);
        let mut at = 0;
        for i in 0..n {
            let size = len / n + u32::from(i < len % n);
            let ports = (at..at + size).filter_map(|k| self.nth(k));
            out.push(PortRanges::new(ports.map(|p| (p, p))));
            at += size;
        }
        out
    }
}

impl fmt::Display for PortRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, (b, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if b == e {
                write!(f, "{b}")?;
            } else {
                write!(f, "{b}-{e}")?;
            }
        }
        f.write_str("]")
    }
}

impl FromStr for PortRanges {
    type Err = PortRangesError;

    /// `[31000-32000,40000-40010]`, `[8080]`, `[]`; the brackets may be left out.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: String| PortRangesError {
            text: s.to_string(),
            why,
        };
        let inner = s.trim();
        let inner = inner
            .strip_prefix('[')
            .map(|r| {
                r.strip_suffix(']')
                    .ok_or_else(|| err("no closing ]".into()))
            })
            .transpose()?
            .unwrap_or(inner);
        let mut ranges = Vec::new();
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (b, e) = part.split_once('-').unwrap_or((part, part));
            let num = |t: &str| {
                t.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| err(format!("{t:?} is not a port (1-65535)")))
            };
            let (b, e) = (num(b)?, num(e)?);
            if b > e {
                return Err(err(format!("{part:?} begins after it ends")));
            }
            ranges.push((b, e));
        }
        Ok(Self::new(ranges))
    }
}

/// The most runs of consecutive ports one offer carries (an Offer's
/// `ports` text stays within its schema's 4,096 characters).
pub(crate) const OFFER_MAX_RUNS: usize = 256;

/// What an agent's ports are and which of them tasks hold.
#[derive(Clone, Debug, Default)]
pub(super) struct PortPool {
    /// What it offers.
    pub ranges: PortRanges,
    /// Held by tasks, with how many hold each (more than one only when the
    /// store says two tasks were given one port, which the allocator never
    /// does; the port is free again only when all have let it go). Some may
    /// lie outside `ranges` after the agent shrank them.
    used: BTreeMap<u16, u32>,
    /// How many of `used` lie inside `ranges`.
    used_inside: u32,
}

impl PortPool {
    pub fn new(ranges: PortRanges) -> Self {
        Self {
            ranges,
            used: BTreeMap::new(),
            used_inside: 0,
        }
    }

    /// Offers `ranges` from now on; what tasks hold stays held.
    pub fn set_ranges(&mut self, ranges: PortRanges) {
        self.used_inside = self.used.keys().filter(|p| ranges.contains(**p)).count() as u32;
        self.ranges = ranges;
    }

    /// How many ports it offers that no task holds.
    pub fn free(&self) -> u32 {
        self.ranges.len() - self.used_inside
    }

    /// Whether `port` is offered and free.
    pub fn is_free(&self, port: u16) -> bool {
        self.ranges.contains(port) && !self.used.contains_key(&port)
    }

    /// Whether a task asking for `wanted` (0: any port) could have them now.
    pub fn fits(&self, wanted: &[u16]) -> bool {
        if wanted.is_empty() {
            return true;
        }
        let any = wanted.iter().filter(|p| **p == 0).count() as u32;
        let fixed_ok = wanted.iter().all(|p| *p == 0 || self.is_free(*p));
        fixed_ok && distinct(wanted) && wanted.len() as u32 <= self.free() && any <= self.free()
    }

    /// Whether a task asking for `wanted` could ever have them here.
    pub fn could_hold(&self, wanted: &[u16]) -> bool {
        wanted.iter().all(|p| *p == 0 || self.ranges.contains(*p))
            && distinct(wanted)
            && wanted.len() as u32 <= self.ranges.len()
    }

    /// Takes `wanted` (which must fit): fixed ports as asked, each `0` a free
    /// port chosen from `seed` on (so tasks do not all get the lowest ones).
    /// The ports taken, in the order asked.
    pub fn take(&mut self, wanted: &[u16], seed: u64) -> Vec<u16> {
        let fixed: BTreeSet<u16> = wanted.iter().copied().filter(|p| *p != 0).collect();
        let len = self.ranges.len();
        let mut next = if len == 0 {
            0
        } else {
            (seed % u64::from(len)) as u32
        };
        let mut out = Vec::with_capacity(wanted.len());
        for &w in wanted {
            let port = if w != 0 {
                w
            } else {
                let mut found = None;
                for _ in 0..len {
                    let p = self.ranges.nth(next).expect("within len");
                    next = (next + 1) % len;
                    if !self.used.contains_key(&p) && !fixed.contains(&p) {
                        found = Some(p);
                        break;
                    }
                }
                match found {
                    Some(p) => p,
                    None => {
                        debug_assert!(false, "take without fits");
                        continue;
                    }
                }
            };
            self.hold(port);
            out.push(port);
        }
        out
    }

    /// Takes every port it offers that no task holds, in order, in at most
    /// `max_runs` runs of consecutive ports: what an offer of the agent
    /// carries (a Mesos offer carries all its free ports; the cap keeps an
    /// Offer's text of them bounded however scattered the ports held are).
    pub fn take_free(&mut self, max_runs: usize) -> Vec<u16> {
        let mut free: Vec<u16> = Vec::new();
        let mut runs = 0;
        for p in self.ranges.0.iter().flat_map(|&(b, e)| b..=e) {
            if self.used.contains_key(&p) {
                continue;
            }
            if free
                .last()
                .is_none_or(|&last| u32::from(last) + 1 != u32::from(p))
            {
                if runs == max_runs {
                    break;
                }
                runs += 1;
            }
            free.push(p);
        }
        for &p in &free {
            self.hold(p);
        }
        free
    }

    /// Holds `port` for a task (one already bound); `false` if another
    /// holds it already (it is then held twice, and free only when both
    /// have let it go).
    pub fn hold(&mut self, port: u16) -> bool {
        let n = self.used.entry(port).or_insert(0);
        *n += 1;
        let new = *n == 1;
        if new && self.ranges.contains(port) {
            self.used_inside += 1;
        }
        new
    }

    /// Lets one hold of `port` go.
    pub fn free_port(&mut self, port: u16) {
        let Some(n) = self.used.get_mut(&port) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.used.remove(&port);
            if self.ranges.contains(port) {
                self.used_inside -= 1;
            }
        }
    }
}

/// Ports asked for, for people: `2 any, 8080`.
pub(super) fn describe(wanted: &[u16]) -> String {
    let any = wanted.iter().filter(|p| **p == 0).count();
    let mut parts: Vec<String> = Vec::new();
    if any > 0 {
        parts.push(format!("{any} of any"));
    }
    parts.extend(wanted.iter().filter(|p| **p != 0).map(u16::to_string));
    parts.join(", ")
}

/// Whether no fixed port is asked for twice.
fn distinct(wanted: &[u16]) -> bool {
    asked_twice(wanted).is_none()
}

/// A fixed port asked for twice, if any.
pub(super) fn asked_twice(wanted: &[u16]) -> Option<u16> {
    let mut seen = BTreeSet::new();
    wanted.iter().copied().find(|p| *p != 0 && !seen.insert(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_merge_and_print_as_mesos_writes_them() {
        let r: PortRanges = "[31000-32000, 40000-40010]".parse().unwrap();
        assert_eq!(r.to_string(), "[31000-32000,40000-40010]");
        assert_eq!(r.len(), 1012);
        assert_eq!("8080".parse::<PortRanges>().unwrap().to_string(), "[8080]");
        assert_eq!(
            "[10-20,15-30,31]".parse::<PortRanges>().unwrap().ranges(),
            &[(10, 31)]
        );
        assert!("[]".parse::<PortRanges>().unwrap().is_empty());
        for bad in ["[20-10]", "[0-5]", "[70000]", "[a-b]", "[1-2"] {
            assert!(bad.parse::<PortRanges>().is_err(), "{bad}");
        }
        assert!(r.contains(31000) && r.contains(32000) && r.contains(40005));
        assert!(!r.contains(30999) && !r.contains(32001) && !r.contains(40011));
        assert!(r.covers(&"[31500-31600]".parse().unwrap()));
        assert!(!r.covers(&"[31500-33000]".parse().unwrap()));
        let parts = PortRanges::mesos_default().split(3);
        assert_eq!(
            parts.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["[31000-31333]", "[31334-31667]", "[31668-32000]"]
        );
    }

    #[test]
    fn a_pool_never_hands_out_a_port_twice() {
        let mut p = PortPool::new("[100-104]".parse().unwrap());
        assert!(p.fits(&[0, 0, 102]));
        let got = p.take(&[0, 0, 102], 2);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], 102);
        assert!(!got[..2].contains(&102), "{got:?}");
        assert_eq!(p.free(), 2);
        assert!(!p.fits(&[102]), "taken");
        assert!(!p.fits(&[0, 0, 0]), "only two left");
        let more = p.take(&[0, 0], 0);
        assert_eq!(p.free(), 0);
        let all: BTreeSet<u16> = got.iter().chain(&more).copied().collect();
        assert_eq!(all.len(), 5);
        p.free_port(102);
        assert!(p.fits(&[102]) && !p.fits(&[0, 0]));
        assert!(p.could_hold(&[0, 0, 0, 0, 0]) && !p.could_hold(&[0; 6]));
        assert!(!p.could_hold(&[99]));
        assert!(!p.could_hold(&[101, 101]), "one port twice");
        // Shrunk below what tasks hold: those stay held, and count once back.
        p.set_ranges("[100-101]".parse().unwrap());
        assert_eq!(p.free(), 0);
    }
}
