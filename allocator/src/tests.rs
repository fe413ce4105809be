//! Allocator core tests with no API server: fairness, quota, reservations,
//! filters, and property tests of the accounting invariants.

use super::*;
use proptest::prelude::*;

const GI: u64 = 1 << 30;

fn cpus(c: f64, mem_gi: u64) -> Resources {
    Resources::new((c * 1000.0) as u64, mem_gi * GI)
}

fn cluster(n: usize, total: Resources) -> Allocator {
    let mut a = Allocator::new();
    for i in 0..n {
        a.set_agent(AgentSpec {
            name: format!("agent-{i}"),
            total,
            labels: [("rack".to_string(), format!("r{}", i % 2))].into(),
            ports: Default::default(),
        });
    }
    a
}

fn submit_many(a: &mut Allocator, fw: &str, n: usize, r: Resources) {
    for i in 0..n {
        a.submit(fw, TaskRequest::new(&format!("{fw}-{i}"), r))
            .unwrap();
    }
}

fn placed_by(ds: &[Decision], fw: &str) -> usize {
    ds.iter()
        .filter(|d| matches!(d, Decision::Place { allocation, .. } if allocation.framework == fw))
        .count()
}

#[test]
fn weights_one_and_three_split_a_full_cluster_one_to_three() {
    let mut a = cluster(4, cpus(4.0, 16));
    a.set_role(RoleSpec {
        weight: 1.0,
        ..RoleSpec::new("a")
    });
    a.set_role(RoleSpec {
        weight: 3.0,
        ..RoleSpec::new("b")
    });
    a.set_framework(FrameworkSpec::builtin("fa", "a"));
    a.set_framework(FrameworkSpec::builtin("fb", "b"));
    submit_many(&mut a, "fa", 100, cpus(1.0, 1));
    submit_many(&mut a, "fb", 100, cpus(1.0, 1));
    let ds = a.allocate(0);
    let (na, nb) = (placed_by(&ds, "fa"), placed_by(&ds, "fb"));
    assert_eq!(na + nb, 16, "the cluster is full");
    assert!(
        na.abs_diff(4) <= 1 && nb.abs_diff(12) <= 1,
        "split {na}:{nb}, want 4:12 ±1"
    );
}

#[test]
fn cpu_heavy_and_memory_heavy_converge_to_equal_dominant_shares() {
    let mut a = cluster(4, cpus(8.0, 32));
    a.set_framework(FrameworkSpec::builtin("cpu", "default"));
    a.set_framework(FrameworkSpec::builtin("mem", "default"));
    submit_many(&mut a, "cpu", 200, cpus(1.0, 1));
    submit_many(&mut a, "mem", 200, cpus(0.5, 4));
    a.allocate(0);
    let (sc, sm) = (a.framework_share("cpu"), a.framework_share("mem"));
    // One task of either is 1/32 of the cluster in its dominant resource.
    assert!((sc - sm).abs() <= 1.0 / 32.0 + 1e-9, "shares {sc} vs {sm}");
    assert!(sc > 0.4 && sm > 0.4, "the cluster is used: {sc} {sm}");
}

#[test]
fn a_quota_limit_is_never_exceeded_even_on_an_idle_cluster() {
    let mut a = cluster(4, cpus(8.0, 32));
    a.set_role(RoleSpec {
        limit: Some(cpus(2.0, 1024)),
        ..RoleSpec::new("capped")
    });
    a.set_framework(FrameworkSpec::builtin("f", "capped"));
    submit_many(&mut a, "f", 10, cpus(1.0, 1));
    let ds = a.allocate(0);
    assert_eq!(placed_by(&ds, "f"), 2);
    assert_eq!(a.role_allocated("capped").cpus_milli, 2000);
    assert!(a.allocate(1).is_empty(), "still capped on the next cycle");
}

#[test]
fn a_guarantee_is_served_first_and_held_back_from_others() {
    let mut a = cluster(2, cpus(4.0, 16));
    a.set_role(RoleSpec {
        guarantee: Some(cpus(4.0, 4)),
        ..RoleSpec::new("gold")
    });
    a.set_role(RoleSpec {
        weight: 100.0,
        ..RoleSpec::new("bulk")
    });
    a.set_framework(FrameworkSpec::builtin("g", "gold"));
    a.set_framework(FrameworkSpec::builtin("b", "bulk"));
    // Gold has no work yet: bulk may not take what gold is guaranteed.
    submit_many(&mut a, "b", 100, cpus(1.0, 1));
    let ds = a.allocate(0);
    assert_eq!(
        placed_by(&ds, "b"),
        4,
        "bulk gets only what the guarantee leaves"
    );
    // Gold's work arrives: it gets its guarantee although bulk has more weight.
    submit_many(&mut a, "g", 100, cpus(1.0, 1));
    let ds = a.allocate(1);
    assert_eq!(placed_by(&ds, "g"), 4);
    assert_eq!(a.role_allocated("gold").cpus_milli, 4000);
}

#[test]
fn reserved_resources_go_only_to_their_role() {
    let mut a = cluster(1, cpus(4.0, 16));
    a.set_role(RoleSpec::new("owner"));
    a.set_role(RoleSpec::new("starved"));
    a.reserve("owner", "agent-0", cpus(2.0, 8)).unwrap();
    a.set_framework(FrameworkSpec::builtin("s", "starved"));
    submit_many(&mut a, "s", 10, cpus(1.0, 1));
    let ds = a.allocate(0);
    assert_eq!(placed_by(&ds, "s"), 2, "only the unreserved half");
    assert!(
        a.allocate(1).is_empty(),
        "the owner is idle, the starved role still gets nothing reserved"
    );
    a.unreserve("owner", "agent-0");
    let ds = a.allocate(2);
    assert_eq!(placed_by(&ds, "s"), 2, "freed by removing the reservation");
    // A child of the owner may use the owner's reservation.
    let mut a = cluster(1, cpus(4.0, 16));
    a.set_role(RoleSpec {
        parent: Some("owner".into()),
        ..RoleSpec::new("owner/child")
    });
    a.reserve("owner", "agent-0", cpus(4.0, 16)).unwrap();
    a.set_framework(FrameworkSpec::builtin("c", "owner/child"));
    submit_many(&mut a, "c", 10, cpus(1.0, 1));
    assert_eq!(placed_by(&a.allocate(0), "c"), 4);
    assert!(
        a.reserve("owner", "agent-0", cpus(1.0, 1)).is_err(),
        "nothing unreserved is left"
    );
}

#[test]
fn declined_agents_are_filtered_for_refuse_seconds_and_suppression_stops_offers() {
    let mut a = cluster(2, cpus(4.0, 16));
    a.set_framework(FrameworkSpec::external("ext", "default"));
    let ds = a.allocate(0);
    assert_eq!(ds.len(), 2, "one offer per agent: {ds:?}");
    for d in &ds {
        let Decision::Offer { allocation } = d else {
            panic!("{d:?}")
        };
        assert_eq!(allocation.total(), cpus(4.0, 16));
        a.release(allocation, None);
        if allocation.agent == "agent-0" {
            a.decline("ext", "agent-0", 0, 5_000);
        }
    }
    let ds = a.allocate(1_000);
    let agents: Vec<_> = ds
        .iter()
        .map(|d| match d {
            Decision::Offer { allocation } => allocation.agent.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(agents, ["agent-1"], "agent-0 is filtered for 5 s");
    let Decision::Offer { allocation } = &ds[0] else {
        unreachable!()
    };
    a.release(allocation, None);
    let ds = a.allocate(6_000);
    assert_eq!(ds.len(), 2, "the filter expired");
    for d in &ds {
        if let Decision::Offer { allocation } = d {
            a.release(allocation, None);
        }
    }
    a.set_framework(FrameworkSpec {
        suppressed: true,
        ..FrameworkSpec::external("ext", "default")
    });
    assert!(a.allocate(7_000).is_empty(), "no offers while suppressed");
}

#[test]
fn a_task_no_agent_could_hold_is_unschedulable_with_a_reason() {
    let mut a = cluster(2, cpus(4.0, 16));
    a.set_framework(FrameworkSpec::builtin("f", "default"));
    a.submit("f", TaskRequest::new("huge", cpus(64.0, 1)))
        .unwrap();
    let mut picky = TaskRequest::new("picky", cpus(1.0, 1));
    picky.selector = [("rack".to_string(), "r9".to_string())].into();
    a.submit("f", picky).unwrap();
    let ds = a.allocate(0);
    let reasons: Vec<_> = ds
        .iter()
        .filter_map(|d| match d {
            Decision::Unschedulable { task, reason, .. } => Some((task.as_str(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{ds:?}");
    assert!(
        reasons[0].1.contains("largest agent has cpus=4 "),
        "{reasons:?}"
    );
    assert!(reasons[1].1.contains("r9"), "{reasons:?}");
    assert_eq!(a.pending("f"), 0);
}

#[test]
fn binpack_fills_one_agent_before_the_next_and_spread_balances() {
    let mut a = cluster(3, cpus(4.0, 16));
    a.set_framework(FrameworkSpec {
        placement: Placement::BinPack,
        ..FrameworkSpec::builtin("bp", "default")
    });
    submit_many(&mut a, "bp", 4, cpus(1.0, 1));
    assert_eq!(
        agents_placed_on(&mut a).len(),
        1,
        "bin-packed onto one agent"
    );
    let mut a = cluster(3, cpus(4.0, 16));
    a.set_framework(FrameworkSpec::builtin("sp", "default"));
    submit_many(&mut a, "sp", 3, cpus(1.0, 1));
    assert_eq!(agents_placed_on(&mut a).len(), 3, "spread over every agent");
}

#[test]
fn large_clusters_compare_a_bounded_number_of_agents_and_still_spread() {
    assert_eq!(cycle::feasible_to_find(50), 50, "small: every agent");
    assert_eq!(cycle::feasible_to_find(1_000), 420, "50% - 8 points");
    assert_eq!(cycle::feasible_to_find(5_000), 500, "50% - 40 points");
    assert_eq!(cycle::feasible_to_find(100_000), 5_000, "no less than 5%");
    // 2,000 agents, 4,000 one-cpu tasks: every agent gets exactly two, as a
    // full search would spread them, because each search starts where the last stopped.
    let mut a = cluster(2_000, cpus(4.0, 16));
    a.set_framework(FrameworkSpec::builtin("sp", "default"));
    submit_many(&mut a, "sp", 4_000, cpus(1.0, 1));
    let mut per_agent = std::collections::BTreeMap::<String, usize>::new();
    for d in a.allocate(0) {
        if let Decision::Place { allocation, .. } = d {
            *per_agent.entry(allocation.agent).or_default() += 1;
        }
    }
    assert_eq!(per_agent.len(), 2_000, "every agent used");
    assert!(per_agent.values().all(|&n| n == 2), "{per_agent:?}");
}

/// The agents one cycle placed tasks on.
fn agents_placed_on(a: &mut Allocator) -> std::collections::BTreeSet<String> {
    a.allocate(0)
        .into_iter()
        .map(|d| match d {
            Decision::Place { allocation, .. } => allocation.agent,
            other => panic!("expected only placements, got {other:?}"),
        })
        .collect()
}

/// A random cluster and workload for the invariant checks.
/// Agents (cpus, memory GiB); roles (weight, limit, guarantee); frameworks
/// (role, external); tasks (framework, millicores, GiB); reservations (role, agent, cpus, GiB).
type Scenario = (
    Vec<(u64, u64)>,
    Vec<(f64, Option<u64>, Option<u64>)>,
    Vec<(usize, bool)>,
    Vec<(usize, u64, u64)>,
    Vec<(usize, usize, u64, u64)>,
);

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec((1u64..16, 1u64..64), 1..8),
        prop::collection::vec(
            (
                0.1f64..5.0,
                prop::option::of(1u64..20),
                prop::option::of(1u64..10),
            ),
            1..5,
        ),
        prop::collection::vec((0usize..5, any::<bool>()), 1..6),
        prop::collection::vec((0usize..6, 1u64..4000, 1u64..8), 0..200),
        prop::collection::vec((0usize..5, 0usize..8, 1u64..3, 1u64..8), 0..4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn accounting_invariants_hold((agents, roles, fws, tasks, reservations) in scenario()) {
        let mut a = Allocator::new();
        for (i, (c, m)) in agents.iter().enumerate() {
            a.set_agent(AgentSpec { name: format!("a{i}"), total: cpus(*c as f64, *m), labels: Default::default(), ports: Default::default() });
        }
        for (i, (w, limit, guarantee)) in roles.iter().enumerate() {
            a.set_role(RoleSpec {
                weight: *w,
                parent: (i > 1).then(|| "r0".to_string()),
                limit: limit.map(|l| cpus(l as f64, 1024)),
                guarantee: guarantee.map(|g| cpus(g as f64, 4)),
                ..RoleSpec::new(&format!("r{i}"))
            });
        }
        for (r, ag, c, m) in &reservations {
            let _ = a.reserve(&format!("r{}", r % roles.len()), &format!("a{}", ag % agents.len()), cpus(*c as f64, *m));
        }
        for (i, (r, external)) in fws.iter().enumerate() {
            let role = format!("r{}", r % roles.len());
            let spec = if *external { FrameworkSpec::external(&format!("f{i}"), &role) } else { FrameworkSpec::builtin(&format!("f{i}"), &role) };
            a.set_framework(spec);
        }
        for (n, (f, milli, mem)) in tasks.iter().enumerate() {
            let f = f % fws.len();
            if !fws[f].1 {
                a.submit(&format!("f{f}"), TaskRequest::new(&format!("t{n}"), Resources::new(*milli, mem * GI))).unwrap();
            }
        }
        let mut held: Vec<Allocation> = Vec::new();
        for round in 0..3u64 {
            for d in a.allocate(round * 10_000) {
                match d {
                    Decision::Place { allocation, .. } | Decision::Offer { allocation } => held.push(allocation),
                    Decision::Unschedulable { .. } => {}
                }
            }
            check(&a, &held, &roles)?;
            // Return every other allocation, half of some offers.
            let mut keep = Vec::new();
            for (i, al) in held.into_iter().enumerate() {
                if i % 2 == 0 { a.release(&al, None); } else { keep.push(al); }
            }
            held = keep;
            check(&a, &held, &roles)?;
        }
    }
}

fn check(
    a: &Allocator,
    held: &[Allocation],
    roles: &[(f64, Option<u64>, Option<u64>)],
) -> Result<(), TestCaseError> {
    let usage = a.agent_usage();
    for (name, u) in &usage {
        let (total, unreserved_used, reserved) = (&u.total, &u.unreserved_used, &u.reservations);
        let reserved_total = reserved
            .values()
            .fold(Resources::ZERO, |t, (amt, _)| t + *amt);
        prop_assert!(
            (reserved_total + *unreserved_used).fits_in(total),
            "agent {name} over-committed"
        );
        for (role, (amt, used)) in reserved {
            prop_assert!(
                used.fits_in(amt),
                "reservation of {role} on {name} over-used"
            );
        }
        let used = reserved.values().fold(*unreserved_used, |t, (_, u)| t + *u);
        let held_here = held
            .iter()
            .filter(|h| &h.agent == name)
            .fold(Resources::ZERO, |t, h| t + h.total());
        prop_assert_eq!(
            used,
            held_here,
            "agent {} usage adds up to what is held",
            name
        );
    }
    for (name, limit, allocated) in a.role_limits() {
        if let Some(l) = limit {
            prop_assert!(allocated.fits_in(&l), "role {name} over its limit");
        }
    }
    let by_fw: Resources = held.iter().fold(Resources::ZERO, |t, h| t + h.total());
    let top: Resources = (0..roles.len().min(2)).fold(a.role_allocated("default"), |t, i| {
        t + a.role_allocated(&format!("r{i}"))
    });
    prop_assert_eq!(by_fw, top, "role allocations add up");
    Ok(())
}

/// One change to the cluster between incremental cycles.
#[derive(Clone, Debug)]
enum Change {
    /// A task of framework (index) needing (millicores, GiB), maybe only on rack r0.
    Submit(usize, u64, u64, bool),
    /// Return the held allocation at this index (modulo).
    Release(usize),
    /// Withdraw the waiting task at this index (modulo) of those submitted.
    Withdraw(usize),
    /// Set an agent's (index, may be new) total to (cpus, GiB).
    Agent(usize, u64, u64),
    /// Cordon or uncordon an agent.
    Schedulable(usize, bool),
    /// Set a role's cpu limit (None: no limit).
    Limit(usize, Option<u64>),
    /// Reserve (cpus, GiB) for a role on an agent, or drop that role's reservation there.
    Reserve(usize, usize, u64, bool),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (0usize..4, 1u64..6000, 1u64..20, any::<bool>()).prop_map(|(f, c, m, s)| Change::Submit(f, c, m, s)),
        3 => any::<usize>().prop_map(Change::Release),
        1 => any::<usize>().prop_map(Change::Withdraw),
        1 => (0usize..8, 1u64..12, 1u64..48).prop_map(|(a, c, m)| Change::Agent(a, c, m)),
        1 => (0usize..8, any::<bool>()).prop_map(|(a, s)| Change::Schedulable(a, s)),
        1 => (0usize..3, prop::option::of(1u64..20)).prop_map(|(r, l)| Change::Limit(r, l)),
        1 => (0usize..3, 0usize..8, 1u64..3, any::<bool>()).prop_map(|(r, a, c, on)| Change::Reserve(r, a, c, on)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Incremental cycles miss nothing: after each, a full pass (every task
    /// checked, every stuck framework tried) places nothing more and finds
    /// no task unschedulable that the cycles did not report.
    #[test]
    fn a_full_pass_after_incremental_cycles_decides_nothing_more(
        changes in prop::collection::vec(prop::collection::vec(change(), 1..12), 1..12),
    ) {
        let mut a = Allocator::new();
        for (i, (w, g)) in [(1.0, None), (3.0, Some(2u64)), (1.0, None)].iter().enumerate() {
            a.set_role(RoleSpec {
                weight: *w,
                guarantee: g.map(|g| cpus(g as f64, 4)),
                ..RoleSpec::new(&format!("r{i}"))
            });
        }
        for f in 0..4 {
            let mut spec = FrameworkSpec::builtin(&format!("f{f}"), &format!("r{}", f % 3));
            if f == 3 {
                spec.placement = Placement::BinPack;
            }
            a.set_framework(spec);
        }
        // An External framework takes offers of what the Builtin ones leave.
        a.set_framework(FrameworkSpec::external("x", "r2"));
        for i in 0..3 {
            a.set_agent(AgentSpec { name: format!("a{i}"), total: cpus(8.0, 32), labels: [("rack".to_string(), format!("r{}", i % 2))].into(), ports: Default::default() });
        }
        let mut held: Vec<Allocation> = Vec::new();
        let mut submitted: Vec<(String, String)> = Vec::new();
        let mut unfit: std::collections::BTreeSet<String> = Default::default();
        let mut n = 0;
        for batch in changes {
            for c in batch {
                match c {
                    Change::Submit(f, milli, gi, rack) => {
                        let mut t = TaskRequest::new(&format!("t{n}"), Resources::new(milli, gi * GI));
                        if rack {
                            t.selector = [("rack".to_string(), "r0".to_string())].into();
                        }
                        n += 1;
                        submitted.push((format!("f{f}"), t.id.clone()));
                        a.submit(&format!("f{f}"), t).unwrap();
                    }
                    Change::Release(i) if !held.is_empty() => {
                        let al = held.swap_remove(i % held.len());
                        a.release(&al, None);
                    }
                    Change::Withdraw(i) if !submitted.is_empty() => {
                        let (f, t) = submitted.swap_remove(i % submitted.len());
                        a.withdraw(&f, &t);
                        unfit.remove(&t);
                    }
                    Change::Agent(i, c, m) => {
                        let name = format!("a{i}");
                        // Shrinking below what is used is the agent reporting less; keep it consistent.
                        let used = a.agent_usage().get(&name).map(|u| u.unreserved_used + u.reservations.values().fold(Resources::ZERO, |t, (r, _)| t + *r));
                        let total = cpus(c as f64, m);
                        if used.is_none_or(|u| u.fits_in(&total)) {
                            a.set_agent(AgentSpec { name, total, labels: [("rack".to_string(), format!("r{}", i % 2))].into(), ports: Default::default() });
                        }
                    }
                    Change::Schedulable(i, s) => { let _ = a.set_schedulable(&format!("a{i}"), s); }
                    Change::Limit(r, l) => {
                        let (w, g) = [(1.0, None), (3.0, Some(2u64)), (1.0, None)][r];
                        a.set_role(RoleSpec { weight: w, guarantee: g.map(|g| cpus(g as f64, 4)), limit: l.map(|l| cpus(l as f64, 1024)), ..RoleSpec::new(&format!("r{r}")) });
                    }
                    Change::Reserve(r, ag, c, true) => { let _ = a.reserve(&format!("r{r}"), &format!("a{ag}"), cpus(c as f64, 2)); }
                    Change::Reserve(r, ag, _, false) => a.unreserve(&format!("r{r}"), &format!("a{ag}")),
                    _ => {}
                }
            }
            for d in a.allocate(0) {
                match d {
                    Decision::Place { task, allocation } => {
                        submitted.retain(|(_, t)| *t != task);
                        unfit.remove(&task);
                        held.push(allocation);
                    }
                    Decision::Unschedulable { task, .. } => { unfit.insert(task); }
                    Decision::Offer { allocation } => held.push(allocation),
                }
            }
            for d in a.allocate_full(0) {
                match d {
                    Decision::Unschedulable { task, .. } => prop_assert!(unfit.contains(&task), "{task} found unschedulable only by the full pass"),
                    other => prop_assert!(false, "the full pass decided {other:?}"),
                }
            }
        }
    }
}

fn grouped(id: &str, group: &str, r: Resources, cs: Vec<Constraint>) -> TaskRequest {
    TaskRequest {
        group: Some(group.into()),
        constraints: cs,
        ..TaskRequest::new(id, r)
    }
}

fn unschedulable(ds: &[Decision]) -> Vec<(String, String)> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Unschedulable { task, reason, .. } => Some((task.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn unique_hostname_places_one_per_agent_and_sets_the_third_aside_without_blocking_the_queue() {
    let mut a = cluster(2, cpus(8.0, 32));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    let unique = || vec![Constraint::new(HOSTNAME, Operator::Unique, None)];
    for i in 0..3 {
        a.submit(
            "fw",
            grouped(&format!("web-{i}"), "ns/web", cpus(1.0, 1), unique()),
        )
        .unwrap();
    }
    a.submit("fw", TaskRequest::new("plain", cpus(1.0, 1)))
        .unwrap();
    let ds = a.allocate(0);
    assert_eq!(placed_by(&ds, "fw"), 3, "two instances and the plain task");
    let un = unschedulable(&ds);
    assert_eq!(un.len(), 1, "{ds:?}");
    assert_eq!(un[0].0, "web-2");
    assert!(
        un[0].1.contains("hostname UNIQUE"),
        "the reason names the constraint: {}",
        un[0].1
    );
    let placement = a.group_placement("ns/web");
    assert_eq!(placement.values().copied().collect::<Vec<_>>(), vec![1, 1]);

    // One instance ends: the one set aside takes its agent.
    let first = ds
        .iter()
        .find_map(|d| match d {
            Decision::Place { task, allocation } if task == "web-0" => Some(allocation.clone()),
            _ => None,
        })
        .unwrap();
    a.release(&first, None);
    let ds = a.allocate(0);
    let placed: Vec<&str> = ds
        .iter()
        .filter_map(|d| match d {
            Decision::Place { task, allocation } => {
                assert_eq!(allocation.agent, first.agent);
                Some(task.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(placed, vec!["web-2"]);
    // And a full pass finds nothing more to do.
    assert!(a.allocate_full(0).is_empty());
}

#[test]
fn group_by_zone_spreads_evenly_over_the_zones() {
    let mut a = Allocator::new();
    for i in 0..6 {
        a.set_agent(AgentSpec {
            name: format!("agent-{i}"),
            total: cpus(16.0, 64),
            labels: [("zone".to_string(), format!("z{}", i % 3))].into(),
            ports: Default::default(),
        });
    }
    // An agent with no zone takes none of them.
    a.set_agent(AgentSpec {
        name: "no-zone".into(),
        total: cpus(64.0, 256),
        labels: Default::default(),
        ports: Default::default(),
    });
    a.set_framework(FrameworkSpec {
        placement: Placement::BinPack,
        ..FrameworkSpec::builtin("fw", "default")
    });
    for i in 0..9 {
        a.submit(
            "fw",
            grouped(
                &format!("web-{i}"),
                "ns/web",
                cpus(1.0, 1),
                vec![Constraint::new("zone", Operator::GroupBy, None)],
            ),
        )
        .unwrap();
    }
    let ds = a.allocate(0);
    assert_eq!(placed_by(&ds, "fw"), 9);
    let mut per_zone = BTreeMap::<String, u32>::new();
    for (agent, n) in a.group_placement("ns/web") {
        assert_ne!(agent, "no-zone");
        let i: usize = agent.trim_start_matches("agent-").parse().unwrap();
        *per_zone.entry(format!("z{}", i % 3)).or_default() += n;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        vec![3, 3, 3]
    );
}

#[test]
fn static_constraints_decide_which_agents_could_ever_hold_a_task() {
    let mut a = cluster(4, cpus(4.0, 16));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    let like = Constraint::new("rack", Operator::Like, Some("r1"));
    a.submit("fw", grouped("in-r1", "ns/x", cpus(1.0, 1), vec![like]))
        .unwrap();
    let nowhere = Constraint::new("rack", Operator::Is, Some("r9"));
    a.submit("fw", grouped("in-r9", "ns/y", cpus(1.0, 1), vec![nowhere]))
        .unwrap();
    let bad = Constraint::new("rack", Operator::Like, Some("("));
    a.submit("fw", grouped("bad", "ns/z", cpus(1.0, 1), vec![bad]))
        .unwrap();
    let ds = a.allocate(0);
    let placed: Vec<&Allocation> = ds
        .iter()
        .filter_map(|d| match d {
            Decision::Place { allocation, .. } => Some(allocation),
            _ => None,
        })
        .collect();
    assert_eq!(placed.len(), 1);
    assert!(["agent-1", "agent-3"].contains(&placed[0].agent.as_str()));
    let un = unschedulable(&ds);
    assert_eq!(un.len(), 2, "{un:?}");
    assert!(
        un.iter()
            .any(|(t, r)| t == "in-r9" && r.contains("rack IS r9"))
    );
    assert!(
        un.iter()
            .any(|(t, r)| t == "bad" && r.contains("not a regular expression"))
    );
}

#[test]
fn max_per_and_cluster_hold_as_allocations_come_and_go() {
    let mut a = cluster(4, cpus(8.0, 32));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    let cs = || {
        vec![
            Constraint::new("rack", Operator::Cluster, None),
            Constraint::new(HOSTNAME, Operator::MaxPer, Some("2")),
        ]
    };
    for i in 0..5 {
        a.submit("fw", grouped(&format!("t{i}"), "g", cpus(1.0, 1), cs()))
            .unwrap();
    }
    let ds = a.allocate(0);
    assert_eq!(placed_by(&ds, "fw"), 4, "two agents of one rack, two each");
    let racks: BTreeSet<String> = a
        .group_placement("g")
        .keys()
        .map(|agent| {
            let i: usize = agent.trim_start_matches("agent-").parse().unwrap();
            format!("r{}", i % 2)
        })
        .collect();
    assert_eq!(racks.len(), 1, "CLUSTER keeps them in one rack");
    assert!(a.group_placement("g").values().all(|n| *n == 2));
    assert_eq!(unschedulable(&ds).len(), 1);
}

#[test]
fn group_by_does_not_wait_for_a_value_whose_agents_have_no_room() {
    let mut a = cluster(2, cpus(8.0, 32));
    // An agent too small for any instance: its hostname is no value to fill.
    a.set_agent(AgentSpec {
        name: "tiny".into(),
        total: cpus(0.5, 1),
        labels: Default::default(),
        ports: Default::default(),
    });
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    for i in 0..4 {
        a.submit(
            "fw",
            grouped(
                &format!("t{i}"),
                "g",
                cpus(1.0, 1),
                vec![Constraint::new(HOSTNAME, Operator::GroupBy, None)],
            ),
        )
        .unwrap();
    }
    let ds = a.allocate(0);
    assert_eq!(placed_by(&ds, "fw"), 4, "{ds:?}");
    assert!(a.group_placement("g").values().all(|n| *n == 2));
}
