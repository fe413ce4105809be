//! The allocator's inputs (specs) and its per-agent, per-role and per-framework state.

use super::Resources;
use super::constraint::{Constraint, HOSTNAME};
use super::ports::{PortPool, PortRanges};
use std::collections::{BTreeMap, HashMap};

/// A role as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleSpec {
    /// Name.
    pub name: String,
    /// Weighted DRF weight (default 1).
    pub weight: f64,
    /// Parent role, for hierarchical shares.
    pub parent: Option<String>,
    /// Served before other roles' work, and held back from them.
    pub guarantee: Option<Resources>,
    /// Never exceeded.
    pub limit: Option<Resources>,
}

impl RoleSpec {
    /// A top-level role of weight 1 with no quota.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            weight: 1.0,
            parent: None,
            guarantee: None,
            limit: None,
        }
    }
}

/// An agent as registered.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSpec {
    /// Name.
    pub name: String,
    /// What may be allocated on it.
    pub total: Resources,
    /// Its labels, for task agent selectors.
    pub labels: BTreeMap<String, String>,
    /// The host ports it offers.
    pub ports: PortRanges,
}

impl AgentSpec {
    /// An agent with `total`, no labels and no ports.
    pub fn new(name: &str, total: Resources) -> Self {
        Self {
            name: name.into(),
            total,
            labels: BTreeMap::new(),
            ports: PortRanges::default(),
        }
    }
}

/// Builtin or External.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrameworkKind {
    /// Tasks are placed by the allocator.
    #[default]
    Builtin,
    /// The framework receives offers.
    External,
}

/// How Builtin tasks are spread over agents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// The least-used agent that fits.
    #[default]
    Spread,
    /// The most-used agent that fits.
    BinPack,
}

/// A framework as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameworkSpec {
    /// Name (unique; namespace/name in the control plane).
    pub name: String,
    /// Its role.
    pub role: String,
    /// Builtin or External.
    pub kind: FrameworkKind,
    /// Spread or BinPack (Builtin).
    pub placement: Placement,
    /// No offers while suppressed (External).
    pub suppressed: bool,
}

impl FrameworkSpec {
    /// A Builtin, spreading framework in `role`.
    pub fn builtin(name: &str, role: &str) -> Self {
        Self {
            name: name.into(),
            role: role.into(),
            kind: FrameworkKind::Builtin,
            placement: Placement::Spread,
            suppressed: false,
        }
    }

    /// An External framework in `role`.
    pub fn external(name: &str, role: &str) -> Self {
        Self {
            kind: FrameworkKind::External,
            ..Self::builtin(name, role)
        }
    }
}

/// A task waiting for a place.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRequest {
    /// Its id.
    pub id: String,
    /// What it needs.
    pub resources: Resources,
    /// Agent labels it requires (all must match).
    pub selector: BTreeMap<String, String>,
    /// The group it belongs to (an App's instances): what its constraints
    /// count. Its allocation carries it.
    pub group: Option<String>,
    /// Where it may go, given where its group runs (all must be met).
    pub constraints: Vec<Constraint>,
    /// Host ports it needs on its agent, in order: `0` for any free one,
    /// else that port. Its allocation carries the ports it got.
    pub ports: Vec<u16>,
}

impl TaskRequest {
    /// A task that runs anywhere.
    pub fn new(id: &str, resources: Resources) -> Self {
        Self {
            id: id.into(),
            resources,
            selector: BTreeMap::new(),
            group: None,
            constraints: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// What placement judges of it besides its id, as one key: tasks alike
    /// in it find the same agents.
    pub(super) fn likeness(&self) -> String {
        let cs: Vec<String> = self.constraints.iter().map(|c| c.to_string()).collect();
        format!(
            "{:?}|{}|{:?}|{}|{:?}",
            self.group,
            cs.join(","),
            self.selector,
            self.resources,
            self.ports
        )
    }

    /// Whether some constraint depends on where its group runs.
    pub(super) fn has_dynamic_constraints(&self) -> bool {
        self.constraints.iter().any(|c| !c.is_static())
    }

    /// Whether where it may go depends on more than room for its resources:
    /// where its group runs, or which host ports are taken. Such a task,
    /// turned away by every agent with room, is set aside rather than
    /// holding up its framework's queue.
    pub(super) fn may_be_set_aside(&self) -> bool {
        self.has_dynamic_constraints() || !self.ports.is_empty()
    }
}

pub(super) struct Role {
    pub name: String,
    pub weight: f64,
    pub parent: Option<usize>,
    pub guarantee: Option<Resources>,
    pub limit: Option<Resources>,
    /// Held by the role and its descendants.
    pub allocated: Resources,
}

impl Role {
    pub fn new(spec: RoleSpec, parent: Option<usize>) -> Self {
        Self {
            name: spec.name,
            weight: spec.weight.max(1e-9),
            parent,
            guarantee: spec.guarantee,
            limit: spec.limit,
            allocated: Resources::ZERO,
        }
    }
}

pub(super) struct Agent {
    pub name: String,
    pub total: Resources,
    pub labels: BTreeMap<String, String>,
    /// Its host ports and which of them tasks hold.
    pub ports: PortPool,
    pub schedulable: bool,
    /// Reserved amounts by role.
    pub reserved: HashMap<usize, Resources>,
    /// What is used of each role's reservation.
    pub reserved_used: HashMap<usize, Resources>,
    /// What is used outside reservations.
    pub unreserved_used: Resources,
}

impl Agent {
    pub fn new(spec: AgentSpec) -> Self {
        Self {
            name: spec.name,
            total: spec.total,
            labels: spec.labels,
            ports: PortPool::new(spec.ports),
            schedulable: true,
            reserved: HashMap::new(),
            reserved_used: HashMap::new(),
            unreserved_used: Resources::ZERO,
        }
    }

    /// Updates its total, labels and ports. `None` if none changed, else whether it only grew.
    pub fn update(&mut self, spec: AgentSpec) -> Option<bool> {
        if self.total == spec.total && self.labels == spec.labels && self.ports.ranges == spec.ports
        {
            return None;
        }
        let grew = self.labels == spec.labels
            && self.total.fits_in(&spec.total)
            && spec.ports.covers(&self.ports.ranges);
        self.total = spec.total;
        self.labels = spec.labels;
        self.ports.set_ranges(spec.ports);
        Some(grew)
    }

    pub fn reserved_total(&self) -> Resources {
        self.reserved.values().fold(Resources::ZERO, |a, r| a + *r)
    }

    /// Free and not reserved for anyone.
    pub fn unreserved_free(&self) -> Resources {
        self.total
            .saturating_sub(&self.reserved_total())
            .saturating_sub(&self.unreserved_used)
    }

    /// Free in the reservation of `role`.
    pub fn reserved_free(&self, role: usize) -> Resources {
        match self.reserved.get(&role) {
            Some(amount) => {
                amount.saturating_sub(&self.reserved_used.get(&role).copied().unwrap_or_default())
            }
            None => Resources::ZERO,
        }
    }

    /// All that is used.
    pub fn used(&self) -> Resources {
        self.reserved_used
            .values()
            .fold(self.unreserved_used, |a, r| a + *r)
    }

    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }

    /// A constraint's field on this agent: its name for `hostname`, else a label.
    pub fn value(&self, field: &str) -> Option<&str> {
        if field == HOSTNAME {
            Some(&self.name)
        } else {
            self.labels.get(field).map(String::as_str)
        }
    }

    /// Whether it may hold the task as far as the task's selector and the
    /// constraints that depend on the agent alone decide.
    pub fn admits(&self, task: &TaskRequest) -> bool {
        self.matches(&task.selector)
            && task
                .constraints
                .iter()
                .all(|c| !c.is_static() || c.admits_agent(self.value(c.field())))
    }
}

/// Why a framework's first task could not be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stuck {
    /// No agent has room for it: only an agent with more room can change that.
    NoAgent,
    /// A quota limit or other roles' guarantees hold it back: any release may change that.
    Quota,
}

pub(super) struct Framework {
    pub name: String,
    pub role: usize,
    pub kind: FrameworkKind,
    pub placement: Placement,
    pub suppressed: bool,
    pub allocated: Resources,
    /// Tasks waiting, in the order they came (by sequence number).
    pub pending: BTreeMap<u64, TaskRequest>,
    /// Task id -> its sequence number in `pending`.
    pub pending_ids: HashMap<String, u64>,
    /// Tasks no agent could ever hold as the cluster is, kept (by sequence
    /// number) until the agents change.
    pub unfit: BTreeMap<u64, TaskRequest>,
    /// Why its first task found no place in the fair stage, while nothing
    /// that could change that has happened since.
    pub stuck: Option<Stuck>,
    /// Woken for this first task (by sequence number) because one of the
    /// agents that gained room could hold it: only those are searched for it.
    pub woken_for: Option<u64>,
    /// Agent index -> time (ms) until which it is not offered to this framework.
    pub refused: HashMap<usize, u64>,
}

impl Framework {
    pub fn new(spec: FrameworkSpec, role: usize) -> Self {
        Self {
            name: spec.name,
            role,
            kind: spec.kind,
            placement: spec.placement,
            suppressed: spec.suppressed,
            allocated: Resources::ZERO,
            pending: BTreeMap::new(),
            pending_ids: HashMap::new(),
            unfit: BTreeMap::new(),
            stuck: None,
            woken_for: None,
            refused: HashMap::new(),
        }
    }

    pub fn update(&mut self, spec: FrameworkSpec, role: usize) {
        if (self.kind, self.role, self.placement) != (spec.kind, role, spec.placement) {
            self.stuck = None;
        }
        self.kind = spec.kind;
        self.placement = spec.placement;
        self.suppressed = spec.suppressed;
        self.role = role;
    }
}
