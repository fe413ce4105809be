//! The allocator: hierarchical weighted DRF over roles, then frameworks.
//!
//! It keeps the cluster as plain data (agents with their reservations, roles
//! with weights and quotas, frameworks with their pending tasks and refuse
//! filters) and turns it into [`Decision`]s:
//!
//! 1. **Guarantees first.** Frameworks whose role (or an ancestor) is below its
//!    quota guarantee are served before anyone else.
//! 2. **Weighted DRF.** Then, one task at a time (progressive filling), the
//!    framework with the lowest key is served, where the key is the weighted
//!    dominant share of each role on its path from the root, then the
//!    framework's own dominant share: the semantics of Mesos's hierarchical
//!    allocator, at task granularity for Builtin frameworks. Resources the
//!    unmet guarantees of other roles still need are held back (headroom).
//! 3. **Offers.** What is left on each agent is offered whole to the External
//!    framework with the lowest key that does not filter that agent.
//!
//! Quota limits are never exceeded, reserved resources go only to the
//! reserving role and its descendants, and every allocation records where it
//! was drawn from so that [`Allocator::release`] returns exactly that.
//!
//! **Incremental.** The allocator lives across cycles and is told of changes
//! (a task submitted or withdrawn, an allocation released, an agent added or
//! changed), and a cycle looks only at what they may have changed: tasks not
//! yet checked against the agents (all of them only when the agents changed),
//! and frameworks with waiting work that is not known to be stuck. A
//! framework whose first task found no place is stuck until an agent it could
//! use gains room (or, when a quota held it back, until anything is
//! released); [`Allocator::allocate_full`] looks at everything again, as a
//! periodic check that the incremental cycles missed nothing.
//!
//! **Ports.** Agents offer host ports (ranges, as Mesos agents do); a task
//! may ask for any free ones or fixed ones, and its allocation records the
//! ports it got. Ports are not part of shares or quotas (as in Mesos's
//! sorters, which count scalar resources only). A task whose ports no agent
//! with room has free is set aside as unschedulable, as for constraints. An
//! offer carries (and holds) all the free ports of its agent, as a Mesos
//! offer does; the agent's other offers in the same cycle carry none.
//!
//! **Constraints.** A task may belong to a group (an App's instances) and
//! carry Marathon's placement constraints; the allocator counts each group's
//! allocations per agent, and a task whose constraints no agent with room
//! meets is set aside as unschedulable (with the constraint named) and looks
//! again after a release, an allocation of a group, or a change of the
//! agents, so it never holds up the rest of its framework's queue.

mod constrained;
mod constraint;
mod model;
mod ports;
mod resources;
pub mod units;

pub use constraint::{Constraint, HOSTNAME, Operator};
pub use model::{AgentSpec, FrameworkKind, FrameworkSpec, Placement, RoleSpec, TaskRequest};
pub use ports::{PortRanges, PortRangesError};
pub use resources::Resources;

use model::{Agent, Framework, Role};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where an allocation's resources came from, so it can be returned exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The agent.
    pub agent: String,
    /// The framework holding it.
    pub framework: String,
    /// The parts: from a role's reservation (`Some(role)`) or unreserved (`None`).
    pub parts: Vec<(Option<String>, Resources)>,
    /// The group of the task holding it, which constraints count.
    pub group: Option<String>,
    /// The host ports it holds on the agent: a task's, in the order it
    /// asked; an offer's, all it carries, in order.
    pub ports: Vec<u16>,
}

impl Allocation {
    /// The whole amount.
    pub fn total(&self) -> Resources {
        self.parts.iter().fold(Resources::ZERO, |a, (_, r)| a + *r)
    }
}

/// What an allocation cycle decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Run this Builtin framework's task on this agent.
    Place {
        /// The task's id.
        task: String,
        /// What it holds.
        allocation: Allocation,
    },
    /// Offer these resources to an External framework.
    Offer {
        /// What is offered (and held until accepted or declined).
        allocation: Allocation,
    },
    /// No agent could ever fit this task as the cluster is (`waits`: false),
    /// or its constraints turn away every agent with room while its group
    /// runs where it does (`waits`: true; it looks again when one of its
    /// group's allocations or any other is released).
    Unschedulable {
        /// The task's id.
        task: String,
        /// Its framework.
        framework: String,
        /// Why, for people.
        reason: String,
        /// Whether it only waits for its group to move (see above).
        waits: bool,
    },
}

/// What one agent holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentUsage {
    /// Its total.
    pub total: Resources,
    /// Used outside reservations.
    pub unreserved_used: Resources,
    /// Per role: (reserved, used of it).
    pub reservations: BTreeMap<String, (Resources, Resources)>,
}

/// Why a change to the allocator was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocatorError {
    /// A name that is not known.
    #[error("unknown {kind} {name:?}")]
    Unknown {
        /// `agent`, `role` or `framework`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A reservation larger than the agent's unreserved free resources.
    #[error("agent {agent} has only {free} unreserved and free, not {wanted}")]
    Unsatisfiable {
        /// The agent.
        agent: String,
        /// What is free.
        free: Resources,
        /// What was asked.
        wanted: Resources,
    },
}

/// Which waiting tasks a cycle checks against the agents besides the new ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Recheck {
    /// None.
    #[default]
    None,
    /// Those no agent could hold (agents only gained room or came).
    Unfit,
    /// All (an agent shrank, went, changed labels, or reservations changed).
    All,
}

/// The allocator's state. See the module docs.
#[derive(Default)]
pub struct Allocator {
    agents: Vec<Agent>,
    agent_index: HashMap<String, usize>,
    roles: Vec<Role>,
    role_index: HashMap<String, usize>,
    frameworks: Vec<Framework>,
    framework_index: HashMap<String, usize>,
    /// Where the next search for an agent starts (see `choose_agent`).
    next_start: usize,
    /// Builtin frameworks with waiting tasks that are not stuck.
    active: BTreeSet<usize>,
    /// Frameworks that are stuck.
    stuck: BTreeSet<usize>,
    /// The sequence number of the next task submitted.
    next_seq: u64,
    /// Tasks submitted and not yet checked against the agents: (framework, seq).
    unchecked: Vec<(usize, u64)>,
    /// Which tasks the agents' changes call for checking again.
    recheck: Recheck,
    /// Agents that gained room or changed since the last cycle.
    grown: BTreeSet<usize>,
    /// Those of the cycle under way (what a woken framework searches).
    woken_agents: Vec<usize>,
    /// Something was released since the last cycle.
    released: bool,
    /// Agents with some of everything free: the only ones offers look at.
    with_room: BTreeSet<usize>,
    /// The next offers look at every agent (a full pass).
    offer_all: bool,
    /// Per group: how many of its allocations each agent holds (no zeros).
    groups: HashMap<String, HashMap<usize, u32>>,
    /// Some task is set aside for its constraints: a release, or an
    /// allocation of a group, brings such tasks back to look again.
    set_aside_any: bool,
    /// Where the next choice of any free host port starts (it moves on with
    /// each, so a port just let go is not handed out again at once).
    port_seed: u64,
    /// Host ports recorded as given to a task while another held them.
    port_conflicts: u64,
}

fn unknown(kind: &'static str, name: &str) -> AllocatorError {
    AllocatorError::Unknown {
        kind,
        name: name.to_string(),
    }
}

impl Allocator {
    /// An empty cluster with the implicit role `default` (weight 1).
    pub fn new() -> Self {
        let mut a = Self::default();
        a.set_role(RoleSpec::new("default"));
        a
    }

    /// Adds or updates a role. A parent that does not exist yet is created with weight 1.
    pub fn set_role(&mut self, spec: RoleSpec) -> usize {
        let parent = spec
            .parent
            .as_deref()
            .map(|p| match self.role_index.get(p) {
                Some(&i) => i,
                None => self.set_role(RoleSpec::new(p)),
            });
        match self.role_index.get(&spec.name) {
            Some(&i) => {
                let r = &mut self.roles[i];
                let before = (r.weight, r.parent, r.guarantee, r.limit);
                (r.weight, r.parent, r.guarantee, r.limit) =
                    (spec.weight.max(1e-9), parent, spec.guarantee, spec.limit);
                if before != (r.weight, r.parent, r.guarantee, r.limit) {
                    self.unstick_all();
                }
                i
            }
            None => {
                let i = self.roles.len();
                self.role_index.insert(spec.name.clone(), i);
                self.roles.push(Role::new(spec, parent));
                i
            }
        }
    }

    /// Adds or updates an agent (its total and labels; usage is kept).
    pub fn set_agent(&mut self, spec: AgentSpec) {
        match self.agent_index.get(&spec.name) {
            Some(&i) => {
                if let Some(grew) = self.agents[i].update(spec) {
                    self.agent_changed(i, grew);
                }
            }
            None => {
                let i = self.agents.len();
                self.agent_index.insert(spec.name.clone(), i);
                self.agents.push(Agent::new(spec));
                self.agent_changed(i, true);
            }
        }
    }

    /// An agent was added or changed: tasks are checked against the agents
    /// again (only the unfit ones when it only `grew`), and frameworks stuck
    /// for want of room look at it.
    fn agent_changed(&mut self, agent: usize, grew: bool) {
        let wanted = if grew { Recheck::Unfit } else { Recheck::All };
        self.recheck = self.recheck.max(wanted);
        self.grown.insert(agent);
        self.usage_changed(agent);
    }

    /// Keeps `with_room` in line with an agent's usage.
    fn usage_changed(&mut self, agent: usize) {
        let ag = &self.agents[agent];
        if ag.total.saturating_sub(&ag.used()).any_zero() {
            self.with_room.remove(&agent);
        } else {
            self.with_room.insert(agent);
        }
    }

    /// Keeps `active` and `stuck` in line with framework `f`'s state.
    fn refresh(&mut self, f: usize) {
        let fw = &self.frameworks[f];
        if fw.kind == FrameworkKind::Builtin && !fw.pending.is_empty() && fw.stuck.is_none() {
            self.active.insert(f);
        } else {
            self.active.remove(&f);
        }
        if fw.stuck.is_some() {
            self.stuck.insert(f);
        } else {
            self.stuck.remove(&f);
        }
    }

    fn unstick(&mut self, f: usize) {
        self.frameworks[f].stuck = None;
        self.frameworks[f].woken_for = None;
        self.refresh(f);
    }

    fn unstick_all(&mut self) {
        for f in std::mem::take(&mut self.stuck) {
            self.unstick(f);
        }
    }

    /// Cordons or uncordons an agent: no new allocations while unschedulable.
    pub fn set_schedulable(
        &mut self,
        agent: &str,
        schedulable: bool,
    ) -> Result<(), AllocatorError> {
        let &i = self
            .agent_index
            .get(agent)
            .ok_or_else(|| unknown("agent", agent))?;
        if self.agents[i].schedulable != schedulable {
            self.agents[i].schedulable = schedulable;
            self.agent_changed(i, schedulable);
        }
        Ok(())
    }

    /// Adds or updates a framework (its pending tasks and filters are kept).
    pub fn set_framework(&mut self, spec: FrameworkSpec) {
        let role = match self.role_index.get(&spec.role) {
            Some(&r) => r,
            None => self.set_role(RoleSpec::new(&spec.role)),
        };
        let f = match self.framework_index.get(&spec.name) {
            Some(&i) => {
                self.frameworks[i].update(spec, role);
                i
            }
            None => {
                let i = self.frameworks.len();
                self.framework_index.insert(spec.name.clone(), i);
                self.frameworks.push(Framework::new(spec, role));
                i
            }
        };
        self.refresh(f);
    }

    /// Queues a task of a Builtin framework.
    pub fn submit(&mut self, framework: &str, task: TaskRequest) -> Result<(), AllocatorError> {
        let &f = self
            .framework_index
            .get(framework)
            .ok_or_else(|| unknown("framework", framework))?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let fw = &mut self.frameworks[f];
        if let Some(old) = fw.pending_ids.insert(task.id.clone(), seq) {
            fw.pending.remove(&old);
            fw.unfit.remove(&old);
        }
        if fw.pending.is_empty() {
            fw.stuck = None; // a new first task
        }
        fw.pending.insert(seq, task);
        self.unchecked.push((f, seq));
        self.refresh(f);
        Ok(())
    }

    /// Withdraws a waiting task (deleted before it was placed, or changed).
    pub fn withdraw(&mut self, framework: &str, task: &str) {
        let Some(&f) = self.framework_index.get(framework) else {
            return;
        };
        let fw = &mut self.frameworks[f];
        let Some(seq) = fw.pending_ids.remove(task) else {
            return;
        };
        if fw.pending.first_key_value().is_some_and(|(s, _)| *s == seq) {
            fw.stuck = None; // its first task changes
        }
        fw.pending.remove(&seq);
        fw.unfit.remove(&seq);
        self.refresh(f);
    }

    /// Whether a role is known.
    pub fn has_role(&self, role: &str) -> bool {
        self.role_index.contains_key(role)
    }

    /// Sets aside `amount` of an agent's unreserved free resources for a role.
    pub fn reserve(
        &mut self,
        role: &str,
        agent: &str,
        amount: Resources,
    ) -> Result<(), AllocatorError> {
        let &r = self
            .role_index
            .get(role)
            .ok_or_else(|| unknown("role", role))?;
        let &a = self
            .agent_index
            .get(agent)
            .ok_or_else(|| unknown("agent", agent))?;
        let ag = &mut self.agents[a];
        let free = ag.unreserved_free();
        if !amount.fits_in(&free) {
            return Err(AllocatorError::Unsatisfiable {
                agent: agent.to_string(),
                free,
                wanted: amount,
            });
        }
        *ag.reserved.entry(r).or_default() += amount;
        self.agent_changed(a, false);
        Ok(())
    }

    /// Removes a role's reservations on an agent (what its tasks use stays allocated, as unreserved).
    pub fn unreserve(&mut self, role: &str, agent: &str) {
        let (Some(&r), Some(&a)) = (self.role_index.get(role), self.agent_index.get(agent)) else {
            return;
        };
        let ag = &mut self.agents[a];
        ag.reserved.remove(&r);
        if let Some(used) = ag.reserved_used.remove(&r) {
            ag.unreserved_used += used;
        }
        self.agent_changed(a, true);
    }

    /// Returns an allocation (a finished task, a declined or expired offer,
    /// or the unused part of an offer when `amount` is less than the whole).
    pub fn release(&mut self, alloc: &Allocation, amount: Option<Resources>) {
        if self.set_aside_any {
            // Room, or one of their group fewer: the tasks set aside for
            // their constraints look again.
            self.recheck = self.recheck.max(Recheck::Unfit);
        }
        self.give_back(alloc, amount);
    }

    fn give_back(&mut self, alloc: &Allocation, amount: Option<Resources>) {
        let Some(&a) = self.agent_index.get(&alloc.agent) else {
            return;
        };
        let Some(&f) = self.framework_index.get(&alloc.framework) else {
            return;
        };
        let mut left = amount.unwrap_or_else(|| alloc.total());
        self.grown.insert(a);
        self.released = true;
        if amount.is_none() {
            if let Some(g) = &alloc.group {
                self.ungroup(g, a);
            }
            for p in &alloc.ports {
                self.agents[a].ports.free_port(*p);
            }
        }
        // Unreserved parts go back first, then reservations, the reverse of how they were drawn.
        for (role, part) in alloc.parts.iter().rev() {
            let take = part.min(&left);
            left = left.saturating_sub(&take);
            let ag = &mut self.agents[a];
            match role.as_deref().and_then(|r| self.role_index.get(r)) {
                Some(r) => match ag.reserved_used.get_mut(r) {
                    Some(u) => *u = u.saturating_sub(&take),
                    None => ag.unreserved_used = ag.unreserved_used.saturating_sub(&take),
                },
                None => ag.unreserved_used = ag.unreserved_used.saturating_sub(&take),
            }
            self.usage_changed(a);
            let fw = &mut self.frameworks[f];
            fw.allocated = fw.allocated.saturating_sub(&take);
            let mut role = Some(fw.role);
            while let Some(r) = role {
                self.roles[r].allocated = self.roles[r].allocated.saturating_sub(&take);
                role = self.roles[r].parent;
            }
        }
    }

    /// One allocation of group `g` on agent `a` fewer.
    fn ungroup(&mut self, g: &str, a: usize) {
        if let Some(counts) = self.groups.get_mut(g) {
            if let Some(n) = counts.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&a);
                }
            }
            if counts.is_empty() {
                self.groups.remove(g);
            }
        }
    }

    /// How many of a group's allocations each agent holds, by agent name.
    pub fn group_placement(&self, group: &str) -> BTreeMap<String, u32> {
        self.groups.get(group).map_or_else(BTreeMap::new, |c| {
            c.iter()
                .map(|(a, n)| (self.agents[*a].name.clone(), *n))
                .collect()
        })
    }

    /// Records that a framework declined an agent: no offers of it for `refuse_ms`.
    pub fn decline(&mut self, framework: &str, agent: &str, now_ms: u64, refuse_ms: u64) {
        if let (Some(&f), Some(&a)) = (
            self.framework_index.get(framework),
            self.agent_index.get(agent),
        ) {
            self.frameworks[f]
                .refused
                .insert(a, now_ms.saturating_add(refuse_ms));
        }
    }

    /// The sum of every schedulable agent's total.
    pub fn cluster_total(&self) -> Resources {
        self.agents
            .iter()
            .filter(|a| a.schedulable)
            .fold(Resources::ZERO, |t, a| t + a.total)
    }

    /// What a role and its descendants hold.
    pub fn role_allocated(&self, role: &str) -> Resources {
        self.role_index
            .get(role)
            .map_or(Resources::ZERO, |&r| self.roles[r].allocated)
    }

    /// What a framework holds.
    pub fn framework_allocated(&self, framework: &str) -> Resources {
        self.framework_index
            .get(framework)
            .map_or(Resources::ZERO, |&f| self.frameworks[f].allocated)
    }

    /// A role's dominant share of the cluster.
    pub fn role_share(&self, role: &str) -> f64 {
        self.role_allocated(role)
            .dominant_share(&self.cluster_total())
    }

    /// A framework's dominant share of the cluster.
    pub fn framework_share(&self, framework: &str) -> f64 {
        self.framework_allocated(framework)
            .dominant_share(&self.cluster_total())
    }

    /// How many tasks wait in a framework's queue (not counting those no agent could hold).
    pub fn pending(&self, framework: &str) -> usize {
        self.framework_index
            .get(framework)
            .map_or(0, |&f| self.frameworks[f].pending.len())
    }

    /// Per agent: its usage, for checks and status.
    pub fn agent_usage(&self) -> BTreeMap<String, AgentUsage> {
        self.agents
            .iter()
            .map(|a| {
                let res = a
                    .reserved
                    .iter()
                    .map(|(r, amt)| {
                        let used = a.reserved_used.get(r).copied().unwrap_or_default();
                        (self.roles[*r].name.clone(), (*amt, used))
                    })
                    .collect();
                (
                    a.name.clone(),
                    AgentUsage {
                        total: a.total,
                        unreserved_used: a.unreserved_used,
                        reservations: res,
                    },
                )
            })
            .collect()
    }

    /// How many times a host port was recorded as given to a task while
    /// another task held it (never, unless something else wrote the store).
    pub fn port_conflicts(&self) -> u64 {
        self.port_conflicts
    }

    /// How many agents it knows.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// The agent at index `i` (`0..agent_count()`, in the order they came): its name and what is used of it.
    pub fn agent_used(&self, i: usize) -> (&str, Resources) {
        let a = &self.agents[i];
        (&a.name, a.used())
    }

    /// Role limits as (name, limit, allocated), for checks.
    pub fn role_limits(&self) -> Vec<(String, Option<Resources>, Resources)> {
        self.roles
            .iter()
            .map(|r| (r.name.clone(), r.limit, r.allocated))
            .collect()
    }
}

mod cycle;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ports_tests;
