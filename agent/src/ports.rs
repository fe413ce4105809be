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
use std::collections::{BTreeSet, HashMap, HashSet};
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
    /// The ports held: the agent's `ports` resource (under `mosaic up`, all
    /// of its agents' together, as they share the host).
    pub range: PortRanges,
    /// The ports the task was given.
    pub given: BTreeSet<u16>,
    /// The run's processes (host pids) now.
    pub pids: Box<dyn Fn() -> Vec<i32> + Send + Sync>,
    /// Called once with a sentence naming the ports, when the task listens
    /// where it may not.
    pub violated: Box<dyn Fn(String) + Send + Sync>,
}

/// The most descriptors of one run looked at in one check: past it the run
/// is reported (a task does not hide a listener behind a million files).
pub const MAX_FDS: usize = 65_536;

/// Looks at the run's listening ports every interval until it breaks the
/// policy (then reports it and returns) or the watch is dropped. Each look
/// reads `/proc`, off the async runtime's threads.
pub async fn watch(w: Watch) {
    if w.policy == PortIsolation::Off {
        return;
    }
    let w = std::sync::Arc::new(w);
    loop {
        tokio::time::sleep(w.every).await;
        let look = w.clone();
        let found = tokio::task::spawn_blocking(move || check(&look)).await;
        if let Ok(Some(msg)) = found {
            (w.violated)(msg);
            return;
        }
    }
}

/// One look: what the run does wrong, if anything.
fn check(w: &Watch) -> Option<String> {
    let pids = (w.pids)();
    let flagged =
        |p: u16| !unallocated(&BTreeSet::from([p]), &w.given, &w.range, w.policy).is_empty();
    match listening(&pids, flagged, MAX_FDS) {
        Held::Ports(ports) => {
            let bad = unallocated(&ports, &w.given, &w.range, w.policy);
            (!bad.is_empty()).then(|| describe(&bad, &w.given))
        }
        Held::TooManyFds => Some(format!(
            "the task held more than {MAX_FDS} open files, too many for its listening ports to be checked"
        )),
    }
}

/// What a look at a run's sockets found.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// The flagged ports it listens on.
    Ports(BTreeSet<u16>),
    /// More descriptors than may be looked at.
    TooManyFds,
}

/// The most sockets of one run that the socket tables do not show (TCP
/// sockets bound and not listening, raw and netlink ones) looked at in one
/// check.
const MAX_UNLISTED: usize = 1024;

/// The TCP ports among those `flagged` that the processes `pids` hold: those
/// they listen on, read from their network namespace's socket tables, and
/// those they have bound without listening (which keep the port from its
/// owner as surely, and which no table shows: each such socket is copied
/// from the process with `pidfd_getfd` and asked its address). At most
/// `max_fds` descriptors are read in all. A process that has gone meanwhile
/// is passed over.
pub fn listening(pids: &[i32], flagged: impl Fn(u16) -> bool, max_fds: usize) -> Held {
    let Some(first) = pids
        .first()
        .and_then(|p| procfs::process::Process::new(*p).ok())
    else {
        return Held::Ports(BTreeSet::new());
    };
    // Listeners on flagged ports; every socket the tables know (connected
    // TCP, UDP, Unix), which needs no closer look.
    let mut by_inode: HashMap<u64, u16> = HashMap::new();
    let mut known: HashSet<u64> = HashSet::new();
    for entry in [first.tcp(), first.tcp6()].into_iter().flatten().flatten() {
        let port = entry.local_address.port();
        if entry.state == procfs::net::TcpState::Listen && flagged(port) {
            by_inode.insert(entry.inode, port);
        }
        known.insert(entry.inode);
    }
    for entry in [first.udp(), first.udp6()].into_iter().flatten().flatten() {
        known.insert(entry.inode);
    }
    known.extend(first.unix().into_iter().flatten().map(|e| e.inode));
    let (mut ports, mut seen, mut unlisted) = (BTreeSet::new(), 0usize, 0usize);
    for pid in pids {
        let Ok(fds) = procfs::process::Process::new(*pid).and_then(|p| p.fd()) else {
            continue;
        };
        let mut pidfd = None;
        for fd in fds.flatten() {
            seen += 1;
            if seen > max_fds {
                return Held::TooManyFds;
            }
            let procfs::process::FDTarget::Socket(inode) = fd.target else {
                continue;
            };
            if let Some(port) = by_inode.get(&inode) {
                ports.insert(*port);
            } else if !known.contains(&inode) && unlisted < MAX_UNLISTED {
                unlisted += 1;
                if let Some(port) = bound_port(*pid, &mut pidfd, fd.fd).filter(|p| flagged(*p)) {
                    ports.insert(port);
                }
            }
        }
    }
    Held::Ports(ports)
}

/// The local port of process `pid`'s descriptor `fd` when it is a bound TCP
/// socket (`pidfd` opened on first use and kept for the process's others).
fn bound_port(pid: i32, pidfd: &mut Option<rustix::fd::OwnedFd>, fd: i32) -> Option<u16> {
    use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
    if pidfd.is_none() {
        *pidfd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok();
    }
    let copy = pidfd_getfd(pidfd.as_ref()?, fd, PidfdGetfdFlags::empty()).ok()?;
    if rustix::net::sockopt::socket_type(&copy).ok()? != rustix::net::SocketType::STREAM {
        return None;
    }
    let addr = std::net::SocketAddr::try_from(rustix::net::getsockname(&copy).ok()?).ok()?;
    (addr.port() != 0).then_some(addr.port())
}

/// `pid` and every process descended from it (for a run with no cgroup to
/// list them), read from `/proc/PID/task/*/children`.
pub fn with_descendants(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < MAX_FDS {
        if let Ok(tasks) = procfs::process::Process::new(out[i]).and_then(|p| p.tasks()) {
            for t in tasks.flatten() {
                let children = t.children().unwrap_or_default();
                out.extend(children.into_iter().filter_map(|c| i32::try_from(c).ok()));
            }
        }
        i += 1;
    }
    out
}

/// The kernel's ephemeral port range, when it overlaps `held` (an honest
/// listener on port 0 could then land on a held port).
pub fn ephemeral_overlap(held: &PortRanges) -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    let (lo, hi) = (it.next()?, it.next()?);
    held.ranges()
        .iter()
        .any(|(a, b)| *a <= hi && lo <= *b)
        .then_some((lo, hi))
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
        let found = |pids: &[i32], max| listening(pids, |p| p == port, max);
        assert_eq!(found(&[me], MAX_FDS), Held::Ports(BTreeSet::from([port])));
        // Not flagged: not reported.
        assert_eq!(
            listening(&[me], |_| false, MAX_FDS),
            Held::Ports(BTreeSet::new())
        );
        assert_eq!(found(&[me], 0), Held::TooManyFds);
        drop(l);
        assert_eq!(found(&[me], MAX_FDS), Held::Ports(BTreeSet::new()));
        assert_eq!(found(&[], MAX_FDS), Held::Ports(BTreeSet::new()));
    }

    #[test]
    fn a_socket_bound_and_not_listening_is_found_and_udp_is_not() {
        use rustix::net::{AddressFamily, SocketType};
        let sock = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        rustix::net::bind(&sock, &any).expect("binding");
        let addr = rustix::net::getsockname(&sock).unwrap();
        let port = std::net::SocketAddr::try_from(addr).unwrap().port();
        let me = std::process::id() as i32;
        // pidfd_getfd on oneself needs no privilege.
        assert_eq!(
            listening(&[me], |p| p == port, MAX_FDS),
            Held::Ports(BTreeSet::from([port])),
            "a bound socket on {port} not found"
        );
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let uport = udp.local_addr().unwrap().port();
        assert_eq!(
            listening(&[me], |p| p == uport, MAX_FDS),
            Held::Ports(BTreeSet::new())
        );
    }

    #[test]
    fn a_childs_listener_is_found_through_its_parent() {
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("reading the port");
        let port: u16 = line.trim().parse().expect("a port");
        let me = std::process::id() as i32;
        let pids = with_descendants(me);
        let found = listening(&pids, |p| p == port, MAX_FDS);
        let _ = child.kill();
        let _ = child.wait();
        assert!(pids.contains(&(child.id() as i32)), "{pids:?}");
        assert_eq!(found, Held::Ports(BTreeSet::from([port])));
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
