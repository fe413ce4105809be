//! Placement constraints: Marathon's operators on an agent's name
//! (`hostname`) or one of its labels, judged against where the other tasks
//! of the same group (an App's instances) already hold resources.
//!
//! As in Marathon, an agent that lacks the field meets no constraint but
//! `UNLIKE`; `LIKE` and `UNLIKE` take a regular expression that must match
//! the whole value; `GROUP_BY` and `MAX_PER` take a count.

use regex::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// The most a constraint's compiled expression may take (the crate's default
/// is 10 MiB: a short value such as `\w{200}` would take milliseconds to
/// compile and megabytes to hold, per task).
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// Compiled expressions kept for reuse (a task's constraints are read again
/// on each change of the task); cleared when it grows past this many.
const REGEX_CACHE_MAX: usize = 1024;

/// An expression that must match a whole value, compiled once per process.
fn whole_match(value: &str) -> Result<Regex, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Result<Regex, String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().expect("regex cache").get(value) {
        return r.clone();
    }
    let build = |pattern: &str| {
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| e.to_string())
    };
    // The value alone must be an expression, so that `a)|(b` cannot escape
    // the anchors put around it.
    let compiled = build(value).and_then(|_| build(&format!("^(?:{value})$")));
    let mut cache = cache.lock().expect("regex cache");
    if cache.len() >= REGEX_CACHE_MAX {
        cache.clear();
    }
    cache.insert(value.to_string(), compiled.clone());
    compiled
}

/// Where a group's tasks run, as one constraint sees it: how many on agents
/// with each value of its field, and (`GROUP_BY`) the fewest a value that
/// may take one more has.
#[derive(Debug, Default)]
pub struct Placed<'a> {
    /// Per value: how many of the group's tasks (for `GROUP_BY`, values
    /// that could take the task now are here with zero).
    pub counts: HashMap<&'a str, u32>,
    /// `GROUP_BY`: the count a value must not exceed to take one more.
    pub fewest: u32,
}

/// The field that names the agent itself rather than one of its labels.
pub const HOSTNAME: &str = "hostname";

/// Marathon's constraint operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// No two tasks of the group on agents with the same value.
    Unique,
    /// Every task on agents with the given value (or, with none, the value
    /// the group's first task got).
    Cluster,
    /// Spread evenly over the values (over at least the count of them).
    GroupBy,
    /// The value matches the regular expression.
    Like,
    /// The value does not match it (or the agent lacks the field).
    Unlike,
    /// At most the count of the group's tasks per value.
    MaxPer,
    /// The value is exactly the given one.
    Is,
}

impl Operator {
    /// Its name as Marathon writes it.
    pub fn name(self) -> &'static str {
        match self {
            Operator::Unique => "UNIQUE",
            Operator::Cluster => "CLUSTER",
            Operator::GroupBy => "GROUP_BY",
            Operator::Like => "LIKE",
            Operator::Unlike => "UNLIKE",
            Operator::MaxPer => "MAX_PER",
            Operator::Is => "IS",
        }
    }
}

/// One constraint, ready to judge agents.
#[derive(Clone, Debug)]
pub struct Constraint {
    field: String,
    operator: Operator,
    value: Option<String>,
    /// LIKE and UNLIKE: the expression anchored at both ends, or why it is not one.
    regex: Option<Result<Regex, String>>,
    /// GROUP_BY and MAX_PER: the count (0 when absent or not a number).
    count: u32,
}

impl PartialEq for Constraint {
    fn eq(&self, o: &Self) -> bool {
        (&self.field, self.operator, &self.value) == (&o.field, o.operator, &o.value)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.operator.name())?;
        match &self.value {
            Some(v) => write!(f, " {v}"),
            None => Ok(()),
        }
    }
}

impl Constraint {
    /// A constraint on `field` (`hostname`, or an agent label). The API
    /// checks that the value is there when the operator needs one; a regular
    /// expression that does not compile admits no agent (and says why).
    pub fn new(field: &str, operator: Operator, value: Option<&str>) -> Self {
        let regex = matches!(operator, Operator::Like | Operator::Unlike)
            .then(|| whole_match(value.unwrap_or_default()));
        let count = value
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(0, |n| n.min(u32::MAX as u64) as u32);
        Self {
            field: field.into(),
            operator,
            value: value.map(Into::into),
            regex,
            count,
        }
    }

    /// The field it reads.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Its operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// Whether it depends only on the agent, not on where the group runs.
    pub fn is_static(&self) -> bool {
        match self.operator {
            Operator::Like | Operator::Unlike | Operator::Is => true,
            Operator::Cluster => self.value.is_some(),
            Operator::Unique | Operator::GroupBy | Operator::MaxPer => false,
        }
    }

    /// Why it can never admit an agent, if that is so (a bad expression).
    pub fn defect(&self) -> Option<&str> {
        match &self.regex {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether an agent whose field has `value` (`None`: it lacks the field)
    /// may take a task of the group, as far as the agent alone decides.
    pub fn admits_agent(&self, value: Option<&str>) -> bool {
        let Some(v) = value else {
            return self.operator == Operator::Unlike;
        };
        match self.operator {
            Operator::Like => matches!(&self.regex, Some(Ok(r)) if r.is_match(v)),
            Operator::Unlike => matches!(&self.regex, Some(Ok(r)) if !r.is_match(v)),
            Operator::Is | Operator::Cluster => self.value.as_deref().is_none_or(|x| x == v),
            Operator::Unique | Operator::GroupBy | Operator::MaxPer => true,
        }
    }

    /// Completes `counts` (how many of the group's tasks run on agents with
    /// each value of the field; for `GROUP_BY` also, with zero, every value
    /// of the agents that could take the task now: unlike Marathon, which
    /// knows only the values its offers showed, the allocator knows every
    /// agent, so the spread is even from the start) into what [`Self::admits`]
    /// judges by.
    pub fn placed<'a>(&self, counts: HashMap<&'a str, u32>) -> Placed<'a> {
        // Only a value with the fewest may take one more; while fewer than
        // `count` values are known, the unknown ones count as none.
        let fewest = if self.operator != Operator::GroupBy || counts.len() < self.count as usize {
            0
        } else {
            counts.values().copied().min().unwrap_or(0)
        };
        Placed { counts, fewest }
    }

    /// Whether an agent whose field has `value` may take one more task of
    /// the group, given where the group runs.
    pub fn admits(&self, value: Option<&str>, placed: &Placed<'_>) -> bool {
        if !self.admits_agent(value) {
            return false;
        }
        let Some(v) = value else { return true };
        let here = placed.counts.get(v).copied();
        match self.operator {
            Operator::Unique => here.is_none_or(|n| n == 0),
            Operator::MaxPer => here.unwrap_or(0) < self.count,
            Operator::Cluster if self.value.is_none() => {
                let mut used = placed.counts.iter().filter(|(_, n)| **n > 0);
                match used.next() {
                    None => true,
                    Some((first, _)) => *first == v && used.next().is_none(),
                }
            }
            Operator::GroupBy => here.unwrap_or(0) <= placed.fewest,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed<'a>(c: &Constraint, pairs: &[(&'a str, u32)]) -> Placed<'a> {
        c.placed(pairs.iter().copied().collect())
    }

    #[test]
    fn each_operator_judges_as_marathon_does() {
        let unique = Constraint::new("hostname", Operator::Unique, None);
        assert!(unique.admits(Some("a"), &placed(&unique, &[("b", 1)])));
        assert!(!unique.admits(Some("a"), &placed(&unique, &[("a", 1)])));

        let max2 = Constraint::new("rack", Operator::MaxPer, Some("2"));
        assert!(max2.admits(Some("r1"), &placed(&max2, &[("r1", 1)])));
        assert!(!max2.admits(Some("r1"), &placed(&max2, &[("r1", 2)])));

        let cluster = Constraint::new("rack", Operator::Cluster, None);
        assert!(cluster.admits(Some("r1"), &placed(&cluster, &[])));
        assert!(cluster.admits(Some("r1"), &placed(&cluster, &[("r1", 3)])));
        assert!(!cluster.admits(Some("r2"), &placed(&cluster, &[("r1", 3)])));
        let cluster_r1 = Constraint::new("rack", Operator::Cluster, Some("r1"));
        assert!(cluster_r1.is_static() && !cluster_r1.admits_agent(Some("r2")));

        let group = Constraint::new("zone", Operator::GroupBy, None);
        assert!(!group.admits(Some("b"), &placed(&group, &[("a", 1), ("b", 1), ("c", 0)])));
        assert!(group.admits(Some("c"), &placed(&group, &[("a", 2), ("b", 1), ("c", 0)])));
        assert!(group.admits(Some("b"), &placed(&group, &[("a", 2), ("b", 1)])));
        assert!(!group.admits(Some("a"), &placed(&group, &[("a", 2), ("b", 1)])));
        let group3 = Constraint::new("zone", Operator::GroupBy, Some("3"));
        assert!(!group3.admits(Some("a"), &placed(&group3, &[("a", 1), ("b", 1)])));
        assert!(group3.admits(Some("c"), &placed(&group3, &[("a", 1), ("b", 1)])));

        let like = Constraint::new("rack", Operator::Like, Some("r[12]"));
        assert!(like.admits_agent(Some("r1")) && !like.admits_agent(Some("r12")));
        let unlike = Constraint::new("rack", Operator::Unlike, Some("r[12]"));
        assert!(!unlike.admits_agent(Some("r1")) && unlike.admits_agent(Some("r3")));

        let is = Constraint::new("os", Operator::Is, Some("linux"));
        assert!(is.admits_agent(Some("linux")) && !is.admits_agent(Some("linux2")));
    }

    #[test]
    fn an_agent_without_the_field_meets_only_unlike() {
        for op in [
            Operator::Unique,
            Operator::Cluster,
            Operator::GroupBy,
            Operator::Like,
            Operator::MaxPer,
            Operator::Is,
        ] {
            let c = Constraint::new("zone", op, Some("1"));
            assert!(!c.admits(None, &Placed::default()), "{c}");
        }
        let c = Constraint::new("zone", Operator::Unlike, Some("a"));
        assert!(c.admits(None, &Placed::default()));
    }

    #[test]
    fn a_bad_expression_admits_nothing_and_says_why() {
        let c = Constraint::new("rack", Operator::Like, Some("("));
        assert!(!c.admits_agent(Some("(")));
        assert!(c.defect().is_some());
        let c = Constraint::new("rack", Operator::Unlike, Some("("));
        assert!(!c.admits_agent(Some("x")));
        // The anchors cannot be escaped.
        let c = Constraint::new("rack", Operator::Like, Some("a)|(b"));
        assert!(c.defect().is_some() && !c.admits_agent(Some("abc")));
        // Nor can a short value take megabytes to compile.
        let c = Constraint::new("rack", Operator::Like, Some(r"\w{1000}"));
        assert!(c.defect().is_some(), "{c}");
        // A count too large for the counter is as large as it can be.
        let c = Constraint::new("rack", Operator::MaxPer, Some("99999999999"));
        assert!(c.admits(Some("r1"), &placed(&c, &[("r1", 5)])));
    }
}
