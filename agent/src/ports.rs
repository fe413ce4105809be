//! Host-port enforcement, as Mesos's `network/ports` isolator does it. Tasks
//! share the host's network, so a task listening on a port it was not given
//! could take one the scheduler gives another task next. Every interval the
//! agent reads the TCP sockets in LISTEN state (as the task's own network
//! namespace shows them), finds the ones the task's processes hold, and kills
//! a task listening on a port outside its `status.ports`: only within the
//! agent's `ports` resource by default (Mesos's `--check_agent_port_range_only`;
//! those are the ports other tasks are given), anywhere with
//! `--port-isolation all`. The task ends Failed with reason `PortNotAllocated`
//! and a message naming the ports, as Mesos's REASON_CONTAINER_LIMITATION.

use mosaic_crds::ports::PortRanges;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// Which listening ports an agent holds its tasks to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PortIsolation {
    /// None: tasks may listen anywhere.
    Off,
    /// A task may listen, within the agent's `ports` resource, only on the
    /// ports it was given.
    #[default]
    Range,
    /// A task may listen on no port but those it was given.
    All,
}

/// A `--port-isolation` value that is none of `off`, `range`, `all`.
#[derive(Debug, thiserror::Error)]
#[error("unknown port isolation {0:?} (one of off, range, all)")]
pub struct UnknownIsolation(String);

impl std::str::FromStr for PortIsolation {
    type Err = UnknownIsolation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "range" => Ok(Self::Range),
            "all" => Ok(Self::All),
            other => Err(UnknownIsolation(other.to_string())),
        }
    }
}

/// What the watch of one run needs.
pub struct Watch {
    /// The agent's policy.
    pub policy: PortIsolation,
    /// How often to look.
    pub every: Duration,
    /// The agent's `ports` resource.
    pub range: PortRanges,
    /// The ports the task was given.
    pub given: BTreeSet<u16>,
    /// The run's processes (host pids) now.
    pub pids: Box<dyn Fn() -> Vec<i32> + Send + Sync>,
    /// Called once with a sentence naming the ports, when the task listens
    /// where it may not.
    pub violated: Box<dyn Fn(String) + Send + Sync>,
}

/// Looks at the run's listening ports every interval until it breaks the
/// policy (then reports it and returns) or the watch is dropped.
pub async fn watch(w: Watch) {
    if w.policy == PortIsolation::Off {
        return;
    }
    loop {
        tokio::time::sleep(w.every).await;
        let listening = listening((w.pids)());
        let bad = unallocated(&listening, &w.given, &w.range, w.policy);
        if !bad.is_empty() {
            (w.violated)(describe(&bad, &w.given));
            return;
        }
    }
}

/// The TCP ports the processes `pids` listen on, read from their network
/// namespace's socket tables and their open descriptors. A process that has
/// gone meanwhile is passed over.
pub fn listening(pids: Vec<i32>) -> BTreeSet<u16> {
    let Some(first) = pids
        .first()
        .and_then(|p| procfs::process::Process::new(*p).ok())
    else {
        return BTreeSet::new();
    };
    let mut by_inode: HashMap<u64, u16> = HashMap::new();
    let tables = [first.tcp(), first.tcp6()];
    for entry in tables.into_iter().flatten().flatten() {
        if entry.state == procfs::net::TcpState::Listen {
            by_inode.insert(entry.inode, entry.local_address.port());
        }
    }
    if by_inode.is_empty() {
        return BTreeSet::new();
    }
    let mut ports = BTreeSet::new();
    for pid in pids {
        let Ok(fds) = procfs::process::Process::new(pid).and_then(|p| p.fd()) else {
            continue;
        };
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Socket(inode) = fd.target
                && let Some(port) = by_inode.get(&inode)
            {
                ports.insert(*port);
            }
        }
    }
    ports
}

/// The listening ports the policy forbids, given the task's ports and the
/// agent's range.
pub fn unallocated(
    listening: &BTreeSet<u16>,
    given: &BTreeSet<u16>,
    range: &PortRanges,
    policy: PortIsolation,
) -> Vec<u16> {
    listening
        .iter()
        .copied()
        .filter(|p| !given.contains(p))
        .filter(|p| match policy {
            PortIsolation::Off => false,
            PortIsolation::Range => range.contains(*p),
            PortIsolation::All => true,
        })
        .collect()
}

fn describe(bad: &[u16], given: &BTreeSet<u16>) -> String {
    let list = |ports: &mut dyn Iterator<Item = u16>| {
        ports.map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
    };
    let had = if given.is_empty() {
        "none".to_string()
    } else {
        list(&mut given.iter().copied())
    };
    format!(
        "the task listened on port(s) {} it was not given (its ports: {had})",
        list(&mut bad.iter().copied())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[u16]) -> BTreeSet<u16> {
        p.iter().copied().collect()
    }

    #[test]
    fn only_ports_in_the_agents_range_count_unless_all_do() {
        let range = PortRanges::new([(31000, 32000)]);
        let listening = set(&[8080, 31000, 31005]);
        let given = set(&[31005]);
        assert_eq!(
            unallocated(&listening, &given, &range, PortIsolation::Range),
            vec![31000]
        );
        assert_eq!(
            unallocated(&listening, &given, &range, PortIsolation::All),
            vec![8080, 31000]
        );
        assert!(unallocated(&listening, &given, &range, PortIsolation::Off).is_empty());
        assert!(unallocated(&set(&[31005]), &given, &range, PortIsolation::All).is_empty());
    }

    #[test]
    fn a_listening_socket_of_this_process_is_found_and_a_closed_one_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
        let port = l.local_addr().expect("address").port();
        let me = std::process::id() as i32;
        assert!(listening(vec![me]).contains(&port), "port {port} not seen");
        drop(l);
        assert!(!listening(vec![me]).contains(&port));
        assert!(listening(vec![]).is_empty());
    }

    #[test]
    fn the_message_names_the_ports() {
        let m = describe(&[31000, 31001], &set(&[31005]));
        assert_eq!(
            m,
            "the task listened on port(s) 31000, 31001 it was not given (its ports: 31005)"
        );
        assert!(describe(&[1], &set(&[])).ends_with("(its ports: none)"));
    }
}
