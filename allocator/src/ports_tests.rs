//! Allocator tests of host ports: no two tasks on an agent share a port, a
//! task whose ports are taken everywhere is set aside without holding up its
//! framework, and ports come back with their allocation.

use super::*;
use std::collections::BTreeSet;

fn agent(name: &str, ports: &str) -> AgentSpec {
    AgentSpec {
        ports: ports.parse().unwrap(),
        ..AgentSpec::new(name, Resources::new(64_000, 64 << 30))
    }
}

fn with_ports(id: &str, ports: &[u16]) -> TaskRequest {
    TaskRequest {
        ports: ports.to_vec(),
        ..TaskRequest::new(id, Resources::new(100, 1 << 20))
    }
}

fn placed(ds: &[Decision]) -> Vec<(String, Allocation)> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Place { task, allocation } => Some((task.clone(), allocation.clone())),
            _ => None,
        })
        .collect()
}

fn set_aside(ds: &[Decision]) -> Vec<(String, String, bool)> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Unschedulable {
                task,
                reason,
                waits,
                ..
            } => Some((task.clone(), reason.clone(), *waits)),
            _ => None,
        })
        .collect()
}

#[test]
fn tasks_get_distinct_ports_until_none_are_left_and_then_wait_for_a_release() {
    let mut a = Allocator::new();
    a.set_agent(agent("a", "[100-109]"));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    for i in 0..6 {
        a.submit("fw", with_ports(&format!("t{i}"), &[0, 0]))
            .unwrap();
    }
    a.submit(
        "fw",
        TaskRequest::new("no-ports", Resources::new(100, 1 << 20)),
    )
    .unwrap();
    let ds = a.allocate(0);
    let got = placed(&ds);
    assert_eq!(
        got.len(),
        6,
        "five with two ports each, and the one without"
    );
    let ports: Vec<u16> = got.iter().flat_map(|(_, al)| al.ports.clone()).collect();
    assert_eq!(ports.len(), 10);
    assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), 10, "{ports:?}");
    assert!(ports.iter().all(|p| (100..=109).contains(p)));
    let aside = set_aside(&ds);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(aside[0].0, "t5");
    assert!(aside[0].2, "it waits for ports to be let go");
    assert!(aside[0].1.contains("host ports"), "{}", aside[0].1);
    // One task ends: the one waiting gets its two ports.
    let (_, first) = got.iter().find(|(t, _)| t == "t0").unwrap();
    a.release(first, None);
    let again = placed(&a.allocate(1));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, "t5");
    let held: BTreeSet<u16> = got
        .iter()
        .filter(|(t, _)| t != "t0")
        .flat_map(|(_, al)| al.ports.clone())
        .collect();
    assert!(again[0].1.ports.iter().all(|p| !held.contains(p)));
    assert!(a.allocate_full(2).is_empty(), "nothing left to decide");
}

#[test]
fn a_fixed_port_goes_once_per_agent_and_a_third_asker_does_not_block_the_queue() {
    let mut a = Allocator::new();
    a.set_agent(agent("a", "[8000-8100]"));
    a.set_agent(agent("b", "[8000-8100]"));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    for i in 0..3 {
        a.submit("fw", with_ports(&format!("web{i}"), &[8080, 0]))
            .unwrap();
    }
    a.submit("fw", with_ports("other", &[0])).unwrap();
    let ds = a.allocate(0);
    let got = placed(&ds);
    let webs: Vec<&Allocation> = got
        .iter()
        .filter(|(t, _)| t.starts_with("web"))
        .map(|(_, al)| al)
        .collect();
    assert_eq!(webs.len(), 2);
    assert_ne!(webs[0].agent, webs[1].agent, "8080 once per agent");
    assert!(
        webs.iter()
            .all(|al| al.ports[0] == 8080 && al.ports[1] != 8080)
    );
    assert!(got.iter().any(|(t, _)| t == "other"), "the queue moved on");
    let aside = set_aside(&ds);
    assert_eq!(aside.len(), 1);
    assert!(aside[0].1.contains("8080"), "{}", aside[0].1);
}

#[test]
fn a_port_no_agent_offers_is_unschedulable_for_good() {
    let mut a = Allocator::new();
    a.set_agent(agent("a", "[31000-32000]"));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    a.submit("fw", with_ports("ssh", &[22])).unwrap();
    a.submit("fw", with_ports("twice", &[31000, 31000]))
        .unwrap();
    let aside = set_aside(&a.allocate(0));
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside.iter().all(|(_, _, waits)| !waits));
    assert!(
        aside[0]
            .1
            .contains("no agent offers the host ports it asks for (22)")
    );
    assert!(
        aside[1].1.contains("host port 31000 twice"),
        "{}",
        aside[1].1
    );
    // An agent that offers port 22 comes: the task goes there.
    a.set_agent(agent("b", "[22]"));
    let got = placed(&a.allocate(1));
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].0.as_str(), got[0].1.ports.as_slice()),
        ("ssh", &[22][..])
    );
}

#[test]
fn ports_assigned_from_the_store_are_held_and_given_back_once() {
    let mut a = Allocator::new();
    a.set_agent(agent("a", "[100-101]"));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    let r = Resources::new(100, 1 << 20);
    let bound = a.assign("fw", "a", r, None, &[100]).unwrap();
    assert_eq!(bound.ports, vec![100]);
    // The store can say two tasks were given one port (a write from
    // elsewhere): both hold it, and it is free only when both let it go.
    let twin = a.assign("fw", "a", r, None, &[100]).unwrap();
    assert_eq!(twin.ports, vec![100]);
    assert_eq!(a.port_conflicts(), 1);
    a.submit("fw", with_ports("wants-100", &[100])).unwrap();
    let ds = a.allocate(0);
    assert!(placed(&ds).is_empty());
    a.release(&bound, None);
    assert!(placed(&a.allocate(1)).is_empty(), "the twin still holds it");
    a.release(&twin, None);
    let got = placed(&a.allocate(2));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.ports, vec![100]);
}

#[test]
fn shrinking_an_agents_ports_keeps_what_tasks_hold() {
    let mut a = Allocator::new();
    a.set_agent(agent("a", "[100-103]"));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    a.submit("fw", with_ports("t", &[103])).unwrap();
    let got = placed(&a.allocate(0));
    assert_eq!(got[0].1.ports, vec![103]);
    a.set_agent(agent("a", "[100-101]"));
    a.submit("fw", with_ports("u", &[0, 0])).unwrap();
    let more = placed(&a.allocate(1));
    assert_eq!(more.len(), 1);
    assert_eq!(
        more[0].1.ports.iter().collect::<BTreeSet<_>>(),
        [100, 101].iter().collect()
    );
    a.release(&got[0].1, None);
    a.release(&more[0].1, None);
    a.submit("fw", with_ports("v", &[0, 0, 0])).unwrap();
    let aside = set_aside(&a.allocate(2));
    assert_eq!(aside.len(), 1, "two ports offered now, not three");
}

fn offered(ds: &[Decision]) -> Vec<Allocation> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Offer { allocation } => Some(allocation.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_offer_carries_and_holds_the_free_ports_of_its_agent() {
    let mut a = Allocator::new();
    a.set_agent(agent("a", "[100-105]"));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    a.set_framework(FrameworkSpec::external("x", "default"));
    a.submit(
        "fw",
        TaskRequest {
            ports: vec![102],
            ..TaskRequest::new("t", Resources::new(32_000, 1 << 30))
        },
    )
    .unwrap();
    let ds = a.allocate(0);
    assert_eq!(placed(&ds)[0].1.ports, vec![102]);
    let offers = offered(&ds);
    assert_eq!(offers.len(), 1, "{ds:?}");
    assert_eq!(offers[0].ports, vec![100, 101, 103, 104, 105]);
    // While the offer holds them, no task gets those ports.
    a.submit(
        "fw",
        TaskRequest {
            ports: vec![104],
            ..TaskRequest::new("u", Resources::new(1, 1))
        },
    )
    .unwrap();
    assert!(placed(&a.allocate(1)).is_empty());
    // Declined or rescinded, the offer gives them back.
    a.release(&offers[0], None);
    let got = placed(&a.allocate(2));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.ports, vec![104]);
}

#[test]
fn an_outstanding_offer_held_again_holds_the_ports_it_carries() {
    let mut a = Allocator::new();
    a.set_agent(agent("a", "[100-103]"));
    a.set_framework(FrameworkSpec::builtin("fw", "default"));
    a.set_framework(FrameworkSpec::external("x", "default"));
    let r = Resources::new(1_000, 1 << 20);
    let offer = a.assign("x", "a", r, None, &[100, 101, 102, 103]).unwrap();
    assert_eq!(a.port_conflicts(), 0);
    a.submit("fw", with_ports("t", &[0])).unwrap();
    let ds = a.allocate(0);
    assert!(placed(&ds).is_empty(), "{ds:?}");
    assert!(
        offered(&ds).iter().all(|o| o.ports.is_empty()),
        "an offer of an agent with no free port carries none: {ds:?}"
    );
    a.release(&offer, None);
    let got = placed(&a.allocate(1));
    assert_eq!(got.len(), 1);
}

#[test]
fn an_offer_carries_at_most_so_many_runs_of_ports() {
    let mut pool = super::ports::PortPool::new("[1000-1999]".parse().unwrap());
    // Every other port held: 500 runs of one port free.
    for p in (1000..2000).step_by(2) {
        pool.hold(p);
    }
    let got = pool.take_free(super::ports::OFFER_MAX_RUNS);
    assert_eq!(got.len(), super::ports::OFFER_MAX_RUNS);
    let text = PortRanges::new(got.iter().map(|p| (*p, *p))).to_string();
    assert!(text.len() <= 4096, "{} characters", text.len());
    assert_eq!(pool.free(), 500 - super::ports::OFFER_MAX_RUNS as u32);
}
