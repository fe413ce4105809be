//! Starting a task isolated, as Mesos's `--switch_user` with its Linux
//! filesystem and PID isolators, or Nomad's exec driver, do: the executor
//! (root, single-threaded) forks a small init that is PID 1 of a new PID
//! namespace and lives in a new mount namespace; the init forks the task,
//! which drops to the task's user and groups (so it holds no capability),
//! sets `no_new_privs`, installs the default seccomp filter ([`seccomp`]) and
//! execs the command with the environment the agent built and nothing else.
//!
//! What the task sees of the machine:
//! - its own `/proc` (only its own processes; other tasks' environments and
//!   command lines are not there to read), a private `/tmp`, `/var/tmp` and
//!   `/dev/shm`, and its own IPC namespace;
//! - the agent's data dir (every sandbox and executor record), and any other
//!   path the agent names (the server's data dir under `mosaic up`, the
//!   agent's kubeconfig), hidden under an empty read-only tmpfs (a file
//!   under `/dev/null`);
//! - its own task's directory (this run's sandbox and its earlier runs'),
//!   bind-mounted back at its usual path, with the directories above it made
//!   passable when the task's user could not pass them (an empty tmpfs over
//!   each, so nothing beside it shows).
//!
//! When the task's main process ends, the init reports its status on a pipe
//! and exits; the kernel then kills whatever else runs in the namespace, so a
//! daemonised child never outlives its task.
//!
//! [`seccomp`]: crate::seccomp

use crate::users::Identity;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// How a task is isolated (part of the executor's spec).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Isolation {
    /// Who the task runs as.
    pub identity: Identity,
    /// Paths to hide from the task (directories under an empty tmpfs, files under /dev/null).
    pub hide: Vec<PathBuf>,
    /// The size of the private `/tmp` and `/dev/shm` (the task's memory limit:
    /// what it writes there is charged to its cgroup as memory).
    pub tmp_bytes: u64,
}

/// What the task runs, as the executor passes it on.
pub struct Program<'a> {
    /// argv.
    pub argv: &'a [String],
    /// The whole environment.
    pub env: &'a [(String, String)],
    /// The working directory.
    pub working_dir: &'a Path,
    /// The sandbox (bind-mounted back into the task's view).
    pub sandbox: &'a Path,
    /// Where stdout and stderr go.
    pub stdout: File,
    /// See `stdout`.
    pub stderr: File,
}

/// A started isolated task.
pub struct Launched {
    /// The init's pid (also the task's process group).
    pub pid: i32,
    status: File,
}

impl Launched {
    /// After the init has been reaped: the task's exit code or signal.
    pub fn outcome(mut self) -> std::io::Result<(Option<i32>, Option<i32>)> {
        let mut buf = [0u8; 8];
        self.status.read_exact(&mut buf)?;
        let code = i32::from_le_bytes(buf[..4].try_into().expect("4 bytes"));
        let signal = i32::from_le_bytes(buf[4..].try_into().expect("4 bytes"));
        Ok(((code >= 0).then_some(code), (signal > 0).then_some(signal)))
    }
}

fn pipe() -> std::io::Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((File::from(r), File::from(w)))
}

/// Starts `program` isolated as `iso` says, its first instruction already in
/// the cgroup whose `cgroup.procs` files are `procs`.
///
/// Must be called from a single-threaded process (the executor): the forked
/// children run ordinary code.
pub fn spawn(
    program: Program<'_>,
    iso: &Isolation,
    procs: Vec<OwnedFd>,
) -> std::io::Result<Launched> {
    let filters = crate::seccomp::default_filters().map_err(std::io::Error::other)?;
    let (mut err_r, err_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    // The executor's next child is PID 1 of a new namespace.
    unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| std::io::Error::other(format!("a new PID namespace: {e}")))?;
    // SAFETY: the executor is single-threaded, so the child may run any code.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(err_r);
            drop(status_r);
            let code = init(program, iso, procs, &filters, err_w, status_w);
            // SAFETY: the init ends here without returning into the executor's code.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(err_w);
            drop(status_w);
            drop(procs);
            let mut msg = String::new();
            let _ = err_r.read_to_string(&mut msg);
            if !msg.is_empty() {
                let _ = waitpid(child, None);
                return Err(std::io::Error::other(msg));
            }
            Ok(Launched {
                pid: child.as_raw(),
                status: status_r,
            })
        }
    }
}

/// PID 1 of the task's namespace: sets up its view, starts the task, reports
/// its status when it ends. Returns the init's exit code.
fn init(
    program: Program<'_>,
    iso: &Isolation,
    procs: Vec<OwnedFd>,
    filters: &crate::seccomp::Filters,
    mut err_w: File,
    mut status_w: File,
) -> i32 {
    for fd in &procs {
        if let Err(e) = rustix::io::write(fd, b"0") {
            let _ = write!(err_w, "joining the task's cgroup: {e}");
            return 126;
        }
    }
    drop(procs);
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    if let Err(e) = view(program.sandbox, iso) {
        let _ = write!(err_w, "setting up the task's filesystem view: {e}");
        return 126;
    }
    // SAFETY: this process is single-threaded (a fork of the single-threaded executor).
    let task = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(status_w);
            let e = exec(program, &iso.identity, filters);
            let _ = write!(err_w, "{e}");
            return 127;
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            let _ = write!(err_w, "forking the task: {e}");
            return 126;
        }
    };
    drop(err_w);
    // Reap everything (orphans come to PID 1) until the task itself ends.
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p == task => {
                let _ = status_w.write_all(&[code.to_le_bytes(), (-1i32).to_le_bytes()].concat());
                return 0;
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p == task => {
                let _ = status_w
                    .write_all(&[(-1i32).to_le_bytes(), (sig as i32).to_le_bytes()].concat());
                return 0;
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 0,
        }
    }
}

/// In the task's process: drops to its identity and execs. Returns only on failure.
pub(crate) fn exec(
    program: Program<'_>,
    id: &Identity,
    filters: &crate::seccomp::Filters,
) -> std::io::Error {
    if id.uid != 0 {
        // Nothing the task execs may gain a capability back.
        for cap in 0..64 {
            // SAFETY: prctl with integer arguments; EINVAL past the last capability.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
    }
    let mut groups: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    if !groups.contains(&Gid::from_raw(id.gid)) {
        groups.push(Gid::from_raw(id.gid));
    }
    let drop_to = || -> nix::Result<()> {
        nix::unistd::setgroups(&groups)?;
        nix::unistd::setgid(Gid::from_raw(id.gid))?;
        nix::unistd::setuid(Uid::from_raw(id.uid))
    };
    if let Err(e) = drop_to() {
        return std::io::Error::other(format!("switching to uid {} gid {}: {e}", id.uid, id.gid));
    }
    let Some((prog, args)) = program.argv.split_first() else {
        return std::io::Error::other("the task has neither command nor args");
    };
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(program.env.iter().map(|(k, v)| (k, v)))
        .current_dir(program.working_dir)
        .stdin(Stdio::null())
        .stdout(program.stdout)
        .stderr(program.stderr);
    let filters = filters.clone();
    let thp = crate::thp::task_thp();
    // SAFETY: runs in this (single-threaded) process just before execve;
    // only prctl and seccomp calls.
    unsafe {
        cmd.pre_exec(move || {
            crate::thp::restore_thp(thp);
            filters.install()
        });
    }
    let e = cmd.exec();
    std::io::Error::new(e.kind(), format!("starting {prog}: {e}"))
}

/// The task's view of the filesystem (in the init, before the task forks).
fn view(sandbox: &Path, iso: &Isolation) -> std::io::Result<()> {
    // The task's directory: this run's sandbox and the earlier runs' beside it.
    let shown = sandbox.parent().unwrap_or(sandbox);
    let err = |what: String| move |e: nix::Error| std::io::Error::other(format!("{what}: {e}"));
    // Its own mounts, and its own System V and POSIX IPC (shared memory,
    // semaphores, message queues: nothing shared with other tasks of its user).
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC)
        .map_err(err("new mount and IPC namespaces".into()))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("making / private".into()))?;
    // Held before anything covers it, and opened in this namespace (a bind
    // mount's source must be a mount of the caller's own namespace).
    let sandbox_fd = nix::fcntl::open(
        shown,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(err(format!("opening {}", shown.display())))?;
    let private = format!("mode=1777,size={}", iso.tmp_bytes.max(1 << 20));
    let mut ours: Vec<PathBuf> = Vec::new();
    for dir in ["/tmp", "/var/tmp", "/dev/shm"] {
        if Path::new(dir).is_dir() {
            tmpfs(Path::new(dir), &private)?;
            ours.push(dir.into());
        }
    }
    for path in &iso.hide {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            tmpfs(path, "mode=0755,size=64k")?;
            ours.push(path.clone());
        } else {
            mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(err(format!("hiding {}", path.display())))?;
        }
    }
    passable(shown, &iso.identity, &mut ours)?;
    let source = format!("/proc/self/fd/{}", sandbox_fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        shown,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err(format!("mounting the sandbox at {}", shown.display())))?;
    let hidden = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), hidden, None::<&str>)
        .map_err(err("mounting /proc".into()))?;
    Ok(())
}

fn tmpfs(at: &Path, options: &str) -> std::io::Result<()> {
    mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options),
    )
    .map_err(|e| std::io::Error::other(format!("a tmpfs at {}: {e}", at.display())))
}

/// Makes every directory above `sandbox` passable for `id`: a missing one is
/// made (only inside a tmpfs of ours), one the user may not pass is covered
/// by an empty tmpfs (hiding whatever else it holds).
fn passable(sandbox: &Path, id: &Identity, ours: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut at = PathBuf::from("/");
    let parts: Vec<_> = sandbox.components().skip(1).collect();
    for part in parts {
        at.push(part);
        let is_last = at == sandbox;
        match std::fs::metadata(&at) {
            Ok(meta) => {
                if !is_last && !may_pass(&meta, id) {
                    tmpfs(&at, "mode=0755,size=64k")?;
                    ours.push(at.clone());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !ours.iter().any(|o| at.starts_with(o)) {
                    return Err(std::io::Error::other(format!(
                        "{} is missing outside the task's own mounts",
                        at.display()
                    )));
                }
                std::fs::create_dir(&at)?;
            }
            Err(e) => return Err(std::io::Error::other(format!("{}: {e}", at.display()))),
        }
    }
    Ok(())
}

/// Whether `id` may search the directory `meta` describes.
fn may_pass(meta: &std::fs::Metadata, id: &Identity) -> bool {
    let mode = meta.mode();
    id.uid == 0
        || mode & 0o001 != 0
        || (meta.uid() == id.uid && mode & 0o100 != 0)
        || ((meta.gid() == id.gid || id.groups.contains(&meta.gid())) && mode & 0o010 != 0)
}
