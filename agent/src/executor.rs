//! The per-task executor: a small process (the `mosaic` binary run as
//! `mosaic executor RUN_DIR`) that owns one run of one task, so the task keeps
//! running, and its outcome is kept, while the agent restarts.
//!
//! The agent writes `RUN_DIR/spec.json` and starts the executor. The executor
//! leaves the agent's session, makes the task's cgroup, starts the command in
//! it, and records `state.json` once the task runs (its pid and the
//! executor's; written atomically), and durably (write, fsync, rename, fsync
//! of the directory) `exit.json` when it has ended (exit code or signal, whether the kernel
//! OOM-killed it), after killing whatever the task left in its cgroup and
//! removing the cgroup. It also prints `started` and `exited` lines on its
//! stdout, which the agent that started it reads to react at once; an agent
//! that restarted reads the files instead.

use crate::cgroup::{Limits, Mode};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub use crate::thp::{env, restore_thp, task_thp};

/// What the agent asks the executor to run (`RUN_DIR/spec.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// The task's working directory.
    pub working_dir: PathBuf,
    /// Where stdout and stderr go.
    pub sandbox: PathBuf,
    /// The cgroup interface to use.
    pub cgroup: Mode,
    /// The cgroup's name under Mosaic's parent group.
    pub cgroup_name: String,
    /// The task's limits.
    pub limits: Limits,
    /// Who the task runs as and what it sees ([`crate::launch`]); `None`
    /// when the agent is not root (the task then runs as the agent's user).
    #[serde(default)]
    pub isolation: Option<crate::launch::Isolation>,
}

/// Written once the task runs (`RUN_DIR/state.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Started {
    /// The executor's pid.
    pub executor_pid: i32,
    /// The executor's start time in clock ticks since boot (tells a reused pid apart).
    pub executor_start: u64,
    /// The task's pid (also its process group).
    pub pid: i32,
    /// When it started (RFC 3339).
    pub start_time: String,
}

/// Written when the run is over (`RUN_DIR/exit.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Exited {
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal, when one ended it.
    pub signal: Option<i32>,
    /// Whether the kernel OOM-killed a process of the task.
    pub oom_killed: bool,
    /// Why it could not be started, when it could not.
    pub launch_error: Option<String>,
    /// When it ended (RFC 3339).
    pub finish_time: String,
}

/// The files of one run.
pub const SPEC: &str = "spec.json";
/// See [`Started`].
pub const STATE: &str = "state.json";
/// See [`Exited`].
pub const EXIT: &str = "exit.json";

/// RFC 3339 now, to the second (on the one clock, [`mosaic_crds::lifecycle::now`]).
pub fn now() -> String {
    mosaic_crds::lifecycle::text(mosaic_crds::lifecycle::now())
}

/// Writes `value` to `dir/name` so that after a crash of the machine the file
/// is either absent or whole (write, fsync, rename, fsync of the directory).
pub fn write_durably<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    write(dir, name, value, true)
}

/// Writes `value` to `dir/name` so that readers never see it half-written
/// (write, rename), without waiting for the disk: for what a machine crash
/// makes moot anyway (the run's spec and start: no process survives a reboot).
pub fn write_atomically<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    write(dir, name, value, false)
}

fn write<T: Serialize>(dir: &Path, name: &str, value: &T, sync: bool) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    if sync {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    if sync {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads a JSON file of a run, if it is there.
pub fn read<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Option<T> {
    serde_json::from_slice(&std::fs::read(dir.join(name)).ok()?).ok()
}

/// A process's start time in clock ticks since boot, from `/proc/PID/stat`.
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After the name: state is field 3, start time field 22 of the whole line.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the executor recorded in `s` is still running.
pub fn alive(s: &Started) -> bool {
    process_start(s.executor_pid) == Some(s.executor_start)
}

/// Reaps children until `pid` ends; returns its exit code or signal.
fn wait_for(pid: i32) -> std::io::Result<(Option<i32>, Option<i32>)> {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((p, status))) if p.as_raw_nonzero().get() == pid => {
                return Ok((status.exit_status(), status.terminating_signal()));
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reaps every child that has ended, without blocking.
fn reap_all() {
    while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
}

/// The executor's main: runs the task described by `run_dir/spec.json`.
/// With `run_dir` `-`, it first waits for the run directory on a line of
/// stdin: the agent keeps one such executor started ahead, so a launch does
/// not wait for a program to load. Returns the process exit code.
pub fn main(run_dir: &Path) -> i32 {
    let _ = rustix::process::setsid();
    let given;
    let run_dir = if run_dir == Path::new("-") {
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(n) if n > 0 && !line.trim().is_empty() => {
                given = PathBuf::from(line.trim_end_matches('\n'));
                given.as_path()
            }
            // The agent went away without a task for this executor.
            _ => return 0,
        }
    } else {
        run_dir
    };
    // The executor's own messages go to the run's executor.log.
    if let Ok(log) = std::fs::File::create(run_dir.join("executor.log")) {
        let _ = rustix::stdio::dup2_stderr(&log);
    }
    let spec: ExecSpec = match read(run_dir, SPEC) {
        Some(s) => s,
        None => {
            eprintln!("executor: no readable {SPEC} in {}", run_dir.display());
            return 2;
        }
    };
    let finish = |e: Exited| {
        if let Err(err) = write_durably(run_dir, EXIT, &e) {
            eprintln!("executor: recording the exit: {err}");
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "exited");
        let _ = out.flush();
    };
    let failed = |msg: String| Exited {
        exit_code: None,
        signal: None,
        oom_killed: false,
        launch_error: Some(msg),
        finish_time: now(),
    };
    let cgroup = match spec.cgroup.create(&spec.cgroup_name, &spec.limits) {
        Ok(c) => c,
        Err(e) => {
            finish(failed(format!("could not make the task's cgroup: {e}")));
            return 0;
        }
    };
    // Processes the task orphans become this executor's children, so none is
    // left a zombie and none escapes the end of the run.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    let child = match spawn(&spec, &cgroup) {
        Ok(c) => c,
        Err(e) => {
            cgroup.remove();
            finish(failed(format!("could not start the task: {e}")));
            return 0;
        }
    };
    let me = std::process::id() as i32;
    let started = Started {
        executor_pid: me,
        executor_start: process_start(me).unwrap_or(0),
        pid: child.pid(),
        start_time: now(),
    };
    if let Err(e) = write_atomically(run_dir, STATE, &started) {
        eprintln!("executor: recording the start: {e}");
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "started {}", started.pid);
        let _ = out.flush();
    }
    let status = wait_for(started.pid).and_then(|init| child.outcome(init));
    let oom = cgroup.oom_killed();
    // Whatever the task left behind in its cgroup or process group goes with it.
    let group = rustix::process::Pid::from_raw(started.pid);
    for _ in 0..100 {
        let in_group = group.is_some_and(|g| rustix::process::test_kill_process_group(g).is_ok());
        if cgroup.pids().is_empty() && !in_group {
            break;
        }
        cgroup.signal_all(rustix::process::Signal::KILL);
        if let Some(g) = group {
            let _ = rustix::process::kill_process_group(g, rustix::process::Signal::KILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        reap_all();
    }
    reap_all();
    cgroup.remove();
    let exited = match status {
        Ok((code, signal)) => Exited {
            exit_code: code,
            signal,
            oom_killed: oom,
            launch_error: None,
            finish_time: now(),
        },
        Err(e) => failed(format!("waiting for the task failed: {e}")),
    };
    finish(exited);
    0
}

/// A started task: a plain child, or an isolated one behind its init.
enum Spawned {
    Plain(std::process::Child),
    Isolated(crate::launch::Launched),
}

impl Spawned {
    /// The pid the executor waits for (also the task's process group).
    fn pid(&self) -> i32 {
        match self {
            Spawned::Plain(c) => c.id() as i32,
            Spawned::Isolated(l) => l.pid,
        }
    }

    /// The task's exit code or signal, given how the waited-for process ended.
    fn outcome(
        self,
        waited: (Option<i32>, Option<i32>),
    ) -> std::io::Result<(Option<i32>, Option<i32>)> {
        match self {
            Spawned::Plain(_) => Ok(waited),
            // An init killed before it could report (the whole group got
            // SIGKILL) says how the task ended by its own status.
            Spawned::Isolated(l) => Ok(l.outcome().unwrap_or(waited)),
        }
    }
}

/// Makes the sandbox and the task's output files, owned by the task's user.
fn prepare_sandbox(spec: &ExecSpec) -> std::io::Result<(std::fs::File, std::fs::File)> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&spec.sandbox)?;
    let owner = spec
        .isolation
        .as_ref()
        .map(|i| (i.identity.uid, i.identity.gid));
    let open = |name: &str| -> std::io::Result<std::fs::File> {
        let f = std::fs::File::create(spec.sandbox.join(name))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        Ok(f)
    };
    let out = (open("stdout")?, open("stderr")?);
    std::fs::set_permissions(&spec.sandbox, std::fs::Permissions::from_mode(0o750))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&spec.sandbox, Some(uid), Some(gid))?;
    }
    Ok(out)
}

fn spawn(spec: &ExecSpec, cgroup: &crate::cgroup::TaskCgroup) -> std::io::Result<Spawned> {
    // Opened before the fork, written in the child before exec: the task's
    // first instruction already runs inside its cgroup.
    let procs = cgroup
        .procs_files()
        .iter()
        .map(|p| {
            rustix::fs::open(
                p,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| std::io::Error::other(format!("{}: {e}", p.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (stdout, stderr) = prepare_sandbox(spec)?;
    if let Some(iso) = &spec.isolation {
        let program = crate::launch::Program {
            argv: &spec.argv,
            env: &spec.env,
            working_dir: &spec.working_dir,
            sandbox: &spec.sandbox,
            stdout,
            stderr,
        };
        return crate::launch::spawn(program, iso, procs).map(Spawned::Isolated);
    }
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(std::io::Error::other(
            "the task has neither command nor args",
        ));
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .current_dir(&spec.working_dir)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and only makes
    // write(2) calls on descriptors opened above and one prctl:
    // async-signal-safe, no allocation.
    let thp = task_thp();
    unsafe {
        cmd.pre_exec(move || {
            for fd in &procs {
                rustix::io::write(fd, b"0")?;
            }
            restore_thp(thp);
            Ok(())
        });
    }
    cmd.spawn().map(Spawned::Plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_files_round_trip_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let e = Exited {
            exit_code: Some(3),
            signal: None,
            oom_killed: false,
            launch_error: None,
            finish_time: now(),
        };
        write_durably(dir.path(), EXIT, &e).unwrap();
        assert_eq!(read::<Exited>(dir.path(), EXIT), Some(e));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(EXIT)]);
    }

    #[test]
    fn own_start_time_is_read_and_a_dead_pid_is_not_alive() {
        let me = std::process::id() as i32;
        let start = process_start(me).expect("own /proc/self/stat");
        assert!(alive(&Started {
            executor_pid: me,
            executor_start: start,
            pid: me,
            start_time: now()
        }));
        assert!(!alive(&Started {
            executor_pid: me,
            executor_start: start + 1,
            pid: me,
            start_time: now()
        }));
    }
}
