//! A task's command health check, run as the task itself runs: `mosaic
//! executor --enter RUN_DIR COMMAND` joins the running task's mount and PID
//! namespaces and its cgroup, drops to its user under the same seccomp
//! filter, and runs `/bin/sh -c COMMAND` in its sandbox with its environment.
//! Its exit code is the command's. (A check run by the agent itself would run
//! a task author's command as root.)

use crate::executor::{self, ExecSpec, Started};
use nix::sched::{CloneFlags, setns};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use std::path::Path;

/// Runs `command` in the run's task; returns the exit code (126 when it could
/// not be entered, 128 + N when a signal N ended it).
pub fn main(run_dir: &Path, command: &str) -> i32 {
    match enter(run_dir, command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("executor --enter: {e}");
            126
        }
    }
}

fn enter(run_dir: &Path, command: &str) -> Result<i32, String> {
    let spec: ExecSpec = executor::read(run_dir, executor::SPEC)
        .ok_or_else(|| format!("no readable {} in {}", executor::SPEC, run_dir.display()))?;
    let started: Started = executor::read(run_dir, executor::STATE)
        .ok_or_else(|| "the task has not started".to_string())?;
    if !executor::alive(&started) {
        return Err("the task's executor is gone".into());
    }
    let argv = vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()];
    let null = || std::fs::File::options().write(true).open("/dev/null");
    let (stdout, stderr) = match (null(), null()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err("opening /dev/null".into()),
    };
    let program = crate::launch::Program {
        argv: &argv,
        env: &spec.env,
        working_dir: &spec.working_dir,
        sandbox: &spec.sandbox,
        stdout,
        stderr,
    };
    let Some(iso) = &spec.isolation else {
        // The agent is not root: the task runs as the agent's user, and so does its check.
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", command])
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.working_dir)
            .stdin(std::process::Stdio::null())
            .stdout(program.stdout)
            .stderr(program.stderr)
            .status()
            .map_err(|e| e.to_string())?;
        return Ok(status.code().unwrap_or(126));
    };
    // The init must still be the executor's child, not a reused pid.
    let parent = std::fs::read_to_string(format!("/proc/{}/stat", started.pid))
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 2..)?.to_string();
            rest.split(' ').nth(1)?.parse::<i32>().ok()
        });
    if parent != Some(started.executor_pid) {
        return Err("the task's init is gone".into());
    }
    let filters = crate::seccomp::default_filters().map_err(|e| e.to_string())?;
    let procs: Vec<_> = spec
        .cgroup
        .open(&spec.cgroup_name)
        .procs_files()
        .iter()
        .filter_map(|p| std::fs::OpenOptions::new().write(true).open(p).ok())
        .collect();
    // Both opened first: once in the task's mount namespace, /proc is the task's.
    let open = |ns: &str| {
        std::fs::File::open(format!("/proc/{}/ns/{ns}", started.pid))
            .map_err(|e| format!("the task's {ns} namespace: {e}"))
    };
    let (mnt, pid, ipc) = (open("mnt")?, open("pid")?, open("ipc")?);
    setns(&ipc, CloneFlags::CLONE_NEWIPC)
        .map_err(|e| format!("joining the task's IPC namespace: {e}"))?;
    setns(&mnt, CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("joining the task's mount namespace: {e}"))?;
    setns(&pid, CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("joining the task's PID namespace: {e}"))?;
    // SAFETY: `mosaic executor --enter` is single-threaded.
    match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Child => {
            use std::io::Write;
            for mut f in procs {
                let _ = f.write_all(b"0");
            }
            let e = crate::launch::exec(program, &iso.identity, &filters);
            eprintln!("executor --enter: {e}");
            // SAFETY: ends the forked child.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.to_string()),
            }
        },
    }
}
