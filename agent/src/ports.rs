//! Host-port enforcement, as Mesos's `network/ports` isolator does it. Tasks
//! share the host's network, so a task listening on a port it was not given
//! could take one the scheduler gives another task next. Every interval the
//! agent reads the host's TCP socket tables (once for all its runs), finds
//! the sockets each task's processes hold, and kills a task listening on a
//! port outside its `status.ports`, or holding one of the range with a
//! connected socket bound to it: only within the agent's `ports` resource by
//! default (Mesos's `--check_agent_port_range_only`; those are the ports
//! other tasks are given), anywhere with `--port-isolation all`. The task
//! ends Failed with reason `PortNotAllocated` and a message naming the ports,
//! as Mesos's REASON_CONTAINER_LIMITATION.

use mosaic_crds::ports::PortRanges;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// One TCP socket of the host's tables.
#[derive(Clone, Copy, Debug)]
pub struct Socket {
    inode: u64,
    port: u16,
    listening: bool,
}

/// The host's TCP sockets (tasks share the agent's network), read at most
/// once per half interval however many runs look at them.
#[derive(Default)]
pub struct Sockets(Mutex<Option<(Instant, Arc<Vec<Socket>>)>>);

impl Sockets {
    /// The tables as read no longer than `fresh` ago (a caller waits for
    /// another's read under way rather than reading them again).
    pub fn read(&self, fresh: Duration) -> Arc<Vec<Socket>> {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, tables)) = last.as_ref()
            && at.elapsed() < fresh
        {
            return tables.clone();
        }
        let tables = Arc::new(tables_now());
        *last = Some((Instant::now(), tables.clone()));
        tables
    }
}

/// The host's TCP sockets now.
pub fn tables_now() -> Vec<Socket> {
    [procfs::net::tcp(), procfs::net::tcp6()]
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.inode != 0)
        .map(|e| Socket {
            inode: e.inode,
            port: e.local_address.port(),
            listening: e.state == procfs::net::TcpState::Listen,
        })
        .collect()
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
    /// The host's sockets, shared by the agent's runs.
    pub sockets: Arc<Sockets>,
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
    let w = Arc::new(w);
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
    if pids.is_empty() {
        return None;
    }
    let tables = w.sockets.read(w.every / 2);
    let listener = |p: u16| forbids(w.policy, &w.range, &w.given, p);
    // Other sockets only within the range: elsewhere they are clients'
    // ephemeral ports.
    let held = |p: u16| forbids(PortIsolation::Range, &w.range, &w.given, p);
    match listening(&tables, &pids, listener, held, MAX_FDS) {
        Held::Ports(bad) if bad.is_empty() => None,
        Held::Ports(bad) => Some(describe(&bad, &w.given)),
        Held::TooManyFds => Some(format!(
            "the task held more than {MAX_FDS} open files, too many for its listening ports to be checked"
        )),
    }
}

/// What a look at a run's sockets found.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// The ports it holds that it may not.
    Ports(BTreeSet<u16>),
    /// More descriptors than may be looked at.
    TooManyFds,
}

/// The TCP ports the processes `pids` hold that they may not: those they
/// listen on where `listener` says no, and those their other sockets are
/// bound to where `held` says no (a connected socket bound to a port keeps
/// it from its owner as a listener does), among the host's sockets `tables`,
/// found through the processes' descriptors, at most `max_fds` of them in
/// all; a process whose main thread has ended is read through its other
/// threads. A process that has gone meanwhile is passed over.
pub fn listening(
    tables: &[Socket],
    pids: &[i32],
    listener: impl Fn(u16) -> bool,
    held: impl Fn(u16) -> bool,
    max_fds: usize,
) -> Held {
    let by_inode: HashMap<u64, u16> = tables
        .iter()
        .filter(|s| {
            if s.listening {
                listener(s.port)
            } else {
                held(s.port)
            }
        })
        .map(|s| (s.inode, s.port))
        .collect();
    if by_inode.is_empty() {
        return Held::Ports(BTreeSet::new());
    }
    let (mut ports, mut seen) = (BTreeSet::new(), 0usize);
    for pid in pids {
        for inode in socket_inodes(*pid) {
            seen += 1;
            if seen > max_fds {
                return Held::TooManyFds;
            }
            if let Some(port) = by_inode.get(&inode) {
                ports.insert(*port);
            }
        }
    }
    Held::Ports(ports)
}

/// The socket inodes among process `pid`'s descriptors (empty when it has
/// gone); through its threads when the main one has ended and taken its
/// descriptor table's view with it.
fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(p) = procfs::process::Process::new(pid) else {
        return Vec::new();
    };
    let mut fds = p.fd().map(|it| it.flatten().peekable()).ok();
    if let Some(it) = fds.as_mut()
        && it.peek().is_some()
    {
        return it
            .filter_map(|fd| match fd.target {
                procfs::process::FDTarget::Socket(inode) => Some(inode),
                _ => None,
            })
            .collect();
    }
    let mut inodes = Vec::new();
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return inodes;
    };
    for t in threads.flatten() {
        let Ok(entries) = std::fs::read_dir(t.path().join("fd")) else {
            continue;
        };
        for e in entries.flatten() {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            let inode: Option<u64> = target
                .to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse().ok());
            inodes.extend(inode);
        }
    }
    inodes.sort_unstable();
    inodes.dedup();
    inodes
}

/// The most processes of a run with no cgroup looked at.
const MAX_PROCESSES: usize = 65_536;

/// `pid` and every process descended from it (for a run with no cgroup to
/// list them), read from `/proc/PID/task/*/children`.
pub fn with_descendants(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < MAX_PROCESSES {
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

/// Whether `policy` forbids a task given `given` of the agent's `range` to
/// hold `port`.
pub fn forbids(
    policy: PortIsolation,
    range: &PortRanges,
    given: &BTreeSet<u16>,
    port: u16,
) -> bool {
    !given.contains(&port)
        && match policy {
            PortIsolation::Off => false,
            PortIsolation::Range => range.contains(port),
            PortIsolation::All => true,
        }
}

fn describe(bad: &BTreeSet<u16>, given: &BTreeSet<u16>) -> String {
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
        let given = set(&[31005]);
        let forbidden = |policy| {
            [8080, 31000, 31005]
                .into_iter()
                .filter(|p| forbids(policy, &range, &given, *p))
                .collect::<Vec<_>>()
        };
        assert_eq!(forbidden(PortIsolation::Range), vec![31000]);
        assert_eq!(forbidden(PortIsolation::All), vec![8080, 31000]);
        assert!(forbidden(PortIsolation::Off).is_empty());
    }

    #[test]
    fn a_listening_socket_of_this_process_is_found_and_a_closed_one_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
        let port = l.local_addr().expect("address").port();
        let me = std::process::id() as i32;
        let none = |_: u16| false;
        let found = |pids: &[i32], max| listening(&tables_now(), pids, |p| p == port, none, max);
        assert_eq!(found(&[me], MAX_FDS), Held::Ports(BTreeSet::from([port])));
        // Not flagged: not reported.
        assert_eq!(
            listening(&tables_now(), &[me], none, none, MAX_FDS),
            Held::Ports(BTreeSet::new())
        );
        assert_eq!(found(&[me], 0), Held::TooManyFds);
        drop(l);
        assert_eq!(found(&[me], MAX_FDS), Held::Ports(BTreeSet::new()));
        assert_eq!(found(&[], MAX_FDS), Held::Ports(BTreeSet::new()));
    }

    #[test]
    fn a_connected_socket_bound_to_a_held_port_is_found_and_udp_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap();
        // A client bound to a port of its own choosing before it connects.
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        drop(sock);
        let client = connect_from(port, target);
        let me = std::process::id() as i32;
        let none = |_: u16| false;
        assert_eq!(
            listening(&tables_now(), &[me], none, |p| p == port, MAX_FDS),
            Held::Ports(BTreeSet::from([port]))
        );
        // Not held: a client's port is its own business.
        assert_eq!(
            listening(&tables_now(), &[me], none, none, MAX_FDS),
            Held::Ports(BTreeSet::new())
        );
        drop(client);
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let uport = udp.local_addr().unwrap().port();
        let only = |p: u16| p == uport;
        assert_eq!(
            listening(&tables_now(), &[me], only, only, MAX_FDS),
            Held::Ports(BTreeSet::new())
        );
    }

    /// A TCP connection from local port `port` to `target`.
    fn connect_from(port: u16, target: std::net::SocketAddr) -> rustix::fd::OwnedFd {
        use rustix::net::{AddressFamily, SocketType, sockopt};
        let s = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        sockopt::set_socket_reuseaddr(&s, true).unwrap();
        rustix::net::bind(&s, &std::net::SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        rustix::net::connect(&s, &target).unwrap();
        s
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
        let found = listening(&tables_now(), &pids, |p| p == port, |_| false, MAX_FDS);
        let _ = child.kill();
        let _ = child.wait();
        assert!(pids.contains(&(child.id() as i32)), "{pids:?}");
        assert_eq!(found, Held::Ports(BTreeSet::from([port])));
    }

    #[test]
    fn the_tables_are_read_once_for_all_runs_while_fresh() {
        let s = Sockets::default();
        let a = s.read(Duration::from_secs(3600));
        assert!(Arc::ptr_eq(&a, &s.read(Duration::from_secs(3600))));
        assert!(!Arc::ptr_eq(&a, &s.read(Duration::ZERO)));
    }

    #[test]
    fn the_message_names_the_ports() {
        let m = describe(&set(&[31000, 31001]), &set(&[31005]));
        assert_eq!(
            m,
            "the task listened on port(s) 31000, 31001 it was not given (its ports: 31005)"
        );
        assert!(describe(&set(&[1]), &set(&[])).ends_with("(its ports: none)"));
    }
}
