//! Per-task cgroups under cgroup v1 (including hybrid hosts, whose controllers
//! live on v1) and cgroup v2: CPU weight and a hard CFS quota, a memory limit
//! with no swap beyond it, a pids limit; OOM-kill detection; usage; killing
//! every process of a task; removal.
//!
//! The hierarchy root is injectable so tests can point it at a fake tree.

use std::io;
use std::path::{Path, PathBuf};

/// Which cgroup interface the agent drives.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Controllers on v1 hierarchies (`<root>/memory`, `<root>/cpu`, ...).
    V1(PathBuf),
    /// The unified v2 hierarchy at `<root>`.
    V2(PathBuf),
    /// No usable cgroups: tasks run without enforcement.
    None,
}

/// The group every task cgroup is made under.
const PARENT: &str = "mosaic";
const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

impl Mode {
    /// Detects the interface under `root` (normally `/sys/fs/cgroup`) and checks
    /// that Mosaic's parent group can be made there.
    pub fn detect(root: &Path) -> Mode {
        let mode = if root.join("memory/memory.limit_in_bytes").exists() {
            Mode::V1(root.to_path_buf())
        } else if root.join("cgroup.controllers").exists() {
            Mode::V2(root.to_path_buf())
        } else {
            return Mode::None;
        };
        match mode.prepare() {
            Ok(()) => mode,
            Err(e) => {
                tracing::warn!(root = %root.display(), error = %e, "cgroups found but not usable");
                Mode::None
            }
        }
    }

    /// `v1`, `v2` or `none`, as Agent `status.cgroup` says.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::V1(_) => "v1",
            Mode::V2(_) => "v2",
            Mode::None => "none",
        }
    }

    fn prepare(&self) -> io::Result<()> {
        match self {
            Mode::V1(root) => {
                for c in V1_CONTROLLERS {
                    if root.join(c).is_dir() {
                        std::fs::create_dir_all(root.join(c).join(PARENT))?;
                    }
                }
                Ok(())
            }
            Mode::V2(root) => {
                std::fs::create_dir_all(root.join(PARENT))?;
                for dir in [root.clone(), root.join(PARENT)] {
                    // Enabling may fail for a controller the host lacks; limits then fail loudly at create.
                    let _ =
                        std::fs::write(dir.join("cgroup.subtree_control"), "+cpu +memory +pids");
                }
                Ok(())
            }
            Mode::None => Ok(()),
        }
    }

    /// The cgroup of one task made earlier (by an executor), to watch or kill it.
    pub fn open(&self, name: &str) -> TaskCgroup {
        match self {
            Mode::V1(root) => TaskCgroup {
                v2: false,
                dirs: V1_CONTROLLERS
                    .iter()
                    .filter(|c| root.join(c).is_dir())
                    .map(|c| (*c, root.join(c).join(PARENT).join(name)))
                    .collect(),
            },
            Mode::V2(root) => TaskCgroup {
                v2: true,
                dirs: vec![("unified", root.join(PARENT).join(name))],
            },
            Mode::None => TaskCgroup {
                v2: false,
                dirs: vec![],
            },
        }
    }

    /// Makes the cgroup of one task with its limits.
    pub fn create(&self, name: &str, limits: &Limits) -> io::Result<TaskCgroup> {
        match self {
            Mode::V1(root) => {
                let mut dirs = Vec::new();
                for c in V1_CONTROLLERS {
                    if root.join(c).is_dir() {
                        let d = root.join(c).join(PARENT).join(name);
                        std::fs::create_dir_all(&d)?;
                        dirs.push((c, d));
                    }
                }
                let cg = TaskCgroup { v2: false, dirs };
                cg.write(
                    "memory",
                    "memory.limit_in_bytes",
                    &limits.memory_bytes.to_string(),
                )?;
                // No swap beyond the limit (absent when swap accounting is off).
                let _ = cg.write(
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    &limits.memory_bytes.to_string(),
                );
                let _ = cg.write("memory", "memory.swappiness", "0");
                cg.write("cpu", "cpu.cfs_period_us", "100000")?;
                cg.write(
                    "cpu",
                    "cpu.cfs_quota_us",
                    &(limits.cpus_milli.max(10) * 100).to_string(),
                )?;
                cg.write(
                    "cpu",
                    "cpu.shares",
                    &(limits.cpus_milli * 1024 / 1000).max(2).to_string(),
                )?;
                cg.write("pids", "pids.max", &limits.pids_max.to_string())?;
                Ok(cg)
            }
            Mode::V2(root) => {
                let d = root.join(PARENT).join(name);
                std::fs::create_dir_all(&d)?;
                let cg = TaskCgroup {
                    v2: true,
                    dirs: vec![("unified", d)],
                };
                cg.write("unified", "memory.max", &limits.memory_bytes.to_string())?;
                let _ = cg.write("unified", "memory.swap.max", "0");
                cg.write(
                    "unified",
                    "cpu.max",
                    &format!("{} 100000", limits.cpus_milli.max(10) * 100),
                )?;
                let shares = (limits.cpus_milli * 1024 / 1000).max(2);
                cg.write(
                    "unified",
                    "cpu.weight",
                    &(1 + (shares - 2) * 9999 / 262_142).to_string(),
                )?;
                cg.write("unified", "pids.max", &limits.pids_max.to_string())?;
                Ok(cg)
            }
            Mode::None => Ok(TaskCgroup {
                v2: false,
                dirs: vec![],
            }),
        }
    }
}

/// What a task is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// CPU in millicores: the CFS quota per 100 ms period, and the weight.
    pub cpus_milli: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Processes and threads.
    pub pids_max: u64,
}

/// One task's cgroup (one directory per v1 controller, or one v2 directory).
#[derive(Debug)]
pub struct TaskCgroup {
    v2: bool,
    dirs: Vec<(&'static str, PathBuf)>,
}

fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl TaskCgroup {
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller || self.v2)
            .map(|(_, d)| d.as_path())
    }

    fn write(&self, controller: &str, file: &str, value: &str) -> io::Result<()> {
        let Some(d) = self.dir(controller) else {
            return Ok(());
        };
        let p = d.join(file);
        std::fs::write(&p, value).map_err(with_path(&p))
    }

    fn read(&self, controller: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir(controller)?.join(file)).ok()
    }

    /// The `cgroup.procs` files a new process must join (one per v1 hierarchy).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect();
        // cpu and cpuacct are often one hierarchy under two names: join it once.
        files.sort_by_key(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()));
        files.dedup_by_key(|f| std::fs::canonicalize(&*f).unwrap_or_else(|_| f.clone()));
        files
    }

    /// Whether the kernel OOM-killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let Some(text) = self.read("memory", file) else {
            return false;
        };
        text.lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
    }

    /// CPU time used so far (ns) and memory in use now (bytes).
    pub fn usage(&self) -> (u64, u64) {
        let parse = |s: Option<String>| s.and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
        if self.v2 {
            let cpu = self
                .read("unified", "cpu.stat")
                .and_then(|s| {
                    s.lines().find_map(|l| {
                        l.strip_prefix("usage_usec ")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                })
                .unwrap_or(0);
            (cpu * 1000, parse(self.read("unified", "memory.current")))
        } else {
            (
                parse(self.read("cpuacct", "cpuacct.usage")),
                parse(self.read("memory", "memory.usage_in_bytes")),
            )
        }
    }

    /// The processes in the cgroup now.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|(_, d)| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Sends `signal` to every process in the cgroup.
    pub fn signal_all(&self, signal: rustix::process::Signal) {
        for pid in self.pids() {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, signal);
            }
        }
    }

    /// Kills every process in the cgroup and waits (up to 5 s) for them to go.
    pub async fn kill_all(&self) {
        for _ in 0..100 {
            if self.pids().is_empty() {
                return;
            }
            self.signal_all(rustix::process::Signal::KILL);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Removes the cgroup's directories (they must hold no process). The kernel
    /// may report a just-emptied cgroup busy for a moment, so this retries briefly.
    pub fn remove(&self) {
        for (_, d) in &self.dirs {
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) if tries < 40 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(e) => {
                        tracing::warn!(dir = %d.display(), error = %e, "removing a task cgroup");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            cpus_milli: 500,
            memory_bytes: 64 << 20,
            pids_max: 100,
        }
    }

    #[test]
    fn v2_limits_are_written_to_a_fake_tree() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let mode = Mode::detect(root.path());
        assert_eq!(mode, Mode::V2(root.path().to_path_buf()));
        let cg = mode.create("t1", &limits()).unwrap();
        let d = root.path().join("mosaic/t1");
        let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "100");
        assert_eq!(read("cpu.weight"), "20");
        assert_eq!(
            std::fs::read_to_string(root.path().join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
        std::fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
        std::fs::write(d.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
        std::fs::write(d.join("memory.current"), "4096\n").unwrap();
        assert_eq!(cg.usage(), (1_500_000, 4096));
        assert_eq!(cg.procs_files(), vec![d.join("cgroup.procs")]);
    }

    #[test]
    fn v1_limits_are_written_to_a_fake_tree() {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu", "cpuacct", "pids"] {
            std::fs::create_dir_all(root.path().join(c)).unwrap();
        }
        std::fs::write(root.path().join("memory/memory.limit_in_bytes"), "max").unwrap();
        let mode = Mode::detect(root.path());
        assert_eq!(mode.name(), "v1");
        let cg = mode.create("t1", &limits()).unwrap();
        let read = |c: &str, f: &str| {
            std::fs::read_to_string(root.path().join(c).join("mosaic/t1").join(f)).unwrap()
        };
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("pids", "pids.max"), "100");
        std::fs::write(
            root.path().join("memory/mosaic/t1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        assert!(!cg.oom_killed());
        assert_eq!(cg.procs_files().len(), 4);
    }

    #[test]
    fn no_cgroups_means_none() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Mode::detect(root.path()), Mode::None);
    }
}
