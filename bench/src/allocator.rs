//! The allocator alone, on Mesos's benchmark shapes (see shared anchors):
//!
//! - DeclineOffers: 10,000 agents (cpus 24, mem 4096 MB, 16 cpus already
//!   allocated) and 1,000 External frameworks in one role; every offer is
//!   declined with a filter that never expires. Prints the time of each full
//!   allocation cycle (Mesos 1.8: about 1.1 s for 10,000 x 1,000).
//! - LargeAndSmallQuota: 3,000 agents (cpus 2, mem 2048 MB); 2,500 roles with
//!   quota cpus 1 / mem 1024 MB and 500 roles with cpus 4 / mem 4096 MB, one
//!   framework each. Prints allocations per second (Mesos: about 220/s).
//! - Incremental: the DeclineOffers cluster full of 1,000 Builtin frameworks'
//!   tasks, with 100 more tasks waiting in each; then, cycle after cycle, one
//!   task ends (its allocation released) and a cycle runs. Prints the cycle
//!   time beside a full pass over the same state (what a cycle cost when the
//!   allocator looked at everything each time).
//!
//! `cargo run --release -p mosaic-bench --bin allocator-bench`

use clap::Parser;
use mosaic_controllers::allocator::{
    AgentSpec, Allocator, Decision, FrameworkSpec, Placement, Resources, RoleSpec, TaskRequest,
};
use std::time::{Duration, Instant};

const MB: u64 = 1 << 20;

#[derive(Parser)]
struct Args {
    /// DeclineOffers agents.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// DeclineOffers frameworks.
    #[arg(long, default_value_t = 1_000)]
    frameworks: usize,
    /// DeclineOffers cycles measured.
    #[arg(long, default_value_t = 5)]
    cycles: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The DeclineOffers agents: cpus 24, mem 4096 MB each.
fn decline_offers_agents(n: usize) -> Allocator {
    let mut a = Allocator::new();
    for i in 0..n {
        a.set_agent(AgentSpec {
            name: format!("agent-{i}"),
            total: Resources::new(24_000, 4096 * MB),
            labels: Default::default(),
            ports: Default::default(),
        });
    }
    a
}

fn decline_offers(agents: usize, frameworks: usize, cycles: usize) {
    let mut a = decline_offers_agents(agents);
    // 16 cpus of every agent are already allocated.
    a.set_framework(FrameworkSpec {
        placement: Placement::BinPack,
        ..FrameworkSpec::builtin("existing", "default")
    });
    for i in 0..agents {
        a.submit(
            "existing",
            TaskRequest::new(&format!("t{i}"), Resources::new(16_000, MB)),
        )
        .unwrap();
    }
    let placed = a.allocate(0).len();
    assert_eq!(placed, agents, "every agent holds its 16 cpus");
    for f in 0..frameworks {
        a.set_framework(FrameworkSpec::external(&format!("fw-{f}"), "default"));
    }
    let mut times = Vec::new();
    let mut offers_total = 0;
    for c in 0..cycles {
        let t = Instant::now();
        let ds = a.allocate(1 + c as u64);
        let took = t.elapsed();
        offers_total += ds.len();
        for d in ds {
            if let Decision::Offer { allocation } = d {
                a.release(&allocation, None);
                a.decline(&allocation.framework, &allocation.agent, 0, u64::MAX);
            }
        }
        println!(
            "  DeclineOffers cycle {c}: {:>8.1} ms ({} offers)",
            took.as_secs_f64() * 1e3,
            agents
        );
        times.push(took);
    }
    println!(
        "DeclineOffers {agents} agents x {frameworks} frameworks: median cycle {:.1} ms ({offers_total} offers in {cycles} cycles); Mesos 1.8: ~1100 ms",
        median(times).as_secs_f64() * 1e3
    );
}

fn large_and_small_quota() {
    let mut a = Allocator::new();
    for i in 0..3000 {
        a.set_agent(AgentSpec {
            name: format!("agent-{i}"),
            total: Resources::new(2_000, 2048 * MB),
            labels: Default::default(),
            ports: Default::default(),
        });
    }
    for i in 0..3000 {
        let q = if i < 2500 {
            Resources::new(1_000, 1024 * MB)
        } else {
            Resources::new(4_000, 4096 * MB)
        };
        let role = format!("role-{i}");
        a.set_role(RoleSpec {
            guarantee: Some(q),
            limit: Some(q),
            ..RoleSpec::new(&role)
        });
        a.set_framework(FrameworkSpec::external(&format!("fw-{i}"), &role));
    }
    let t = Instant::now();
    let ds = a.allocate(0);
    let took = t.elapsed();
    let n = ds.len();
    println!(
        "LargeAndSmallQuota 3000 agents, 3000 roles: {n} allocations in {:.1} ms = {:.0} allocations/s; Mesos: ~220/s",
        took.as_secs_f64() * 1e3,
        n as f64 / took.as_secs_f64()
    );
}

fn incremental(agents: usize, frameworks: usize, cycles: usize) {
    let mut a = decline_offers_agents(agents);
    for f in 0..frameworks {
        a.set_framework(FrameworkSpec::builtin(&format!("fw-{f}"), "default"));
    }
    // Enough to fill every agent (4 cpus a task, 6 a agent), and 100 more per framework.
    let per = (agents * 6).div_ceil(frameworks) + 100;
    for f in 0..frameworks {
        for t in 0..per {
            a.submit(
                &format!("fw-{f}"),
                TaskRequest::new(&format!("fw-{f}-t{t}"), Resources::new(4_000, 256 * MB)),
            )
            .unwrap();
        }
    }
    let mut held: Vec<_> = a
        .allocate(0)
        .into_iter()
        .filter_map(|d| match d {
            Decision::Place { allocation, .. } => Some(allocation),
            _ => None,
        })
        .collect();
    let (mut inc, mut full) = (Vec::new(), Vec::new());
    for c in 0..cycles {
        let done = held.swap_remove(c * 7919 % held.len());
        a.release(&done, None);
        let t = Instant::now();
        let ds = a.allocate(0);
        inc.push(t.elapsed());
        assert_eq!(ds.len(), 1, "the freed room goes to one waiting task");
        if let Some(Decision::Place { allocation, .. }) = ds.into_iter().next() {
            held.push(allocation);
        }
        let t = Instant::now();
        let more = a.allocate_full(0);
        full.push(t.elapsed());
        assert!(more.is_empty(), "the full pass finds nothing more");
    }
    println!(
        "Incremental {agents} agents x {frameworks} frameworks, {} waiting: one task ends, median cycle {:.3} ms; a full pass over the same state {:.1} ms",
        frameworks * 100,
        median(inc).as_secs_f64() * 1e3,
        median(full).as_secs_f64() * 1e3
    );
}

fn main() {
    let args = Args::parse();
    decline_offers(args.agents, args.frameworks, args.cycles);
    large_and_small_quota();
    incremental(args.agents, args.frameworks, args.cycles);
}
