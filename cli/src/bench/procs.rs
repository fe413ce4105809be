//! The benchmark's control plane as child processes: `mosaic server` (API
//! server and controllers) and `mosaic agent --simulate --count N`, started
//! from this same binary, with the server's memory read from /proc.

use super::workload::Plan;
use anyhow::{Context, bail};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// The running control plane.
pub struct Cluster {
    server: Child,
    agents: Child,
    /// An admin client.
    pub client: kube::Client,
}

/// What is read when the cluster stops.
pub struct End {
    /// The server's peak resident memory (VmHWM).
    pub peak_rss_bytes: u64,
}

/// Resident memory of a process: (now, peak), from /proc/PID/status.
pub fn rss(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// The machine the figures come from: its cores and CPU model (from
/// /proc/cpuinfo), since the same build measures very differently on
/// different processors.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // The first processor's fields: "model name", "cpu family", "model".
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("{cores} cores, {model} (family {f}, model {m})"),
        _ => format!("{cores} cores, {model}"),
    }
}

/// CPU time a process has used (user + system), from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

impl Cluster {
    /// Starts the server, waits for it to listen, then starts the agents and
    /// waits until every one is registered and Ready.
    pub async fn start(dir: &Path, plan: &Plan) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the mosaic binary")?;
        let server_dir = dir.join("server");
        let mut server = Command::new(&exe)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&server_dir)
            .env(
                "RUST_LOG",
                std::env::var("MOSAIC_BENCH_SERVER_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting mosaic server")?;
        let stdout = server.stdout.take().context("the server's stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line.starts_with("Mosaic API server listening on ") {
                    return Ok(());
                }
            }
            bail!("mosaic server ended before it listened")
        })
        .await
        .context("mosaic server did not listen within 60 s")??;
        // Keep reading, so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let client = crate::cluster::client(Some(&server_dir.join("kubeconfig"))).await?;
        let agents = Command::new(&exe)
            .args(["agent", "--simulate", "--name", "sim", "--count"])
            .arg(plan.agents.to_string())
            .args(["--resources", &plan.agent_resources])
            // One renewal every 10 s per agent, as the kubelet's node Lease.
            // Simulated agents share one client, the admin's: a real agent
            // has its own identity, which one process of many agents cannot.
            .args(["--heartbeat-seconds", "10", "--kubeconfig"])
            .arg(server_dir.join("kubeconfig"))
            .arg("--data-dir")
            .arg(dir.join("agents"))
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .context("starting the simulated agents")?;
        let mut cluster = Self {
            server,
            agents,
            client,
        };
        cluster.wait_for_agents(plan.agents).await?;
        Ok(cluster)
    }

    /// The server's process id.
    pub fn server_pid(&self) -> u32 {
        self.server.id().unwrap_or(0)
    }

    /// CPU seconds used so far by the server, the agents and this process.
    pub fn cpu(&self) -> [f64; 3] {
        [
            cpu_seconds(self.server_pid()),
            cpu_seconds(self.agents.id().unwrap_or(0)),
            cpu_seconds(std::process::id()),
        ]
    }

    async fn wait_for_agents(&mut self, n: usize) -> anyhow::Result<()> {
        let api: kube::Api<mosaic_crds::Agent> = kube::Api::all(self.client.clone());
        let start = Instant::now();
        loop {
            let ready = api
                .list(&Default::default())
                .await?
                .items
                .iter()
                .filter(|a| {
                    a.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count();
            if ready >= n {
                eprintln!(
                    "mosaic bench: {n} agents Ready in {:.1} s",
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if let Some(status) = self.agents.try_wait()? {
                bail!("the simulated agents ended ({status}) with {ready} of {n} Ready");
            }
            if start.elapsed() > Duration::from_secs(300) {
                bail!("only {ready} of {n} agents were Ready after 300 s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Reads the server's peak memory, then stops both processes.
    pub async fn stop(mut self) -> anyhow::Result<End> {
        let (_, peak) = rss(self.server_pid())?;
        for child in [&mut self.agents, &mut self.server] {
            if let Some(pid) = child.id() {
                // SAFETY: signalling our own child, which has not been reaped.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        Ok(End {
            peak_rss_bytes: peak,
        })
    }
}

/// Metrics as (name, value) pairs.
pub type Metrics = [(String, f64)];

/// The server's metrics.
pub async fn metrics(client: &kube::Client) -> anyhow::Result<Vec<(String, f64)>> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client
        .request_text(req)
        .await
        .context("reading the server's /metrics")?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect())
}

/// One metric's value (0 when absent).
pub fn metric(all: &Metrics, name: &str) -> f64 {
    all.iter().find(|(n, _)| n == name).map_or(0.0, |(_, v)| *v)
}
