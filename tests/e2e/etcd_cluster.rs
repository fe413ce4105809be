//! Real etcd 3.4 members (Debian's etcd-server) on loopback ports, and a TCP
//! balancer in front of several servers, for the high-availability tests.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary: `$ETCD`, else `/usr/bin/etcd` (`tests/run` installs it).
fn etcd_bin() -> PathBuf {
    std::env::var_os("ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/etcd".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Member {
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// An etcd cluster whose members are killed when it is dropped.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    /// Serve clients over TLS with these PEM files, requiring a client certificate.
    tls: Option<PathBuf>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until each reports itself healthy.
    pub fn start(n: usize) -> Result<Self> {
        Self::start_with(n, None)
    }

    /// One member serving clients over TLS (`server.crt`/`server.key` from
    /// `certs`) that requires a client certificate signed by `certs/ca.crt`.
    pub fn start_tls(certs: &std::path::Path) -> Result<Self> {
        Self::start_with(1, Some(certs.to_path_buf()))
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    fn start_with(n: usize, tls: Option<PathBuf>) -> Result<Self> {
        let mut c = Self {
            tls,
            dir: tempfile::tempdir()?,
            members: (0..n)
                .map(|_| Member {
                    client: free_port(),
                    peer: free_port(),
                    child: None,
                })
                .collect(),
        };
        for i in 0..n {
            c.spawn(i)?;
        }
        for i in 0..n {
            c.wait_healthy(i, Duration::from_secs(30))?;
        }
        Ok(c)
    }

    /// The client URLs, comma-separated, as `--etcd-endpoints` takes them.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}://127.0.0.1:{}", self.scheme(), m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let cluster = self
            .members
            .iter()
            .enumerate()
            .map(|(j, m)| format!("m{j}=http://127.0.0.1:{}", m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let m = &self.members[i];
        let client_url = format!("{}://127.0.0.1:{}", self.scheme(), m.client);
        let mut tls_args = Vec::new();
        if let Some(certs) = &self.tls {
            let f = |n: &str| certs.join(n).to_string_lossy().into_owned();
            tls_args = vec![
                "--cert-file".to_string(),
                f("server.crt"),
                "--key-file".into(),
                f("server.key"),
                "--trusted-ca-file".into(),
                f("ca.crt"),
                "--client-cert-auth".into(),
            ];
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))?;
        let child = Command::new(etcd_bin())
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(self.dir.path().join(format!("m{i}")))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer),
                "--initial-cluster",
                &cluster,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "mosaic-e2e",
                // Loopback: short heartbeats and elections keep the tests quick.
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ])
            .args(&tls_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (Debian: apt-get install etcd-server)",
                    etcd_bin().display()
                )
            })?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data dir; it rejoins the cluster.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)
    }

    /// Waits until member `i` answers `/health` with true (it has a leader and a quorum).
    pub fn wait_healthy(&self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let port = self.members[i].client;
        let log = self.dir.path().join(format!("m{i}.log"));
        while Instant::now() < deadline {
            let healthy = if self.tls.is_some() {
                // No TLS client here: etcd's log says when it serves.
                std::fs::read_to_string(&log)
                    .is_ok_and(|l| l.contains("ready to serve client requests"))
            } else {
                health(port).is_some_and(|b| b.contains(r#""health":"true""#))
            };
            if healthy {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "etcd member m{i} not healthy within {timeout:?}; its log:\n{}",
            crate::support::log_tail(&self.dir.path().join(format!("m{i}.log")), 20)
        )
    }
}

fn health(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A TCP balancer on a loopback port: each connection goes to the first of
/// `backends` that accepts it (TLS passes through; the servers' certificates
/// name 127.0.0.1, so clients verify them as usual).
pub struct Balancer {
    /// The port clients connect to.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Starts balancing over `backends` (ports on 127.0.0.1).
    pub async fn start(backends: Vec<u16>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let backends = backends.clone();
                tokio::spawn(async move {
                    for b in backends {
                        if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", b)).await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { port, task })
    }

    /// A copy of the kubeconfig at `from` that points at the balancer.
    pub fn kubeconfig(&self, from: &std::path::Path, server_port: u16, to: &std::path::Path) {
        let text = std::fs::read_to_string(from).expect("reading a kubeconfig");
        let text = text.replace(
            &format!("https://127.0.0.1:{server_port}"),
            &format!("https://127.0.0.1:{}", self.port),
        );
        std::fs::write(to, text).expect("writing a kubeconfig");
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
