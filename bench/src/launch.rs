//! Task launch on one agent with real cgroups: latency from the moment a task
//! is bound to the moment the agent reports its process running, and launch
//! throughput, beside the floor measured in the same run: a bare loop that
//! makes a memory cgroup, spawns /bin/true into it, waits and removes it.
//!
//! Then what isolation costs: the executor launching `/bin/true` plainly and
//! isolated (user, namespaces, seccomp), alternated ([`isolation`]).
//!
//! Needs root and cgroups. `cargo run --release -p mosaic-bench --bin launch-bench -- --dir target`

mod isolation;

use anyhow::{Context, Result};
use clap::Parser;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use mosaic_crds::Task;
use serde_json::json;
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Tasks launched one at a time, for latency.
    #[arg(long, default_value_t = 200)]
    serial: usize,
    /// Tasks bound at once, for throughput.
    #[arg(long, default_value_t = 300)]
    burst: usize,
    /// Iterations of the bare spawn-into-cgroup loop.
    #[arg(long, default_value_t = 500)]
    floor: usize,
    /// Pairs of executor launches, plain and isolated.
    #[arg(long, default_value_t = 300)]
    isolation: usize,
    /// Where the server and agent keep their data.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3
}

/// The floor: make a memory cgroup, spawn /bin/true in it, wait, remove it.
fn floor(n: usize) -> Result<Vec<Duration>> {
    let base = PathBuf::from("/sys/fs/cgroup/memory/mosaic-floor");
    let v2 = !PathBuf::from("/sys/fs/cgroup/memory").exists();
    let base = if v2 {
        PathBuf::from("/sys/fs/cgroup/mosaic-floor")
    } else {
        base
    };
    std::fs::create_dir_all(&base)
        .context("making the floor's cgroup (root and cgroups are needed)")?;
    let mut lat = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let dir = base.join(i.to_string());
        std::fs::create_dir(&dir)?;
        let procs = rustix::fs::open(
            dir.join("cgroup.procs"),
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let mut cmd = std::process::Command::new("/bin/true");
        // SAFETY: only write(2) on a descriptor opened before the fork.
        unsafe {
            cmd.pre_exec(move || {
                rustix::io::write(&procs, b"0")?;
                Ok(())
            });
        }
        cmd.status()?;
        std::fs::remove_dir(&dir)?;
        lat.push(t.elapsed());
    }
    let _ = std::fs::remove_dir(&base);
    Ok(lat)
}

fn task(name: &str) -> Task {
    serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": "sleep 2", "resources": {"cpus": "10m", "memory": "16Mi"}, "killGracePeriodSeconds": 1}}))
    .expect("a valid Task")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let floor = floor(args.floor)?;
    let tmp = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let mosaic = std::env::current_exe()?.with_file_name("mosaic");
    let iso_dir = tmp.path().join("isolation");
    std::fs::create_dir_all(&iso_dir)?;
    let iso = isolation::pairs(&mosaic, &iso_dir, args.isolation)?;
    let server = mosaic_apiserver::start(mosaic_apiserver::ServerConfig::new(
        tmp.path().join("server"),
        "127.0.0.1:0".parse()?,
    ))
    .await?;
    // No scheduler: this program binds tasks itself, so the clock starts at the bind.
    let admin = kube::Client::new(server.in_process(), "default");
    // The agent joins as a real one does: its own identity, asked for with
    // the bootstrap credential, then HTTPS with its client certificate.
    let kc = kube::config::Kubeconfig::read_from(&server.agent_kubeconfig)?;
    let base = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let bootstrap = kube::Client::try_from(base.clone())?;
    let id = mosaic_agent::join::request(&bootstrap, "bench-agent", &["127.0.0.1".into()])
        .await?
        .context("the server issued no agent identity")?;
    let agent_client = kube::Client::try_from(mosaic_agent::join::client_config(&base, &id))?;
    let cfg = mosaic_agent::AgentConfig {
        name: "bench-agent".into(),
        data_dir: tmp.path().join("agent"),
        resources: Some((1_000_000, 1 << 40)),
        ports: Default::default(),
        labels: Default::default(),
        cgroup_root: "/sys/fs/cgroup".into(),
        heartbeat: Duration::from_secs(5),
        // The executor is the `mosaic` binary, built next to this one.
        executor: std::env::current_exe()?.with_file_name("mosaic"),
        kill_tasks_on_exit: true,
        listen: None,
        advertise_host: "127.0.0.1".into(),
        port_isolation: mosaic_agent::ports::PortIsolation::Off,
        port_check: Duration::from_secs(5),
        held_ports: Default::default(),
        gc_delay: Duration::from_secs(24 * 3600),
        users: Default::default(),
        limits: Default::default(),
        serving: None,
        hide: vec![tmp.path().to_path_buf()],
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(mosaic_agent::run(agent_client, cfg, async move {
        let _ = stop_rx.await;
    }));
    let api: Api<Task> = Api::namespaced(admin.clone(), "default");
    // Running events, by task name, as this process sees them.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(Ok(t)) = stream.next().await {
            if t.status.as_ref().and_then(|s| s.phase)
                == Some(mosaic_crds::task::TaskPhase::Running)
            {
                let _ = tx.send((t.metadata.name.unwrap_or_default(), Instant::now()));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bind = |name: String| {
        let api = api.clone();
        async move {
            let body = json!({"status": {"phase": "Staging", "agent": "bench-agent"}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map(|_| Instant::now())
        }
    };
    let mut serial = Vec::new();
    for i in 0..args.serial {
        let name = format!("s{i}");
        api.create(&PostParams::default(), &task(&name)).await?;
        let bound = bind(name.clone()).await?;
        loop {
            let (n, at) = rx.recv().await.context("the watch ended")?;
            if n == name {
                serial.push(at.saturating_duration_since(bound));
                break;
            }
        }
    }
    for i in 0..args.burst {
        api.create(&PostParams::default(), &task(&format!("b{i}")))
            .await?;
    }
    let start = Instant::now();
    let mut bound_at = HashMap::new();
    let binds: Vec<_> = (0..args.burst).map(|i| bind(format!("b{i}"))).collect();
    for (i, r) in futures::future::join_all(binds)
        .await
        .into_iter()
        .enumerate()
    {
        bound_at.insert(format!("b{i}"), r?);
    }
    let mut seen = 0;
    while seen < args.burst {
        let (n, _) = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await?
            .context("the watch ended")?;
        if bound_at.contains_key(&n) {
            seen += 1;
        }
    }
    let burst_secs = start.elapsed().as_secs_f64();
    println!("{:<44} {:>9} {:>9}", "launch", "p50 ms", "p99 ms");
    println!(
        "{:<44} {:>9.2} {:>9.2}",
        format!("floor: cgroup + spawn /bin/true + wait ({})", args.floor),
        pct(floor.clone(), 0.5),
        pct(floor, 0.99)
    );
    println!(
        "{:<44} {:>9.2} {:>9.2}",
        format!("mosaic: bound -> Running, one at a time ({})", args.serial),
        pct(serial.clone(), 0.5),
        pct(serial, 0.99)
    );
    println!(
        "mosaic: {} tasks bound at once, all Running in {:.2} s = {:.0} launches/s",
        args.burst,
        burst_secs,
        args.burst as f64 / burst_secs
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9}",
        "executor, /bin/true", "run p50", "run p99", "end p50", "end p99"
    );
    for (what, runs) in [("plain", &iso.plain), ("isolated", &iso.isolated)] {
        let started: Vec<Duration> = runs.iter().map(|r| r.0).collect();
        let ended: Vec<Duration> = runs.iter().map(|r| r.1).collect();
        println!(
            "{:<44} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            format!("{what} ({} runs, alternated)", runs.len()),
            pct(started.clone(), 0.5),
            pct(started, 0.99),
            pct(ended.clone(), 0.5),
            pct(ended, 0.99)
        );
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(60), agent).await;
    server.stop().await;
    Ok(())
}
