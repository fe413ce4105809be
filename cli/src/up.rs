//! `mosaic up`: the API server on its embedded store, the controllers and
//! local agents in one process, until SIGINT or SIGTERM. With `--demo`, it
//! also runs a Hello World task and prints what it wrote.

use crate::cluster;
use crate::server::{init_logging, wait_for_signal};
use anyhow::Context;
use clap::Args;
use kube::api::{Api, PostParams};
use mosaic_crds::Task;
use mosaic_crds::task::TaskPhase;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `mosaic up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where the store, credentials, kubeconfigs and task sandboxes live.
    #[arg(long, default_value = "./mosaic-data", env = "MOSAIC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address and port of the API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Local agents to run (the machine's resources are split between them).
    #[arg(long, default_value_t = 1)]
    pub agents: usize,
    /// What the local agents offer in all, e.g. `cpus=2,memory=4Gi,ports=[31000-32000]`
    /// (default: what the machine has, and ports 31000-32000, split between the agents).
    #[arg(long, default_value = "")]
    pub agent_resources: String,
    /// Simulated agents to run besides (no processes; for trying scale), each
    /// offering cpus=8,memory=32Gi.
    #[arg(long, default_value_t = 0)]
    pub simulated_agents: usize,
    /// Run a Hello World task once the cluster is up, and print its output.
    #[arg(long)]
    pub demo: bool,
    #[command(flatten)]
    pub users: crate::agent::TaskUserArgs,
    #[command(flatten)]
    pub ports: crate::agent::PortArgs,
    #[command(flatten)]
    pub listener: crate::limits::ListenerArgs,
    #[command(flatten)]
    pub marathon: crate::marathon::MarathonArgs,
}

/// Runs the cluster until a signal.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    init_logging();
    crate::limits::raise_open_files();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let data_dir = std::path::absolute(&args.data_dir).unwrap_or(args.data_dir.clone());
        let mut server_cfg = mosaic_apiserver::ServerConfig::new(data_dir.clone(), args.listen);
        server_cfg.limits = args.listener.limits();
        let server = crate::cluster::start_server(server_cfg).await?;
        let marathon =
            crate::marathon::start(&args.marathon, &server, &data_dir, args.listener.limits())
                .await?;
        let admin = crate::in_process::admin(&server);
        // Elected as `mosaic server` and `mosaic controllers` are. Only one
        // `mosaic up` runs on its data at a time, so its identity stays the
        // same across restarts: one started again leads at once, not after
        // its predecessor's Lease runs out.
        let controllers = tokio::spawn(mosaic_controllers::manager::run_elected(
            crate::in_process::controllers(&server),
            Default::default(),
            format!("mosaic-up@{}", cluster::hostname()),
            std::time::Duration::from_secs(15),
        ));

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (cpus, memory) = cluster::parse_resources(&args.agent_resources)?;
        let n = args.agents.max(1);
        // Agents on one machine share its ports: each offers its own share.
        let all_ports = cluster::parse_ports(&args.agent_resources)?;
        let mut ports = all_ports.split(n).into_iter();
        let mut agents = Vec::new();
        let (port_isolation, port_check) = args.ports.policy()?;
        let mut agent_dirs = Vec::new();
        for i in 0..n {
            let name = if n == 1 {
                cluster::hostname()
            } else {
                format!("{}-{i}", cluster::hostname())
            };
            let dir = data_dir.join("agents").join(&name);
            agent_dirs.push(dir.clone());
            let (client, serving) = crate::join::agent_client(
                Some(&server.agent_kubeconfig),
                &name,
                &dir,
                &["127.0.0.1".to_string(), "localhost".to_string()],
            )
            .await?;
            let cfg = mosaic_agent::AgentConfig {
                name,
                data_dir: dir,
                serving,
                resources: Some((cpus / n as u64, memory / n as u64)),
                ports: ports.next().unwrap_or_default(),
                port_isolation,
                port_check,
                held_ports: all_ports.clone(),
                labels: Default::default(),
                cgroup_root: "/sys/fs/cgroup".into(),
                heartbeat: Duration::from_secs(5),
                executor: std::env::current_exe().context("finding the mosaic binary")?,
                kill_tasks_on_exit: true,
                listen: Some(([127, 0, 0, 1], 0).into()),
                advertise_host: "127.0.0.1".into(),
                gc_delay: std::time::Duration::from_secs(24 * 3600),
                users: args.users.policy(),
                limits: args.listener.limits(),
                // The server's data dir (store, CA key, admin credentials) is hidden from tasks.
                hide: vec![data_dir.clone()],
            };
            let mut stop = stop_rx.clone();
            agents.push(tokio::spawn(async move {
                mosaic_agent::run(client, cfg, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
            }));
        }
        if args.simulated_agents > 0 {
            let base = mosaic_agent::AgentConfig {
                name: "sim".into(),
                data_dir: data_dir.join("agents").join("simulated"),
                resources: Some((8000, 32 << 30)),
                ports: mosaic_crds::ports::PortRanges::mesos_default(),
                port_isolation: mosaic_agent::ports::PortIsolation::Off,
                port_check,
                held_ports: Default::default(),
                labels: Default::default(),
                cgroup_root: "/sys/fs/cgroup".into(),
                heartbeat: Duration::from_secs(5),
                executor: std::env::current_exe().context("finding the mosaic binary")?,
                kill_tasks_on_exit: true,
                listen: None,
                advertise_host: "127.0.0.1".into(),
                gc_delay: std::time::Duration::from_secs(24 * 3600),
                users: Default::default(),
                hide: Vec::new(),
                limits: Default::default(),
                serving: None,
            };
            let mut cfgs = crate::agent::simulated(&base, args.simulated_agents.max(2));
            cfgs.truncate(args.simulated_agents);
            // Simulated agents (a test harness, not machines) share the admin's client.
            let client =
                cluster::component_client(Some(&server.admin_kubeconfig), "mosaic-agent").await?;
            let mut stop = stop_rx.clone();
            agents.push(tokio::spawn(async move {
                mosaic_agent::simulate::run(client, cfgs, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
            }));
        }
        println!(
            "Mosaic is up: API server {} with {n} local agent(s); data in {}",
            server.url,
            data_dir.display()
        );
        println!(
            "Point kubectl at it:  export KUBECONFIG={}",
            server.admin_kubeconfig.display()
        );
        println!("Then try:             kubectl get agents,tasks");
        if args.demo {
            demo(&admin, &agent_dirs).await;
        }
        wait_for_signal().await;
        println!("Stopping: killing running tasks, then the agents and the API server");
        let _ = stop_tx.send(true);
        for a in agents {
            match tokio::time::timeout(Duration::from_secs(30), a).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "agent ended with an error"),
                Err(_) => tracing::warn!("an agent did not stop within 30 s"),
                _ => {}
            }
        }
        controllers.abort();
        if let Some(m) = marathon {
            m.abort();
        }
        server.stop().await;
        Ok(())
    })
}

/// Runs the Hello World task and prints how it went.
async fn demo(client: &kube::Client, agent_dirs: &[PathBuf]) {
    let api: Api<Task> = Api::namespaced(client.clone(), "default");
    let name = format!("hello-world-{}", std::process::id());
    let task: Task = serde_json::from_value(serde_json::json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": "echo Hello World", "resources": {"cpus": "100m", "memory": "32Mi"}}}))
    .expect("a valid Task");
    if let Err(e) = api.create(&PostParams::default(), &task).await {
        println!("demo: could not create task {name}: {e}");
        return;
    }
    println!("demo: created task {name} (kubectl get task {name})");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if let Ok(t) = api.get(&name).await {
            let st = t.status.clone().unwrap_or_default();
            if matches!(
                st.phase,
                Some(
                    TaskPhase::Finished | TaskPhase::Failed | TaskPhase::Killed | TaskPhase::Error
                )
            ) {
                let out = read_output(agent_dirs, &t).unwrap_or_default();
                println!(
                    "demo: task {name} {:?} on agent {} (exit code {}); it printed: {}",
                    st.phase.unwrap_or_default(),
                    st.agent.unwrap_or_default(),
                    st.exit_code.map_or("-".into(), |c| c.to_string()),
                    out.trim()
                );
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("demo: task {name} did not finish within 60 s; see kubectl describe task {name}");
}

/// A finished task's stdout, from the sandbox of the local agent that ran it.
fn read_output(agent_dirs: &[PathBuf], t: &Task) -> Option<String> {
    use kube::ResourceExt;
    let attempt = t.status.as_ref().and_then(|s| s.attempt).unwrap_or(0);
    let (ns, uid) = (
        t.namespace().unwrap_or_default(),
        t.uid().unwrap_or_default(),
    );
    agent_dirs.iter().find_map(|d| {
        std::fs::read_to_string(
            mosaic_agent::sandbox_dir(d, &ns, &t.name_any(), &uid, attempt).join("stdout"),
        )
        .ok()
    })
}
