//! What `mosaic bench` submits (roles, frameworks and groups of tasks, from a
//! shape or flags) and how: many concurrent clients creating tasks, frameworks
//! interleaved as independent users would be, while one watch records when
//! each task is bound and Running.

use super::report::Figures;
use super::{BenchArgs, Shape, procs};
use anyhow::{Context, bail};
use futures::StreamExt;
use kube::api::{Api, ApiResource, PostParams};
use kube::core::object::{NotUsed, Object};
use kube::runtime::{WatchStreamExt, watcher};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Framework, Role, Task};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frameworks with the same number of tasks of the same size.
#[derive(Clone, Debug)]
pub struct Group {
    /// How many frameworks.
    pub frameworks: usize,
    /// Tasks per framework.
    pub tasks_each: usize,
    /// Each task's cpus, in thousandths.
    pub cpus_milli: u64,
    /// Each task's memory, in bytes.
    pub memory: u64,
}

/// One task to submit.
#[derive(Clone, Debug)]
pub struct TaskPlan {
    /// Its framework.
    pub framework: String,
    /// Its name.
    pub name: String,
    /// Its cpus, in thousandths.
    pub cpus_milli: u64,
    /// Its memory, in bytes.
    pub memory: u64,
}

/// The whole workload.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Simulated agents.
    pub agents: usize,
    /// What each offers (`cpus=..,memory=..`).
    pub agent_resources: String,
    /// Roles the frameworks are spread over.
    pub roles: usize,
    /// The frameworks and their tasks.
    pub groups: Vec<Group>,
}

impl Plan {
    /// The plan a shape and the flags describe.
    pub fn from_args(a: &BenchArgs) -> anyhow::Result<Self> {
        let (agents, tasks, frameworks, roles, agent_res, task_res) = match a.shape {
            None => (
                100,
                10_000,
                10,
                2,
                "cpus=32,memory=128Gi",
                "cpus=100m,memory=64Mi",
            ),
            Some(Shape::A) => (
                1_000,
                100_000,
                100,
                4,
                "cpus=32,memory=128Gi",
                "cpus=100m,memory=64Mi",
            ),
            Some(Shape::B) => (
                5_000,
                50_000,
                10,
                2,
                "cpus=32,memory=128Gi",
                "cpus=100m,memory=64Mi",
            ),
            Some(Shape::App) => (
                1_000,
                10_000,
                10,
                2,
                "cpus=32,memory=128Gi",
                "cpus=100m,memory=64Mi",
            ),
            Some(Shape::C) => (
                80,
                20_500,
                554,
                1,
                "cpus=64,memory=256Gi",
                "cpus=100m,memory=32Mi",
            ),
        };
        let agent_resources = a.agent_resources.clone().unwrap_or(agent_res.into());
        crate::cluster::parse_resources(&agent_resources)?;
        let (cpus_milli, memory) =
            crate::cluster::parse_resources(a.task_resources.as_deref().unwrap_or(task_res))?;
        let custom = a.tasks.is_some() || a.frameworks.is_some() || a.task_resources.is_some();
        let groups = match a.shape {
            Some(Shape::C) if !custom => vec![
                Group {
                    frameworks: 4,
                    tasks_each: 4_000,
                    cpus_milli: 70,
                    memory,
                },
                Group {
                    frameworks: 500,
                    tasks_each: 5,
                    cpus_milli: 100,
                    memory,
                },
                Group {
                    frameworks: 50,
                    tasks_each: 20,
                    cpus_milli: 1_000,
                    memory,
                },
            ],
            _ => {
                let (tasks, frameworks) =
                    (a.tasks.unwrap_or(tasks), a.frameworks.unwrap_or(frameworks));
                if frameworks == 0 || tasks % frameworks != 0 {
                    bail!("--tasks ({tasks}) must be a multiple of --frameworks ({frameworks})");
                }
                vec![Group {
                    frameworks,
                    tasks_each: tasks / frameworks,
                    cpus_milli,
                    memory,
                }]
            }
        };
        Ok(Self {
            agents: a.agents.unwrap_or(agents),
            agent_resources,
            roles: a.roles.unwrap_or(roles).max(1),
            groups,
        })
    }

    /// Tasks in all.
    pub fn total_tasks(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.frameworks * g.tasks_each)
            .sum()
    }

    /// The cluster's cpus, in thousandths.
    pub fn cluster_cpus_milli(&self) -> u64 {
        let (cpus, _) = crate::cluster::parse_resources(&self.agent_resources).unwrap_or((0, 0));
        cpus * self.agents as u64
    }

    /// Every task, frameworks interleaved.
    pub fn tasks(&self) -> Vec<TaskPlan> {
        let mut queues = Vec::new();
        for g in &self.groups {
            for _ in 0..g.frameworks {
                let fw = format!("fw-{}", queues.len());
                let q: Vec<_> = (0..g.tasks_each)
                    .map(|i| TaskPlan {
                        framework: fw.clone(),
                        name: format!("{fw}-{i}"),
                        cpus_milli: g.cpus_milli,
                        memory: g.memory,
                    })
                    .collect();
                queues.push(q.into_iter());
            }
        }
        let mut out = Vec::with_capacity(self.total_tasks());
        loop {
            let before = out.len();
            for q in &mut queues {
                out.extend(q.next());
            }
            if out.len() == before {
                return out;
            }
        }
    }

    fn framework_count(&self) -> usize {
        self.groups.iter().map(|g| g.frameworks).sum()
    }
}

/// A Task as the watch reads it: its status's phase and agent, nothing else.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(super) struct Progress {
    phase: Option<TaskPhase>,
    agent: Option<String>,
}

pub(super) type Lite = Object<NotUsed, Progress>;

/// When each task was bound and Running, as this process saw it.
#[derive(Default)]
pub struct Seen {
    /// By task name.
    pub bound: HashMap<String, Instant>,
    /// By task name.
    pub running: HashMap<String, Instant>,
}

/// How the tasks are submitted.
pub struct Load {
    /// Concurrent clients.
    pub clients: usize,
    /// Tasks per second in all; 0 for as fast as the clients go.
    pub rate: f64,
    /// How long to wait for all to run.
    pub timeout: Duration,
}

/// Creates the roles and frameworks, submits the tasks, waits for all to run.
pub async fn run(cluster: &procs::Cluster, plan: &Plan, load: &Load) -> anyhow::Result<Figures> {
    let (clients, timeout) = (load.clients, load.timeout);
    let client = &cluster.client;
    let roles: Api<Role> = Api::all(client.clone());
    for r in 0..plan.roles {
        let role: Role = serde_json::from_value(json!({
            "apiVersion": "mosaic.dev/v1alpha1", "kind": "Role",
            "metadata": {"name": format!("role-{r}")}, "spec": {"weight": (r + 1) as f64}}))?;
        roles.create(&PostParams::default(), &role).await?;
    }
    let fws: Api<Framework> = Api::namespaced(client.clone(), "default");
    for f in 0..plan.framework_count() {
        let fw: Framework = serde_json::from_value(json!({
            "apiVersion": "mosaic.dev/v1alpha1", "kind": "Framework",
            "metadata": {"name": format!("fw-{f}")},
            "spec": {"role": format!("role-{}", f % plan.roles)}}))?;
        fws.create(&PostParams::default(), &fw).await?;
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let watch = tokio::spawn(watch_progress(client.clone(), seen.clone(), count_tx));
    let rss_before = procs::rss(cluster.server_pid())?.0;
    let metrics_before = procs::metrics(client).await?;
    let cpu_before = cluster.cpu();

    let tasks = plan.tasks();
    let total = tasks.len();
    let api: Api<Task> = Api::namespaced(client.clone(), "default");
    let created = Arc::new(Mutex::new(HashMap::with_capacity(total)));
    let start = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(tasks.iter().cloned().enumerate())
        .map(|(i, tp)| {
            let (api, created) = (api.clone(), created.clone());
            let due = (load.rate > 0.0).then(|| start + Duration::from_secs_f64(i as f64 / load.rate));
            async move {
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let t: Task = serde_json::from_value(json!({
                    "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": tp.name},
                    "spec": {"command": "true", "framework": tp.framework,
                             "resources": {"cpus": format!("{}m", tp.cpus_milli), "memory": tp.memory.to_string()}}}))?;
                let sent = Instant::now();
                api.create(&PostParams::default(), &t)
                    .await
                    .with_context(|| format!("creating task {}", tp.name))?;
                created.lock().expect("not poisoned").insert(tp.name, sent);
                Ok(())
            }
        })
        .buffer_unordered(clients.max(1))
        .collect()
        .await;
    let submitted = start.elapsed();
    for r in results {
        r?;
    }
    eprintln!(
        "mosaic bench: {total} tasks created in {:.1} s ({:.0}/s)",
        submitted.as_secs_f64(),
        total as f64 / submitted.as_secs_f64()
    );
    let all_running = tokio::time::timeout(timeout.saturating_sub(submitted), async {
        let mut last_report = Instant::now();
        loop {
            let n = *count_rx.borrow_and_update();
            if n >= total {
                return Ok(());
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "mosaic bench: {n} of {total} Running after {:.0} s",
                    start.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
            if count_rx.changed().await.is_err() {
                bail!("the task watch ended");
            }
        }
    })
    .await;
    let rss_after = procs::rss(cluster.server_pid())?.0;
    let metrics_after = procs::metrics(client).await?;
    let cpu_after = cluster.cpu();
    watch.abort();
    let seen = std::mem::take(&mut *seen.lock().expect("not poisoned"));
    let created = std::mem::take(&mut *created.lock().expect("not poisoned"));
    let mut figures = Figures::compute(
        plan,
        &tasks,
        &created,
        &seen,
        submitted,
        (&metrics_before, &metrics_after),
        rss_after.saturating_sub(rss_before),
    );
    figures.cpu_seconds = std::array::from_fn(|i| cpu_after[i] - cpu_before[i]);
    match all_running {
        Ok(r) => r.map(|()| figures),
        Err(_) => {
            figures.print(plan);
            bail!(
                "only {} of {total} tasks were Running after {timeout:?}",
                seen.running.len()
            )
        }
    }
}

/// Watches every Task, recording when each is first seen bound and Running.
async fn watch_progress(
    client: kube::Client,
    seen: Arc<Mutex<Seen>>,
    count: tokio::sync::watch::Sender<usize>,
) {
    let ar = ApiResource::erase::<Task>(&());
    let api: Api<Lite> = Api::namespaced_with(client, "default", &ar);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        let Ok(t) = ev else { continue };
        let (Some(name), Some(st)) = (t.metadata.name, t.status) else {
            continue;
        };
        let now = Instant::now();
        let mut s = seen.lock().expect("not poisoned");
        if st.agent.is_some() {
            s.bound.entry(name.clone()).or_insert(now);
        }
        // The first time it is seen Running counts.
        if st.phase == Some(TaskPhase::Running) && !s.running.contains_key(&name) {
            s.running.insert(name, now);
            let n = s.running.len();
            drop(s);
            count.send_replace(n);
        }
    }
}
