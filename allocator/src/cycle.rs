//! One allocation cycle: guarantees, weighted DRF placement of Builtin tasks,
//! then offers to External frameworks. See the module docs of [`super`].

use super::model::{FrameworkKind, Stuck};
use super::{Allocation, Allocator, Decision, Placement, Recheck, Resources, TaskRequest};
use std::cmp::Ordering;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Guarantee,
    Fair,
}

/// Per-cycle bookkeeping: each framework's role path (root first), and the
/// weighted share of every role, kept current as the cycle allocates.
struct Keys {
    paths: Vec<Vec<usize>>,
    role_share: Vec<f64>,
    total: Resources,
    /// Free on schedulable agents.
    free: Resources,
    /// Whether a role has a guarantee and no ancestor with one (its unmet part counts once).
    top_guaranteed: Vec<bool>,
    /// The sum of the unmet guarantees of top-guaranteed roles.
    unmet: Resources,
}

impl Keys {
    /// As [`Snap`]'s order, without making the keys.
    fn compare(&self, a: &Allocator, x: usize, y: usize) -> Ordering {
        let (px, py) = (&self.paths[x], &self.paths[y]);
        for (rx, ry) in px.iter().zip(py) {
            if rx != ry {
                return self.role_share[*rx]
                    .total_cmp(&self.role_share[*ry])
                    .then(rx.cmp(ry));
            }
        }
        let fx = a.frameworks[x].allocated.dominant_share(&self.total);
        let fy = a.frameworks[y].allocated.dominant_share(&self.total);
        fx.total_cmp(&fy).then(x.cmp(&y))
    }

    /// Framework `f`'s key now.
    fn snap(&self, a: &Allocator, f: usize) -> Snap {
        Snap {
            path: self.paths[f]
                .iter()
                .map(|r| (*r, self.role_share[*r]))
                .collect(),
            share: a.frameworks[f].allocated.dominant_share(&self.total),
            f,
        }
    }
}

/// A framework's key: the weighted shares of the roles on its path (root
/// first), then its own share. Two frameworks compare at the first role where
/// their paths part (by share, then role), or by their own shares.
struct Snap {
    path: Vec<(usize, f64)>,
    share: f64,
    f: usize,
}

impl Ord for Snap {
    fn cmp(&self, o: &Self) -> Ordering {
        for ((rx, sx), (ry, sy)) in self.path.iter().zip(&o.path) {
            if rx != ry {
                return sx.total_cmp(sy).then(rx.cmp(ry));
            }
        }
        self.share.total_cmp(&o.share).then(self.f.cmp(&o.f))
    }
}

impl PartialOrd for Snap {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for Snap {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
            && self.path.len() == o.path.len()
            && self
                .path
                .iter()
                .zip(&o.path)
                .all(|(x, y)| x.0 == y.0 && x.1 == y.1)
    }
}

impl Eq for Snap {}

/// How many fitting agents a placement compares, of `n` (kube-scheduler's
/// adaptive `percentageOfNodesToScore`); all of them below 100.
pub(super) fn feasible_to_find(n: usize) -> usize {
    if n < 100 {
        return n;
    }
    let percent = 50usize.saturating_sub(n / 125).max(5);
    (n * percent / 100).max(100)
}

impl Allocator {
    fn chain(&self, role: usize) -> Vec<usize> {
        let mut chain = vec![role];
        while let Some(p) = self.roles[*chain.last().expect("non-empty")].parent {
            if chain.contains(&p) {
                break; // a cycle in declared parents: treat the role as top-level
            }
            chain.push(p);
        }
        chain
    }

    fn keys(&self) -> Keys {
        let total = self.cluster_total();
        let paths = self
            .frameworks
            .iter()
            .map(|f| {
                let mut p = self.chain(f.role);
                p.reverse();
                p
            })
            .collect();
        let role_share = self
            .roles
            .iter()
            .map(|r| r.allocated.dominant_share(&total) / r.weight)
            .collect();
        let top_guaranteed: Vec<bool> = (0..self.roles.len())
            .map(|i| {
                self.roles[i].guarantee.is_some()
                    && !self
                        .chain(i)
                        .iter()
                        .skip(1)
                        .any(|a| self.roles[*a].guarantee.is_some())
            })
            .collect();
        let unmet = (0..self.roles.len())
            .filter(|&i| top_guaranteed[i])
            .fold(Resources::ZERO, |t, i| t + self.unmet(i));
        Keys {
            paths,
            role_share,
            total,
            free: self.cluster_free(),
            top_guaranteed,
            unmet,
        }
    }

    /// What a role's guarantee still lacks.
    fn unmet(&self, role: usize) -> Resources {
        let r = &self.roles[role];
        r.guarantee
            .map_or(Resources::ZERO, |g| g.saturating_sub(&r.allocated))
    }

    /// What the unmet guarantees of roles outside `chain` still need.
    fn headroom_excluding(&self, chain: &[usize], keys: &Keys) -> Resources {
        chain
            .iter()
            .filter(|&&r| keys.top_guaranteed[r])
            .fold(keys.unmet, |t, &r| t.saturating_sub(&self.unmet(r)))
    }

    fn cluster_free(&self) -> Resources {
        self.agents
            .iter()
            .filter(|a| a.schedulable)
            .fold(Resources::ZERO, |t, a| {
                t + a.total.saturating_sub(&a.used())
            })
    }

    /// What `chain`'s limits still allow.
    fn limit_room(&self, chain: &[usize]) -> Resources {
        let mut room = Resources::new(u64::MAX, u64::MAX);
        for &r in chain {
            if let Some(l) = self.roles[r].limit {
                room = room.min(&l.saturating_sub(&self.roles[r].allocated));
            }
        }
        room
    }

    /// What an agent has free for a role: unreserved plus the reservations of the role's chain.
    pub(super) fn free_for(&self, agent: usize, chain: &[usize]) -> Resources {
        let ag = &self.agents[agent];
        chain
            .iter()
            .fold(ag.unreserved_free(), |t, r| t + ag.reserved_free(*r))
    }

    /// Whether an agent has room for a task now: its resources, from what
    /// the task's role may use there, and its host ports.
    pub(super) fn has_room(&self, agent: usize, task: &TaskRequest, chain: &[usize]) -> bool {
        task.resources.fits_in(&self.free_for(agent, chain))
            && self.agents[agent].ports.fits(&task.ports)
    }

    /// Takes `amount` from an agent for framework `f`: reservations of its
    /// chain first, then unreserved. `ports` are held on it already.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &mut self,
        agent: usize,
        f: usize,
        chain: &[usize],
        amount: Resources,
        mut keys: Option<&mut Keys>,
        group: Option<&str>,
        ports: Vec<u16>,
    ) -> Allocation {
        let mut left = amount;
        let mut parts = Vec::new();
        for &r in chain {
            let take = left.min(&self.agents[agent].reserved_free(r));
            if !take.is_zero() {
                *self.agents[agent].reserved_used.entry(r).or_default() += take;
                left = left.saturating_sub(&take);
                parts.push((Some(self.roles[r].name.clone()), take));
            }
        }
        if !left.is_zero() {
            self.agents[agent].unreserved_used += left;
            parts.push((None, left));
        }
        self.usage_changed(agent);
        self.frameworks[f].allocated += amount;
        for &r in chain {
            let before = self.unmet(r);
            self.roles[r].allocated += amount;
            if let Some(keys) = keys.as_deref_mut() {
                if keys.top_guaranteed[r] {
                    keys.unmet = keys.unmet.saturating_sub(&before) + self.unmet(r);
                }
                keys.role_share[r] =
                    self.roles[r].allocated.dominant_share(&keys.total) / self.roles[r].weight;
            }
        }
        if let Some(keys) = keys {
            keys.free = keys.free.saturating_sub(&amount);
        }
        if let Some(g) = group {
            if self.set_aside_any {
                // The group's counts change: those set aside look again.
                self.recheck = self.recheck.max(Recheck::Unfit);
            }
            *self
                .groups
                .entry(g.to_string())
                .or_default()
                .entry(agent)
                .or_default() += 1;
        }
        Allocation {
            agent: self.agents[agent].name.clone(),
            framework: self.frameworks[f].name.clone(),
            parts,
            group: group.map(Into::into),
            ports,
        }
    }

    /// The agent a task goes to, by the framework's placement, or `None` if none fits now.
    ///
    /// On a large cluster it looks, as kube-scheduler does
    /// (`percentageOfNodesToScore`), only until it has found enough agents
    /// that fit (at least 100; 50% of the agents minus one point per 125 of
    /// them, no less than 5%), starting each search where the last one
    /// stopped, so that placing a task costs O(that number), not O(agents).
    ///
    /// With `only_grown`, it searches only the agents that gained room this
    /// cycle (the task found none before, and no other agent gained any).
    fn choose_agent(
        &mut self,
        f: usize,
        task: &TaskRequest,
        chain: &[usize],
        only_grown: bool,
    ) -> Option<usize> {
        let spread = self.frameworks[f].placement == Placement::Spread;
        let n = self.agents.len();
        if n == 0 {
            return None;
        }
        let better = |load: f64, best: Option<(usize, f64)>| match best {
            None => true,
            Some((_, b)) if spread => load < b,
            Some((_, b)) => load > b,
        };
        let placed = self.placed_by_value(task, chain);
        let admits = |i: usize| {
            let ag = &self.agents[i];
            ag.schedulable
                && ag.admits(task)
                && task
                    .constraints
                    .iter()
                    .zip(&placed)
                    .all(|(c, p)| c.is_static() || c.admits(ag.value(c.field()), p))
        };
        if only_grown {
            let mut best = None::<(usize, f64)>;
            for &i in &self.woken_agents {
                let ag = &self.agents[i];
                if admits(i) && self.has_room(i, task, chain) {
                    let load = (ag.used() + task.resources).dominant_share(&ag.total);
                    if better(load, best) {
                        best = Some((i, load));
                    }
                }
            }
            return best.map(|(i, _)| i);
        }
        let enough = feasible_to_find(n);
        let start = self.next_start % n;
        let (mut best, mut found, mut looked) = (None::<(usize, f64)>, 0, 0);
        for i in (start..n).chain(0..start) {
            looked += 1;
            let ag = &self.agents[i];
            if !self.has_room(i, task, chain) || !admits(i) {
                continue;
            }
            found += 1;
            let load = (ag.used() + task.resources).dominant_share(&ag.total);
            if better(load, best) {
                best = Some((i, load));
            }
            if found >= enough {
                break;
            }
        }
        self.next_start = (start + looked) % n;
        best.map(|(i, _)| i)
    }

    /// Whether any agent could ever hold the task (ignoring what runs now).
    fn could_ever_fit(&self, task: &TaskRequest, chain: &[usize]) -> bool {
        if task.constraints.iter().any(|c| c.defect().is_some()) {
            return false;
        }
        self.agents.iter().any(|ag| {
            let others_reserved = ag
                .reserved
                .iter()
                .filter(|(r, _)| !chain.contains(r))
                .fold(Resources::ZERO, |t, (_, a)| t + *a);
            ag.schedulable
                && ag.admits(task)
                && ag.ports.could_hold(&task.ports)
                && task
                    .resources
                    .fits_in(&ag.total.saturating_sub(&others_reserved))
        })
    }

    fn below_guarantee(&self, chain: &[usize], amount: Resources) -> bool {
        chain.iter().any(|&r| {
            let role = &self.roles[r];
            role.guarantee
                .is_some_and(|g| (role.allocated + amount).fits_in(&g))
        })
    }

    /// Records an allocation made earlier (a task already bound to an agent, an
    /// offer still outstanding), drawing from reservations as a new one would.
    /// `ports` (the host ports the task was given) are held by it; one that
    /// another allocation holds already (the store says two tasks were given
    /// it) is held twice and free only when both have let it go.
    pub fn assign(
        &mut self,
        framework: &str,
        agent: &str,
        amount: Resources,
        group: Option<&str>,
        ports: &[u16],
    ) -> Option<Allocation> {
        let &f = self.framework_index.get(framework)?;
        let &a = self.agent_index.get(agent)?;
        let chain = self.chain(self.frameworks[f].role);
        let held: Vec<u16> = ports.iter().copied().filter(|p| *p != 0).collect();
        for &p in &held {
            if !self.agents[a].ports.hold(p) {
                self.port_conflicts += 1;
            }
        }
        Some(self.take(a, f, &chain, amount, None, group, held))
    }

    /// Runs one cycle and returns what it decided. `now_ms` is for refuse
    /// filters. It looks only at what changed since the last cycle (see the
    /// module docs of [`super`]).
    pub fn allocate(&mut self, now_ms: u64) -> Vec<Decision> {
        let mut out = Vec::new();
        let mut blocked_alike: HashMap<String, String> = HashMap::new();
        self.wake();
        let mut keys = self.keys();
        self.check_fit(&mut out);
        for stage in [Stage::Guarantee, Stage::Fair] {
            // Only roles with a guarantee take part in the first stage, stuck or not.
            let mut guaranteed: BTreeSet<usize> = BTreeSet::new();
            if stage == Stage::Guarantee {
                guaranteed = self
                    .active
                    .iter()
                    .chain(&self.stuck)
                    .copied()
                    .filter(|&f| {
                        self.chain(self.frameworks[f].role)
                            .iter()
                            .any(|r| self.roles[*r].guarantee.is_some())
                    })
                    .collect();
            }
            // The fair stage takes frameworks lowest key first from a heap of
            // their keys as they were when pushed: keys only grow during a
            // cycle, so one whose key is still what it was is the lowest.
            let mut heap: BinaryHeap<Reverse<Snap>> = match stage {
                Stage::Fair => self
                    .active
                    .iter()
                    .map(|&f| Reverse(keys.snap(self, f)))
                    .collect(),
                Stage::Guarantee => BinaryHeap::new(),
            };
            loop {
                let best = match stage {
                    Stage::Guarantee => {
                        let mut best: Option<usize> = None;
                        for &f in &guaranteed {
                            let fw = &self.frameworks[f];
                            if fw.kind != FrameworkKind::Builtin || fw.pending.is_empty() {
                                continue;
                            }
                            if best.is_none_or(|b| keys.compare(self, f, b) == Ordering::Less) {
                                best = Some(f);
                            }
                        }
                        best
                    }
                    Stage::Fair => self.pop_lowest(&mut heap, &keys),
                };
                let Some(f) = best else { break };
                let (&seq, task) = self.frameworks[f]
                    .pending
                    .first_key_value()
                    .expect("non-empty");
                let task = task.clone();
                let chain = self.chain(self.frameworks[f].role);
                let q = task.resources;
                let allowed = q.fits_in(&self.limit_room(&chain))
                    && match stage {
                        Stage::Guarantee => self.below_guarantee(&chain, q),
                        Stage::Fair => {
                            (q + self.headroom_excluding(&chain, &keys)).fits_in(&keys.free)
                        }
                    };
                let only_grown = self.frameworks[f].woken_for == Some(seq);
                // Tasks alike in all that placement judges (an App's
                // instances) are judged once a cycle when none can go.
                let alike = task.may_be_set_aside().then(|| task.likeness());
                let known = alike.as_ref().and_then(|k| blocked_alike.get(k)).cloned();
                let chosen = match known {
                    Some(_) => None,
                    None => allowed
                        .then(|| self.choose_agent(f, &task, &chain, only_grown))
                        .flatten(),
                };
                let blocked = match chosen {
                    None if known.is_some() => known,
                    None if allowed => self.block_reason(&task, &chain),
                    _ => None,
                };
                if let (Some(k), Some(reason)) = (alike, &blocked) {
                    blocked_alike.insert(k, reason.clone());
                }
                match chosen {
                    Some(agent) => {
                        let fw = &mut self.frameworks[f];
                        fw.pending.remove(&seq);
                        fw.pending_ids.remove(&task.id);
                        fw.stuck = None; // its first task changed
                        fw.woken_for = None;
                        self.refresh(f);
                        self.port_seed = self.port_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                        let ports = self.agents[agent].ports.take(&task.ports, self.port_seed);
                        let allocation = self.take(
                            agent,
                            f,
                            &chain,
                            q,
                            Some(&mut keys),
                            task.group.as_deref(),
                            ports,
                        );
                        if stage == Stage::Fair && self.active.contains(&f) {
                            heap.push(Reverse(keys.snap(self, f)));
                        }
                        out.push(Decision::Place {
                            task: task.id,
                            allocation,
                        });
                    }
                    None if blocked.is_some() => {
                        let reason = blocked.unwrap_or_default();
                        self.set_aside(f, seq, reason, &mut out);
                        if stage == Stage::Fair && self.active.contains(&f) {
                            heap.push(Reverse(keys.snap(self, f)));
                        }
                    }
                    None if stage == Stage::Guarantee => {
                        guaranteed.remove(&f);
                    }
                    None => {
                        self.frameworks[f].stuck = Some(if allowed {
                            Stuck::NoAgent
                        } else {
                            Stuck::Quota
                        });
                        self.frameworks[f].woken_for = None;
                        self.refresh(f);
                    }
                }
            }
        }
        self.make_offers(now_ms, &mut keys, &mut out);
        out
    }

    /// The active framework with the lowest key, from a heap of keys that may
    /// be stale (lower than now): a stale one goes back with its key now.
    fn pop_lowest(&self, heap: &mut BinaryHeap<Reverse<Snap>>, keys: &Keys) -> Option<usize> {
        while let Some(Reverse(s)) = heap.pop() {
            if !self.active.contains(&s.f) {
                continue;
            }
            let now = keys.snap(self, s.f);
            if now == s {
                return Some(s.f);
            }
            heap.push(Reverse(now));
        }
        None
    }

    /// Looks at everything again: every task checked against the agents and
    /// every stuck framework tried. After incremental cycles this decides no
    /// placement they missed; it is the periodic check that proves it.
    pub fn allocate_full(&mut self, now_ms: u64) -> Vec<Decision> {
        self.recheck = Recheck::All;
        self.offer_all = true;
        self.unstick_all();
        self.allocate(now_ms)
    }

    /// Wakes the stuck frameworks that what changed since the last cycle may
    /// help: one held back by a quota when anything was released or an agent
    /// changed, one short of room when an agent that gained room could hold
    /// its first task.
    fn wake(&mut self) {
        let grown = std::mem::take(&mut self.grown);
        let released = std::mem::take(&mut self.released);
        self.woken_agents.clear();
        if grown.is_empty() && !released {
            return;
        }
        let stuck: Vec<usize> = self.stuck.iter().copied().collect();
        for f in stuck {
            let fw = &self.frameworks[f];
            // Short of room: only an agent that gained some can hold its first
            // task, and only those are searched for it.
            let (wake, only_grown) = match (fw.stuck, fw.pending.first_key_value()) {
                // A task whose constraints count its group is searched for
                // everywhere: a release elsewhere may have made room for it.
                (Some(Stuck::NoAgent), Some((_, task))) if task.has_dynamic_constraints() => {
                    (true, None)
                }
                (Some(Stuck::NoAgent), Some((&seq, task))) => {
                    let chain = self.chain(fw.role);
                    let fits = grown.iter().any(|&a| {
                        let ag = &self.agents[a];
                        ag.schedulable && ag.admits(task) && self.has_room(a, task, &chain)
                    });
                    (fits, Some(seq))
                }
                _ => (true, None),
            };
            if wake {
                self.unstick(f);
                self.frameworks[f].woken_for = only_grown;
            }
        }
        self.woken_agents = grown.into_iter().collect();
    }

    /// Sets aside the tasks no schedulable agent could ever hold (reporting
    /// each), and brings back those that one can hold now. Only tasks not yet
    /// checked are looked at, unless the agents changed. With no schedulable
    /// agent at all, every task waits: agents may still register.
    fn check_fit(&mut self, out: &mut Vec<Decision>) {
        if !self.agents.iter().any(|a| a.schedulable) {
            return;
        }
        let recheck = std::mem::replace(&mut self.recheck, Recheck::None);
        if recheck != Recheck::None {
            self.set_aside_any = false; // set aside again if still blocked
        }
        let mut todo = std::mem::take(&mut self.unchecked);
        if recheck != Recheck::None {
            for f in 0..self.frameworks.len() {
                let fw = &mut self.frameworks[f];
                if fw.unfit.is_empty() && recheck == Recheck::Unfit {
                    continue;
                }
                let unfit = std::mem::take(&mut fw.unfit);
                let first_unfit = unfit.keys().next();
                if first_unfit.is_some_and(|u| fw.pending.keys().next().is_none_or(|p| u < p)) {
                    fw.stuck = None; // an unfit task comes back ahead of its first one
                }
                todo.extend(unfit.keys().map(|seq| (f, *seq)));
                fw.pending.extend(unfit);
                if recheck == Recheck::All {
                    todo.extend(fw.pending.keys().map(|seq| (f, *seq)));
                }
                self.refresh(f);
            }
        }
        let mut largest = None;
        let mut chains: HashMap<usize, Vec<usize>> = HashMap::new();
        for (f, seq) in todo {
            let chain = chains
                .entry(f)
                .or_insert_with(|| self.chain(self.frameworks[f].role));
            let Some(task) = self.frameworks[f].pending.get(&seq) else {
                continue; // placed, withdrawn, or checked already
            };
            if self.could_ever_fit(task, chain) {
                continue;
            }
            let fw = &mut self.frameworks[f];
            let first = fw.pending.keys().next() == Some(&seq);
            let t = fw.pending.remove(&seq).expect("present");
            if first {
                fw.stuck = None;
            }
            let largest = *largest.get_or_insert_with(|| {
                self.agents
                    .iter()
                    .filter(|a| a.schedulable)
                    .map(|a| a.total)
                    .max_by_key(|t| (t.cpus_milli, t.memory))
                    .unwrap_or_default()
            });
            let reason = if let Some(bad) = t.constraints.iter().find_map(|c| {
                c.defect()
                    .map(|d| format!("constraint {c} is not a regular expression: {d}"))
            }) {
                bad
            } else if let Some(twice) = crate::ports::asked_twice(&t.ports) {
                format!("it asks for host port {twice} twice")
            } else if !t.ports.is_empty()
                && !self
                    .agents
                    .iter()
                    .any(|a| a.schedulable && a.ports.could_hold(&t.ports))
            {
                format!(
                    "no agent offers the host ports it asks for ({})",
                    crate::ports::describe(&t.ports)
                )
            } else if !t.constraints.is_empty() {
                let cs: Vec<String> = t.constraints.iter().map(|c| c.to_string()).collect();
                format!(
                    "unfulfilled constraint: no agent matching {:?} and {} can hold {}",
                    t.selector,
                    cs.join(", "),
                    t.resources
                )
            } else if t.selector.is_empty() {
                format!(
                    "it needs {} and the largest agent has {largest}",
                    t.resources
                )
            } else {
                format!(
                    "no agent matching {:?} can hold {}",
                    t.selector, t.resources
                )
            };
            out.push(Decision::Unschedulable {
                task: t.id.clone(),
                framework: self.frameworks[f].name.clone(),
                reason,
                waits: false,
            });
            self.frameworks[f].unfit.insert(seq, t);
            self.refresh(f);
        }
    }

    /// Offers each agent's free resources to the External framework with the lowest key
    /// that does not filter it, then what is left to the next, until nothing is. Frameworks are grouped by role, each group kept sorted by
    /// the framework's share, so finding a role's best eligible framework for an agent
    /// usually looks at its first entry only.
    fn make_offers(&mut self, now_ms: u64, keys: &mut Keys, out: &mut Vec<Decision>) {
        let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (f, fw) in self.frameworks.iter().enumerate() {
            if fw.kind == FrameworkKind::External && !fw.suppressed {
                groups.entry(fw.role).or_default().push(f);
            }
        }
        if groups.is_empty() {
            return;
        }
        let total = keys.total;
        let share = |a: &Allocator, f: usize| a.frameworks[f].allocated.dominant_share(&total);
        let mut groups: Vec<(Vec<usize>, Vec<usize>)> = groups
            .into_iter()
            .map(|(role, mut fws)| {
                fws.sort_by(|x, y| share(self, *x).total_cmp(&share(self, *y)).then(x.cmp(y)));
                (self.chain(role), fws)
            })
            .collect();
        // Only agents with room left: on a cluster offered out, this is none.
        let with_room: Vec<usize> = if std::mem::take(&mut self.offer_all) {
            (0..self.agents.len()).collect()
        } else {
            self.with_room.iter().copied().collect()
        };
        for a in with_room {
            if !self.agents[a].schedulable {
                continue;
            }
            // What one framework does not get (its quota is smaller) goes to the next.
            loop {
                let mut best: Option<(usize, usize, Resources)> = None;
                for (g, (chain, fws)) in groups.iter().enumerate() {
                    let cap = keys
                        .free
                        .saturating_sub(&self.headroom_excluding(chain, keys));
                    let offer = self
                        .free_for(a, chain)
                        .min(&self.limit_room(chain))
                        .min(&cap);
                    if offer.any_zero() {
                        continue;
                    }
                    let eligible = fws.iter().position(|f| {
                        self.frameworks[*f]
                            .refused
                            .get(&a)
                            .is_none_or(|&until| until <= now_ms)
                    });
                    let Some(pos) = eligible else { continue };
                    let f = fws[pos];
                    if best.is_none_or(|(bg, bp, _)| {
                        keys.compare(self, f, groups[bg].1[bp]) == Ordering::Less
                    }) {
                        best = Some((g, pos, offer));
                    }
                }
                let Some((g, pos, offer)) = best else { break };
                {
                    let f = groups[g].1.remove(pos);
                    let chain = groups[g].0.clone();
                    // The agent's free ports go with its first offer.
                    let ports = self.agents[a].ports.take_free(crate::ports::OFFER_MAX_RUNS);
                    let allocation = self.take(a, f, &chain, offer, Some(keys), None, ports);
                    out.push(Decision::Offer { allocation });
                    // Its share grew: move it to its place in the group again.
                    let fs = share(self, f);
                    let fws = &mut groups[g].1;
                    let at = fws.partition_point(|x| {
                        let xs = share(self, *x);
                        xs < fs || (xs == fs && *x < f)
                    });
                    fws.insert(at, f);
                }
            }
        }
    }
}
