//! Runs the tasks bound to this agent, each through its own executor process
//! ([`crate::executor`]), and reports their phases through the Task's status
//! subresource, in order, retried until stored.
//!
//! One supervisor per run is the only writer of that run's status: the usage
//! sampler, the health checker and kill requests send it events. A run lives
//! in `DATA_DIR/executors/<uid>-<attempt>/`; after a restart the agent adopts
//! the runs whose executors still live, reports the ones that ended while it
//! was away with their real outcome, and kills the ones no task wants.

use crate::AgentConfig;
use crate::cgroup::{Limits, Mode, TaskCgroup};
use crate::executor::{self, ExecSpec, Exited, Started};
use crate::health;
use crate::status::{
    Reporter, describe_kill, killed, launch_failed, outcome, running, user_not_allowed,
};
use kube::{Client, ResourceExt};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Task, lifecycle};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Mutex, mpsc};

use executor::now;

/// A launch not running after this long says it is Starting (as Mesos's
/// TASK_STARTING); a quick one goes straight from Staging to Running, with
/// one status write fewer.
const STARTING_AFTER: Duration = Duration::from_secs(1);

/// Processes and threads a task may have when nothing else is said.
const PIDS_MAX: u64 = 1024;
/// How often usage is sampled into `status.usage`.
const USAGE_EVERY: Duration = Duration::from_secs(2);
/// Executors kept started ahead, waiting for a run.
const SPARES: usize = 2;
/// How often an adopted run's files are looked at.
const POLL: Duration = Duration::from_millis(100);

pub use crate::status::KillReason;

/// What a run's helpers tell its supervisor.
enum Event {
    Usage(mosaic_crds::ResourceQuantities),
    Healthy,
    Killing(KillReason),
}

/// One run of one task.
struct Run {
    dir: PathBuf,
    mode: Mode,
    cgroup_name: String,
    /// The task's pid once it runs (0 before).
    pid: AtomicI32,
    grace: Duration,
    kill: std::sync::Mutex<Option<KillReason>>,
    events: mpsc::UnboundedSender<Event>,
}

impl Run {
    fn cgroup(&self) -> TaskCgroup {
        self.mode.open(&self.cgroup_name)
    }

    /// Asks for the run to be killed; the first reason is the one reported.
    fn request_kill(self: &Arc<Self>, reason: KillReason, grace: Duration) {
        {
            let mut k = self.kill.lock().expect("kill lock");
            if k.is_some() {
                return;
            }
            *k = Some(reason.clone());
        }
        // Kept with the run, so an agent that restarts mid-kill reports it the same way.
        let _ = executor::write_atomically(&self.dir, "kill.json", &reason);
        let _ = self.events.send(Event::Killing(reason));
        let run = self.clone();
        tokio::spawn(async move { run.kill_process(grace).await });
    }

    /// SIGTERM to the task's process group and cgroup, then SIGKILL to both after the grace period.
    async fn kill_process(self: Arc<Self>, grace: Duration) {
        // A run still starting is killed as soon as its pid is known.
        let mut waited = Duration::ZERO;
        while self.pid.load(Ordering::Acquire) == 0 && waited < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
        let cgroup = self.cgroup();
        let group = rustix::process::Pid::from_raw(self.pid.load(Ordering::Acquire));
        if let Some(pid) = group {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
        }
        cgroup.signal_all(rustix::process::Signal::TERM);
        let gone = || {
            group.is_none_or(|pid| rustix::process::test_kill_process_group(pid).is_err())
                && cgroup.pids().is_empty()
        };
        let deadline = tokio::time::Instant::now() + grace;
        while !gone() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !gone() {
            if let Some(pid) = group {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            cgroup.kill_all().await;
        }
    }
}

/// The tasks this agent runs, by uid.
pub struct Runner {
    client: Client,
    cfg: AgentConfig,
    mode: Mode,
    runs: Mutex<HashMap<String, Arc<Run>>>,
    /// Runs (by directory) that ended here and were reported, so that a
    /// late watch event carrying an older status (Running, Killing) does
    /// not adopt and report them again (a phase going back from Killed).
    ended: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
    /// The supervisors under way, so shutdown can let each finish.
    supervisors: Mutex<tokio::task::JoinSet<()>>,
    metrics: crate::metrics::Metrics,
    /// Executors started ahead, waiting for the next runs.
    spare: std::sync::Mutex<Vec<tokio::process::Child>>,
    /// Whether tasks run isolated (the agent is root).
    isolate: bool,
    /// The host's sockets, read once for all the runs' port checks.
    sockets: Arc<crate::ports::Sockets>,
}

impl Runner {
    pub fn new(client: Client, cfg: AgentConfig, mode: Mode) -> Self {
        Self {
            client,
            cfg,
            mode,
            runs: Mutex::new(HashMap::new()),
            ended: Default::default(),
            supervisors: Mutex::new(tokio::task::JoinSet::new()),
            metrics: crate::metrics::Metrics::default(),
            spare: std::sync::Mutex::new(Vec::new()),
            isolate: rustix::process::geteuid().is_root(),
            sockets: Default::default(),
        }
    }

    /// A file that exists once the given run has ended (for following its output).
    pub fn run_ended_marker(&self, uid: &str, attempt: u32) -> PathBuf {
        self.run_dir(uid, attempt).join(executor::EXIT)
    }

    /// The agent's metrics in the OpenMetrics text format.
    pub fn metrics_text(&self) -> String {
        self.metrics.text()
    }

    fn run_dir(&self, uid: &str, attempt: u32) -> PathBuf {
        self.cfg
            .data_dir
            .join("executors")
            .join(format!("{uid}-{attempt}"))
    }

    /// Reacts to a task bound to this agent: starts it when Staging, adopts or
    /// reports a run that began before a restart, kills it when deleted.
    pub async fn observe(self: &Arc<Self>, t: Task) {
        let uid = t.uid().unwrap_or_default();
        let st = t.status.clone().unwrap_or_default();
        let deleted = t.metadata.deletion_timestamp.is_some();
        let attempt = st.attempt.unwrap_or(0);
        let dir = self.run_dir(&uid, attempt);
        let mut runs = self.runs.lock().await;
        if let Some(run) = runs.get(&uid) {
            if deleted {
                run.request_kill(KillReason::User, run.grace);
            }
            return;
        }
        if self.ended.lock().expect("ended lock").contains(&dir) {
            return;
        }
        let started = dir.join(executor::SPEC).exists();
        let action = match st.phase {
            Some(TaskPhase::Staging) if !started && deleted => {
                // Deleted before it ever ran: nothing to kill, and it may go.
                drop(runs);
                let status = killed(&KillReason::User, t.metadata.generation);
                Reporter::new(&t).report(&self.client, &t, status).await;
                return;
            }
            Some(TaskPhase::Staging) if !started => Start::Launch,
            Some(
                TaskPhase::Staging
                | TaskPhase::Starting
                | TaskPhase::Running
                | TaskPhase::Killing
                | TaskPhase::Unreachable,
            ) if started => Start::Adopt,
            _ => return,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let run = Arc::new(Run {
            dir,
            mode: self.mode.clone(),
            cgroup_name: format!("{uid}-{attempt}"),
            pid: AtomicI32::new(0),
            grace: Duration::from_secs(t.spec.kill_grace_period_seconds.into()),
            kill: std::sync::Mutex::new(None),
            events: tx,
        });
        runs.insert(uid, run.clone());
        drop(runs);
        // A kill under way when the previous agent stopped is finished now.
        if let Some(reason) = executor::read::<KillReason>(&run.dir, "kill.json") {
            run.request_kill(reason, run.grace);
        } else if deleted {
            run.request_kill(KillReason::User, run.grace);
        }
        let runner = self.clone();
        let mut sup = self.supervisors.lock().await;
        while sup.try_join_next().is_some() {}
        sup.spawn(async move { runner.supervise(t, run, rx, action).await });
    }

    /// Kills a task's run (deleted, or no longer wanted).
    pub async fn kill(&self, uid: &str, reason: KillReason) {
        if let Some(r) = self.runs.lock().await.get(uid) {
            r.request_kill(reason, r.grace);
        }
    }

    /// Kills a task that is gone from the API.
    pub async fn forget(&self, t: &Task) {
        let uid = t.uid().unwrap_or_default();
        self.kill(&uid, KillReason::User).await;
        let prefix = format!("{uid}-");
        self.ended.lock().expect("ended lock").retain(|d| {
            !d.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        });
    }

    /// After the first full list of this agent's tasks: kills the runs found
    /// on disk that still run but belong to no task bound here.
    pub async fn reap_orphans(&self) {
        let Ok(entries) = std::fs::read_dir(self.cfg.data_dir.join("executors")) else {
            return;
        };
        let runs = self.runs.lock().await;
        let known: Vec<&PathBuf> = runs.values().map(|r| &r.dir).collect();
        for e in entries.flatten() {
            let dir = e.path();
            if known.contains(&&dir) || dir.join(executor::EXIT).exists() {
                continue;
            }
            let Some(state) = executor::read::<Started>(&dir, executor::STATE) else {
                continue;
            };
            let Some(spec) = executor::read::<ExecSpec>(&dir, executor::SPEC) else {
                continue;
            };
            if !executor::alive(&state) {
                continue;
            }
            tracing::info!(run = %dir.display(), pid = state.pid, "killing a task no longer bound to this agent");
            let (tx, _rx) = mpsc::unbounded_channel();
            let run = Arc::new(Run {
                dir,
                mode: spec.cgroup,
                cgroup_name: spec.cgroup_name,
                pid: AtomicI32::new(state.pid),
                grace: Duration::from_secs(5),
                kill: std::sync::Mutex::new(None),
                events: tx,
            });
            run.request_kill(KillReason::User, run.grace);
        }
    }

    /// Kills every task (when the agent stops and was told to) and waits, up to
    /// 15 s, for their supervisors to report them.
    pub async fn kill_all(&self) {
        for r in self.runs.lock().await.values() {
            r.request_kill(KillReason::Shutdown, Duration::from_secs(2));
        }
        self.drain(Duration::from_secs(15)).await;
    }

    /// Waits up to `limit` for every supervisor to end, then abandons them
    /// (their executors keep running and are adopted by the next agent).
    pub async fn drain(&self, limit: Duration) {
        let mut sup = std::mem::take(&mut *self.supervisors.lock().await);
        let _ =
            tokio::time::timeout(limit, async { while sup.join_next().await.is_some() {} }).await;
        sup.abort_all();
    }

    /// Writes the executor's spec and starts it; returns it with its stdout lines.
    fn start_executor(
        &self,
        t: &Task,
        run: &Run,
    ) -> Result<
        (
            ExecutorProc,
            impl std::future::Future<Output = std::io::Result<()>> + use<>,
        ),
        LaunchError,
    > {
        let limits = Limits {
            cpus_milli: t.spec.cpus_milli(),
            memory_bytes: t.spec.memory_bytes(),
            pids_max: PIDS_MAX,
        };
        let attempt = t.status.as_ref().and_then(|s| s.attempt).unwrap_or(0);
        let sandbox = crate::sandbox_dir(
            &self.cfg.data_dir,
            &t.namespace().unwrap_or_default(),
            &t.name_any(),
            &t.uid().unwrap_or_default(),
            attempt,
        );
        let argv = match (&t.spec.command, &t.spec.args) {
            (Some(c), _) => vec!["/bin/sh".to_string(), "-c".to_string(), c.clone()],
            (None, Some(args)) if !args.is_empty() => args.clone(),
            _ => {
                return Err(LaunchError::Other(
                    "the task has neither command nor args".into(),
                ));
            }
        };
        let isolation = self.isolation(t, &limits)?;
        let env = task_env(t, &sandbox, isolation.as_ref());
        let spec = ExecSpec {
            argv,
            env,
            working_dir: t
                .spec
                .working_dir
                .as_deref()
                .map(PathBuf::from)
                .unwrap_or_else(|| sandbox.clone()),
            sandbox: sandbox.clone(),
            cgroup: self.mode.clone(),
            cgroup_name: run.cgroup_name.clone(),
            limits,
            isolation,
        };
        let io = |what: &str, e: std::io::Error| LaunchError::Other(format!("{what}: {e}"));
        std::fs::create_dir_all(&sandbox).map_err(|e| io("making the sandbox", e))?;
        std::fs::create_dir_all(&run.dir).map_err(|e| io("making the run directory", e))?;
        executor::write_atomically(&run.dir, executor::SPEC, &spec)
            .map_err(|e| io("writing the executor's spec", e))?;
        let mut child = self
            .take_executor()
            .map_err(|e| io(&format!("starting {}", self.cfg.executor.display()), e))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let line = format!("{}\n", run.dir.display());
        let out = child.stdout.take().expect("piped stdout");
        Ok((
            ExecutorProc {
                child,
                lines: tokio::io::BufReader::new(out).lines(),
            },
            async move {
                use tokio::io::AsyncWriteExt;
                stdin.write_all(line.as_bytes()).await
            },
        ))
    }

    /// How the task runs isolated (when the agent is root): its identity
    /// checked against the agent's policy and the API server's grant.
    fn isolation(
        &self,
        t: &Task,
        limits: &Limits,
    ) -> Result<Option<crate::launch::Isolation>, LaunchError> {
        let user = t.spec.user.as_deref();
        if !self.isolate {
            return match user {
                None => Ok(None),
                Some(u) => Err(LaunchError::User(format!(
                    "the task names user {u:?}, and agent {} is not root, so it cannot switch users",
                    self.cfg.name
                ))),
            };
        }
        // The grant is the API server's word only where the API server is
        // Mosaic's (the agent joined with its own identity): on Kubernetes
        // nothing keeps clients from writing the annotation themselves.
        let grant = t
            .annotations()
            .get(crate::users::GRANT_ANNOTATION)
            .map(String::as_str)
            .filter(|_| self.cfg.serving.is_some());
        let identity = self
            .cfg
            .users
            .identity_for(user, grant)
            .map_err(|e| LaunchError::User(e.to_string()))?;
        let mut hide = vec![self.cfg.data_dir.clone()];
        hide.extend(self.cfg.hide.iter().cloned());
        Ok(Some(crate::launch::Isolation {
            identity,
            hide,
            tmp_bytes: limits.memory_bytes,
        }))
    }

    /// An executor waiting for its run directory: one started ahead, or a new one.
    fn take_executor(&self) -> std::io::Result<tokio::process::Child> {
        let spare = self.spare.lock().expect("spare lock").pop();
        match spare {
            Some(c) => Ok(c),
            None => self.spawn_executor(),
        }
    }

    /// Starts executors ahead for the next launches, up to [`SPARES`]; called
    /// once a launch has reported Running, so it is off that launch's path.
    fn refill(self: &Arc<Self>) {
        let runner = self.clone();
        tokio::spawn(async move {
            loop {
                if runner.spare.lock().expect("spare lock").len() >= SPARES {
                    return;
                }
                let Ok(c) = runner.spawn_executor() else {
                    return;
                };
                runner.spare.lock().expect("spare lock").push(c);
            }
        });
    }

    fn spawn_executor(&self) -> std::io::Result<tokio::process::Child> {
        tokio::process::Command::new(&self.cfg.executor)
            .args(["executor", "-"])
            .envs(executor::env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    }

    /// The one writer of a run's status, from launch (or adoption) to its end.
    async fn supervise(
        self: Arc<Self>,
        t: Task,
        run: Arc<Run>,
        mut events: mpsc::UnboundedReceiver<Event>,
        action: Start,
    ) {
        let uid = t.uid().unwrap_or_default();
        let generation = t.metadata.generation;
        let mut reporter = Reporter::new(&t);
        let mut proc = None;
        let began = std::time::Instant::now();
        let started: Option<Started> = match action {
            Start::Launch => match self.start_executor(&t, &run) {
                Ok((mut p, handed)) => {
                    if let Err(e) = handed.await {
                        tracing::warn!(task = %t.name_any(), error = %e, "handing the run to its executor");
                    }
                    let line = {
                        let next = p.lines.next_line();
                        tokio::pin!(next);
                        match tokio::time::timeout(STARTING_AFTER, &mut next).await {
                            Ok(line) => line,
                            Err(_) => {
                                let msg = format!("agent {} is starting it", self.cfg.name);
                                let now = lifecycle::now();
                                let status = lifecycle::starting(&msg, generation, now);
                                reporter.report(&self.client, &t, status).await;
                                next.await
                            }
                        }
                    }
                    .ok()
                    .flatten();
                    proc = Some(p);
                    line.and_then(|l| l.strip_prefix("started ").map(str::to_string))
                        .and_then(|_| executor::read(&run.dir, executor::STATE))
                }
                Err(e) => {
                    self.runs.lock().await.remove(&uid);
                    let status = match e {
                        LaunchError::User(msg) => user_not_allowed(&msg, generation),
                        LaunchError::Other(msg) => launch_failed(&msg, generation),
                    };
                    reporter.report(&self.client, &t, status).await;
                    return;
                }
            },
            Start::Adopt => executor::read(&run.dir, executor::STATE),
        };
        let mut running_now = false;
        if let Some(s) = &started {
            run.pid.store(s.pid, Ordering::Release);
            running_now = action == Start::Launch
                || (!run.dir.join(executor::EXIT).exists() && executor::alive(s));
            let phase = t.status.as_ref().and_then(|s| s.phase);
            if running_now && (action == Start::Launch || phase != Some(TaskPhase::Running)) {
                let msg = format!("running as process {}", s.pid);
                let healthy = t.spec.health_check.is_none();
                reporter
                    .report(
                        &self.client,
                        &t,
                        running(&s.start_time, &msg, healthy, generation),
                    )
                    .await;
                if action == Start::Adopt {
                    tracing::info!(task = %t.name_any(), pid = s.pid, "adopted a task that ran on while the agent was away");
                } else {
                    let took = began.elapsed().as_secs_f64();
                    self.metrics.launch_seconds.observe(took);
                    let msg = format!("started as process {} on agent {}", s.pid, self.cfg.name);
                    crate::events::record(
                        &self.client,
                        &self.cfg.name,
                        &t,
                        "Normal",
                        "Started",
                        &msg,
                    )
                    .await;
                }
            }
        }
        if action == Start::Launch {
            // The next launch's executor starts now, off this one's critical path.
            self.refill();
        }
        if started.is_some() {
            match action {
                Start::Launch => self.metrics.launched.inc(),
                Start::Adopt => self.metrics.adopted.inc(),
            };
            self.metrics.running.inc();
        }
        let mut helpers = tokio::task::JoinSet::new();
        if running_now {
            helpers.spawn(sample_usage(run.clone()));
            if let Some(hc) = t.spec.health_check.clone() {
                let mut target = run_health_target(&run, self.cfg.executor.clone());
                target.ports = t
                    .status
                    .as_ref()
                    .map(|s| s.ports.clone())
                    .unwrap_or_default();
                helpers.spawn(health::check(hc, target));
            }
            helpers.spawn(crate::ports::watch(self.ports_watch(&t, &run)));
        }
        // Wait for the run to end, reporting what the helpers say meanwhile.
        let ended = wait_for_exit(&run, proc);
        tokio::pin!(ended);
        let exited = loop {
            tokio::select! {
                e = &mut ended => break e,
                Some(ev) = events.recv() => match ev {
                    Event::Usage(q) => reporter.report(&self.client, &t, lifecycle::usage(q)).await,
                    Event::Healthy => {
                        let healthy = lifecycle::healthy(generation, lifecycle::now());
                        reporter.report(&self.client, &t, healthy).await;
                    }
                    Event::Killing(reason) => {
                        let (r, m) = describe_kill(&reason);
                        reporter.report(&self.client, &t, lifecycle::killing(r, &m)).await;
                    }
                },
            }
        };
        helpers.abort_all();
        {
            let mut runs = self.runs.lock().await;
            self.ended
                .lock()
                .expect("ended lock")
                .insert(run.dir.clone());
            runs.remove(&uid);
        }
        let kill = run.kill.lock().expect("kill lock").clone();
        let mut status = outcome(&exited, kill.as_ref(), run.cgroup().oom_killed(), &t);
        // A failure that will be retried is not Stalled (kstatus would call it failed for good).
        let phase = status.set.phase;
        let attempt = t.status.as_ref().and_then(|s| s.attempt).unwrap_or(0);
        if t.metadata.deletion_timestamp.is_none()
            && kill != Some(KillReason::User)
            && phase.is_some_and(|p| t.spec.restarts_after(p, attempt))
        {
            status = status.will_restart();
        }
        if started.is_some() {
            self.metrics.running.dec();
        }
        self.metrics.ended(match phase {
            Some(TaskPhase::Finished) => "Finished",
            Some(TaskPhase::Killed) => "Killed",
            _ => "Failed",
        });
        let reason = status.set.reason.clone().unwrap_or_default();
        let message = status.set.message.clone().unwrap_or_default();
        reporter.report(&self.client, &t, status).await;
        let (kind, event) = match reason.as_str() {
            "Completed" => ("Normal", "Finished"),
            "MemoryLimitExceeded" => ("Warning", "OOMKilled"),
            "KilledByUser" => ("Normal", "Killed"),
            "NonZeroExit" => ("Warning", "Failed"),
            other => ("Warning", if other.is_empty() { "Failed" } else { other }),
        };
        crate::events::record(&self.client, &self.cfg.name, &t, kind, event, &message).await;
    }
}

/// Why a run could not be handed to an executor.
enum LaunchError {
    /// The task's user is not allowed here (reason `UserNotAllowed`).
    User(String),
    /// Anything else (reason `LaunchFailed`).
    Other(String),
}

/// A task's whole environment: a default PATH, HOME (its sandbox), USER and
/// LOGNAME when its user has a name, MOSAIC_SANDBOX and MOSAIC_TASK, the
/// host ports it was given (`PORT0`.., `PORT`, `PORT_<NAME>`, `PORTS`), then
/// `spec.env` (which may override any of them). Nothing of the agent's.
fn task_env(
    t: &Task,
    sandbox: &std::path::Path,
    isolation: Option<&crate::launch::Isolation>,
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOME".into(), sandbox.display().to_string()),
    ];
    if let Some(name) = isolation.and_then(|i| i.identity.name.clone()) {
        env.push(("USER".into(), name.clone()));
        env.push(("LOGNAME".into(), name));
    }
    env.push(("MOSAIC_SANDBOX".into(), sandbox.display().to_string()));
    env.push(("MOSAIC_TASK".into(), t.name_any()));
    if let Some(st) = &t.status {
        env.extend(mosaic_crds::ports::env(&st.ports));
    }
    env.extend(t.spec.env.iter().map(|e| (e.name.clone(), e.value.clone())));
    env
}

/// How a supervisor begins.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Start a new executor.
    Launch,
    /// Take over a run an earlier agent started.
    Adopt,
}

/// An executor this agent started, with its stdout.
struct ExecutorProc {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

/// Waits for a run to end: on the executor's stdout when this agent started
/// it, else by watching its files; then reads its recorded outcome.
async fn wait_for_exit(run: &Run, proc: Option<ExecutorProc>) -> Exited {
    if let Some(mut p) = proc {
        while let Ok(Some(_)) = p.lines.next_line().await {}
        let _ = p.child.wait().await;
    } else {
        let state: Option<Started> = executor::read(&run.dir, executor::STATE);
        loop {
            if run.dir.join(executor::EXIT).exists() {
                break;
            }
            match &state {
                Some(s) if executor::alive(s) => tokio::time::sleep(POLL).await,
                _ => {
                    // The executor may have written its outcome just before exiting.
                    break;
                }
            }
        }
    }
    executor::read(&run.dir, executor::EXIT).unwrap_or_else(|| {
        // The executor is gone without a word: nothing may stay behind.
        let cg = run.cgroup();
        cg.signal_all(rustix::process::Signal::KILL);
        cg.remove();
        Exited {
            exit_code: None,
            signal: None,
            oom_killed: false,
            launch_error: Some(
                "the task's executor ended without recording how the task ended".into(),
            ),
            finish_time: now(),
        }
    })
}

impl Runner {
    /// What the watch of a run's listening ports needs.
    fn ports_watch(&self, t: &Task, run: &Arc<Run>) -> crate::ports::Watch {
        let given = t.status.iter().flat_map(|s| s.ports.iter().map(|p| p.port));
        let (run2, run3) = (run.clone(), run.clone());
        crate::ports::Watch {
            policy: self.cfg.port_isolation,
            every: self.cfg.port_check,
            range: self.cfg.held_ports.clone(),
            given: given.collect(),
            sockets: self.sockets.clone(),
            pids: Box::new(move || {
                // With cgroups, every process of the task; without, its main
                // process and all that descend from it.
                if run2.mode != Mode::None {
                    return run2.cgroup().pids();
                }
                match run2.pid.load(Ordering::Acquire) {
                    main if main > 0 => crate::ports::with_descendants(main),
                    _ => Vec::new(),
                }
            }),
            // At once, as Mesos destroys a container on a limitation: no
            // grace period for a task holding what is not its own.
            violated: Box::new(move |msg| {
                run3.request_kill(KillReason::Ports(msg), Duration::ZERO)
            }),
        }
    }
}

/// What the health checker needs of a run.
fn run_health_target(run: &Arc<Run>, executor: PathBuf) -> health::Target {
    let run2 = run.clone();
    let run3 = run.clone();
    health::Target {
        runner: health::Runner::InTask {
            executor,
            run_dir: run.dir.clone(),
        },
        healthy: Box::new(move || {
            let _ = run2.events.send(Event::Healthy);
        }),
        failed: Box::new(move |msg| run3.request_kill(KillReason::HealthCheck(msg), run3.grace)),
        ports: Vec::new(),
    }
}

/// Samples the run's CPU (over the last interval) and memory use.
async fn sample_usage(run: Arc<Run>) {
    let cgroup = run.cgroup();
    let mut last = (std::time::Instant::now(), cgroup.usage().0);
    loop {
        tokio::time::sleep(USAGE_EVERY).await;
        let (cpu_ns, mem) = cgroup.usage();
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(last.0).as_nanos().max(1) as u64;
        let milli = cpu_ns.saturating_sub(last.1) * 1000 / elapsed;
        last = (now, cpu_ns);
        let usage = mosaic_crds::ResourceQuantities::from_units(milli, mem);
        if run.events.send(Event::Usage(usage)).is_err() {
            return;
        }
    }
}
