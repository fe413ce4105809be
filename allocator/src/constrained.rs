//! The allocator's side of placement constraints: where a task's group
//! runs, as each of its constraints sees it; why a task they turn away from
//! every agent with room cannot go; and setting such a task aside (see the
//! module docs of [`super`] and [`super::constraint`]).

use super::constraint::{Operator, Placed};
use super::{Allocator, Decision, TaskRequest};
use std::collections::HashMap;

impl Allocator {
    /// For each of a task's constraints that depends on where its group
    /// runs: where the group's allocations are, by the value of the
    /// constraint's field (empty for the others). For `GROUP_BY`, every
    /// value of the agents that could take the task now is there, with zero
    /// if none of the group is on it. Tasks without such constraints cost
    /// nothing here.
    pub(super) fn placed_by_value(&self, task: &TaskRequest, chain: &[usize]) -> Vec<Placed<'_>> {
        let counts = task.group.as_ref().and_then(|g| self.groups.get(g));
        task.constraints
            .iter()
            .map(|c| {
                let mut by_value: HashMap<&str, u32> = HashMap::new();
                if c.is_static() {
                    return Placed::default();
                }
                if c.operator() == Operator::GroupBy {
                    for (i, ag) in self.agents.iter().enumerate() {
                        if let Some(v) = ag.value(c.field())
                            && ag.schedulable
                            && ag.admits(task)
                            && self.has_room(i, task, chain)
                        {
                            by_value.entry(v).or_insert(0);
                        }
                    }
                }
                for (&a, &n) in counts.into_iter().flatten() {
                    if let Some(v) = self.agents[a].value(c.field()) {
                        *by_value.entry(v).or_default() += n;
                    }
                }
                c.placed(by_value)
            })
            .collect()
    }

    /// Why a task that may be set aside found no agent although some agent
    /// that its selector and the constraints on the agent alone admit has
    /// room for its resources now: its host ports are taken on every such
    /// agent, or the constraints that count its group turned every one away.
    /// `None` if no such agent has room (it waits as any task does).
    pub(super) fn block_reason(&self, task: &TaskRequest, chain: &[usize]) -> Option<String> {
        if !task.may_be_set_aside() {
            return None;
        }
        let mut with_room: Vec<usize> = (0..self.agents.len())
            .filter(|&i| {
                let ag = &self.agents[i];
                ag.schedulable
                    && ag.admits(task)
                    && task.resources.fits_in(&self.free_for(i, chain))
            })
            .collect();
        if with_room.is_empty() {
            return None;
        }
        if !task.ports.is_empty() {
            with_room.retain(|&i| self.agents[i].ports.fits(&task.ports));
            if with_room.is_empty() {
                return Some(format!(
                    "host ports taken: no agent with room for {} has the host ports it asks for free ({})",
                    task.resources,
                    super::ports::describe(&task.ports)
                ));
            }
        }
        if !task.has_dynamic_constraints() {
            return None;
        }
        let placed = self.placed_by_value(task, chain);
        let refusing: Vec<String> = task
            .constraints
            .iter()
            .zip(&placed)
            .filter(|(c, p)| {
                !c.is_static()
                    && with_room
                        .iter()
                        .any(|&i| !c.admits(self.agents[i].value(c.field()), p))
            })
            .map(|(c, _)| c.to_string())
            .collect();
        let group = task.group.as_deref().unwrap_or("its group");
        Some(format!(
            "unfulfilled constraint {}: no agent with room for {} meets it, given where {group} runs",
            refusing.join(", "),
            task.resources
        ))
    }

    /// Sets a waiting task aside (its constraints or its host ports turned
    /// every agent with room away) and reports it; a release, an allocation
    /// of its group or a change of the agents brings it back.
    pub(super) fn set_aside(
        &mut self,
        f: usize,
        seq: u64,
        reason: String,
        out: &mut Vec<Decision>,
    ) {
        let fw = &mut self.frameworks[f];
        let Some(t) = fw.pending.remove(&seq) else {
            return;
        };
        fw.stuck = None; // its first task changed
        fw.woken_for = None;
        self.set_aside_any = true;
        out.push(Decision::Unschedulable {
            task: t.id.clone(),
            framework: fw.name.clone(),
            reason,
            waits: true,
        });
        fw.unfit.insert(seq, t);
        self.refresh(f);
    }
}
