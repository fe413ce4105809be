//! Runs the tasks bound to this agent as processes, each in its own process
//! group and sandbox directory, and reports their phases through the Task's
//! status subresource.

use crate::AgentConfig;
use crate::cgroup::{Limits, Mode, TaskCgroup};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mosaic_crds::Task;
use mosaic_crds::task::TaskPhase;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Processes and threads a task may have when nothing else is said.
const PIDS_MAX: u64 = 1024;
/// How often usage is sampled into `status.usage`.
const USAGE_EVERY: Duration = Duration::from_secs(2);

/// A running task: its process group and cgroup, and how to tell its waiter it was killed on purpose.
struct Running {
    pgid: i32,
    cgroup: Arc<TaskCgroup>,
    grace: Duration,
    killed: tokio::sync::watch::Sender<bool>,
}

/// The tasks this agent runs, by uid.
pub struct Runner {
    client: Client,
    cfg: AgentConfig,
    mode: Mode,
    running: Mutex<HashMap<String, Running>>,
    /// The launches under way, so shutdown can let each clean up its cgroup.
    launches: Mutex<tokio::task::JoinSet<()>>,
}

impl Runner {
    pub fn new(client: Client, cfg: AgentConfig, mode: Mode) -> Self {
        Self {
            client,
            cfg,
            mode,
            running: Mutex::new(HashMap::new()),
            launches: Mutex::new(tokio::task::JoinSet::new()),
        }
    }

    /// The sandbox directory of a task.
    pub fn sandbox(&self, t: &Task) -> PathBuf {
        self.cfg
            .data_dir
            .join("sandboxes")
            .join(t.namespace().unwrap_or_default())
            .join(format!("{}-{}", t.name_any(), t.uid().unwrap_or_default()))
    }

    /// Reacts to a task bound to this agent: starts it when Staging, kills it when deleted.
    pub async fn observe(self: &Arc<Self>, t: Task) {
        let uid = t.uid().unwrap_or_default();
        let phase = t.status.as_ref().and_then(|s| s.phase);
        if t.metadata.deletion_timestamp.is_some() {
            self.forget(&t).await;
            return;
        }
        if phase != Some(TaskPhase::Staging) || self.running.lock().await.contains_key(&uid) {
            return;
        }
        let runner = self.clone();
        let mut launches = self.launches.lock().await;
        // Forget launches that are over, then start this one.
        while launches.try_join_next().is_some() {}
        launches.spawn(async move { runner.launch(t).await });
    }

    /// Kills a task that was deleted or is being deleted.
    pub async fn forget(&self, t: &Task) {
        let uid = t.uid().unwrap_or_default();
        if let Some(r) = self.running.lock().await.remove(&uid) {
            kill(&r, r.grace).await;
        }
    }

    /// Kills every task (on shutdown) and waits, up to 15 s, for their launches
    /// to finish cleaning up (cgroups removed, final status sent).
    pub async fn kill_all(&self) {
        let all: Vec<Running> = self.running.lock().await.drain().map(|(_, r)| r).collect();
        for r in all {
            kill(&r, Duration::from_secs(2)).await;
        }
        let mut launches = std::mem::take(&mut *self.launches.lock().await);
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            while launches.join_next().await.is_some() {}
        })
        .await;
    }

    async fn status(&self, t: &Task, status: Value) {
        let api: Api<Task> =
            Api::namespaced(self.client.clone(), &t.namespace().unwrap_or_default());
        let body = json!({"status": status});
        for attempt in 0..5u64 {
            match api
                .patch_status(&t.name_any(), &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(e) => {
                    tracing::warn!(task = %t.name_any(), error = %e, attempt, "reporting task status");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
    }

    async fn launch(self: Arc<Self>, t: Task) {
        let sandbox = self.sandbox(&t);
        let generation = t.metadata.generation;
        let r = &t.spec.resources;
        let limits = Limits {
            cpus_milli: r.cpus_milli().ok().flatten().unwrap_or(1000),
            memory_bytes: r.memory_bytes().ok().flatten().unwrap_or(128 << 20),
            pids_max: PIDS_MAX,
        };
        let cgroup = match self.mode.create(&t.uid().unwrap_or_default(), &limits) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                let msg = format!("could not make the task's cgroup: {e}");
                self.launch_failed(&t, &msg).await;
                return;
            }
        };
        let spawned = (|| {
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
            std::fs::create_dir_all(&sandbox)?;
            let stdout = std::fs::File::create(sandbox.join("stdout"))?;
            let stderr = std::fs::File::create(sandbox.join("stderr"))?;
            let mut cmd = match (&t.spec.command, &t.spec.args) {
                (Some(c), _) => {
                    let mut cmd = tokio::process::Command::new("/bin/sh");
                    cmd.arg("-c").arg(c);
                    cmd
                }
                (None, Some(args)) if !args.is_empty() => {
                    let mut cmd = tokio::process::Command::new(&args[0]);
                    cmd.args(&args[1..]);
                    cmd
                }
                _ => {
                    return Err(std::io::Error::other(
                        "the task has neither command nor args",
                    ));
                }
            };
            cmd.current_dir(
                t.spec
                    .working_dir
                    .as_deref()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| sandbox.clone()),
            )
            .envs(t.spec.env.iter().map(|e| (e.name.clone(), e.value.clone())))
            .env("MOSAIC_SANDBOX", &sandbox)
            .env("MOSAIC_TASK", t.name_any())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
            // SAFETY: the closure runs in the forked child before exec and only makes
            // write(2) calls on descriptors opened above: async-signal-safe, no allocation.
            unsafe {
                cmd.pre_exec(move || {
                    for fd in &procs {
                        rustix::io::write(fd, b"0")?;
                    }
                    Ok(())
                });
            }
            cmd.spawn()
        })();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                cgroup.remove();
                let msg = format!("could not start the task: {e}");
                self.launch_failed(&t, &msg).await;
                return;
            }
        };
        let pgid = child.id().unwrap_or_default() as i32;
        let (killed_tx, killed_rx) = tokio::sync::watch::channel(false);
        self.running.lock().await.insert(
            t.uid().unwrap_or_default(),
            Running {
                pgid,
                cgroup: cgroup.clone(),
                grace: Duration::from_secs(t.spec.kill_grace_period_seconds.into()),
                killed: killed_tx,
            },
        );
        let started = now();
        self.status(
            &t,
            json!({"phase": "Running", "startTime": started, "reason": "Started", "message": format!("running as process {pgid}"),
                   "observedGeneration": generation,
                   "conditions": [
                       {"type": "Scheduled", "status": "True", "reason": "Scheduled", "message": format!("bound to agent {}", self.cfg.name), "lastTransitionTime": started, "observedGeneration": generation},
                       {"type": "Ready", "status": "True", "reason": "Running", "message": "the task is running", "lastTransitionTime": started, "observedGeneration": generation}]}),
        )
        .await;
        let sampler = tokio::spawn(self.clone().sample_usage(t.clone(), cgroup.clone()));
        let exit = child.wait().await;
        sampler.abort();
        self.running
            .lock()
            .await
            .remove(&t.uid().unwrap_or_default());
        let by_request = *killed_rx.borrow();
        let oom = cgroup.oom_killed();
        // Whatever the task left behind in its cgroup goes with it.
        cgroup.kill_all().await;
        cgroup.remove();
        let status = match exit {
            Ok(s) if by_request => terminal(
                "Killed",
                "KilledByUser",
                "the task was killed on request",
                s.code(),
                s.signal(),
                generation,
                false,
            ),
            Ok(s) if oom => terminal(
                "Failed",
                "MemoryLimitExceeded",
                &format!(
                    "the task used more than its memory limit of {} bytes and was killed",
                    limits.memory_bytes
                ),
                s.code(),
                s.signal(),
                generation,
                false,
            ),
            Ok(s) if s.success() => terminal(
                "Finished",
                "Completed",
                "the task exited 0",
                Some(0),
                None,
                generation,
                true,
            ),
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => terminal(
                    "Failed",
                    "NonZeroExit",
                    &format!("the task exited {code}"),
                    Some(code),
                    None,
                    generation,
                    false,
                ),
                (None, sig) => terminal(
                    "Failed",
                    "NonZeroExit",
                    &format!("the task was killed by signal {}", sig.unwrap_or(0)),
                    None,
                    sig,
                    generation,
                    false,
                ),
            },
            Err(e) => terminal(
                "Failed",
                "LaunchFailed",
                &format!("waiting for the task failed: {e}"),
                None,
                None,
                generation,
                false,
            ),
        };
        // A failure that will be retried is not Stalled (kstatus would call it failed for good).
        let mut status = status;
        let phase: Option<TaskPhase> = serde_json::from_value(status["phase"].clone()).ok();
        let attempt = t.status.as_ref().and_then(|s| s.attempt).unwrap_or(0);
        if phase.is_some_and(|p| t.spec.restarts_after(p, attempt)) {
            status["conditions"][1]["status"] = json!("False");
            status["conditions"][1]["message"] = json!("the task will be restarted");
        }
        self.status(&t, status).await;
    }
}

impl Runner {
    /// Reports a task that could not be started.
    async fn launch_failed(&self, t: &Task, msg: &str) {
        let status = terminal(
            "Failed",
            "LaunchFailed",
            msg,
            None,
            None,
            t.metadata.generation,
            false,
        );
        self.status(t, status).await;
    }

    /// Writes the task's CPU (over the last interval) and memory use into `status.usage`.
    async fn sample_usage(self: Arc<Self>, t: Task, cgroup: Arc<TaskCgroup>) {
        let mut last = (std::time::Instant::now(), cgroup.usage().0);
        loop {
            tokio::time::sleep(USAGE_EVERY).await;
            let (cpu_ns, mem) = cgroup.usage();
            let now = std::time::Instant::now();
            let elapsed = now.duration_since(last.0).as_nanos().max(1) as u64;
            let milli = cpu_ns.saturating_sub(last.1) * 1000 / elapsed;
            last = (now, cpu_ns);
            let usage = mosaic_crds::ResourceQuantities::from_units(milli, mem);
            self.status(&t, json!({"usage": usage})).await;
        }
    }
}

/// The status of a task that ended.
fn terminal(
    phase: &str,
    reason: &str,
    message: &str,
    code: Option<i32>,
    signal: Option<i32>,
    generation: Option<i64>,
    ok: bool,
) -> Value {
    let now = now();
    let (ready, stalled) = if ok {
        ("True", "False")
    } else {
        ("False", "True")
    };
    json!({"phase": phase, "reason": reason, "message": message, "exitCode": code, "signal": signal,
           "finishTime": now, "observedGeneration": generation,
           "conditions": [
               {"type": "Ready", "status": ready, "reason": reason, "message": message, "lastTransitionTime": now, "observedGeneration": generation},
               {"type": "Stalled", "status": stalled, "reason": reason, "message": message, "lastTransitionTime": now, "observedGeneration": generation}]})
}

/// SIGTERM to the task's process group and cgroup, then SIGKILL to both after the grace period.
async fn kill(r: &Running, grace: Duration) {
    let _ = r.killed.send(true);
    let group = rustix::process::Pid::from_raw(r.pgid);
    if let Some(pid) = group {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
    }
    r.cgroup.signal_all(rustix::process::Signal::TERM);
    let gone = || {
        group.is_none_or(|pid| rustix::process::test_kill_process_group(pid).is_err())
            && r.cgroup.pids().is_empty()
    };
    let deadline = tokio::time::Instant::now() + grace;
    while !gone() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !gone() {
        if let Some(pid) = group {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        r.cgroup.kill_all().await;
    }
    r.cgroup.remove();
}
