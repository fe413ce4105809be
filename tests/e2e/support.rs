//! Test harness: a real `mosaic server` process in its own temp dir on a free
//! port, the real kubectl binary pointed at it, and kube-rs clients.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `mosaic` binary Cargo built for these tests.
pub fn mosaic_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mosaic"))
}

/// The kubectl 1.37 binary: `$KUBECTL`, else `.tools/bin/kubectl` (installed by
/// `tests/run`), else `kubectl` on PATH.
pub fn kubectl_bin() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return k.into();
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/kubectl");
    if local.exists() {
        return local;
    }
    "kubectl".into()
}

/// A log file to append a child's stderr to (kept in the test's temp dir).
fn log_file(path: &Path) -> Stdio {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => f.into(),
        Err(_) => Stdio::null(),
    }
}

/// The last lines of a log in the test's temp dir, for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running `mosaic server`, killed when dropped.
pub struct TestServer {
    /// Its data dir (removed when dropped).
    pub dir: tempfile::TempDir,
    /// Its port, kept across restarts.
    pub port: u16,
    child: Option<Child>,
    extra_args: Vec<String>,
}

impl TestServer {
    /// Starts a server in a new temp dir on a free port.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a server with extra flags.
    pub fn start_with(extra: &[&str]) -> Result<Self> {
        Self::start_in(tempfile::tempdir()?, extra)
    }

    /// Starts a server on an existing data dir (a restored backup), with extra flags.
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Result<Self> {
        let mut s = Self {
            dir,
            port: 0,
            child: None,
            extra_args: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.launch()?;
        Ok(s)
    }

    fn launch(&mut self) -> Result<()> {
        let mut child = Command::new(mosaic_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log_file(&self.dir.path().join("server.log")))
            .stdin(Stdio::null())
            .spawn()
            .context("spawning mosaic server")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .context("mosaic server did not print its listening line within 30 s")?;
            if let Some(url) = line.strip_prefix("Mosaic API server listening on ") {
                self.port = url.rsplit(':').next().unwrap_or("0").parse()?;
                return Ok(());
            }
        }
    }

    /// `DATA_DIR/kubeconfig`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `DATA_DIR/agent.kubeconfig`.
    pub fn agent_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("agent.kubeconfig")
    }

    /// The server process's id (it names the server as a leader candidate).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data dir and port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.launch()
    }

    /// Runs kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("running kubectl")
    }

    /// A kubectl command with the admin kubeconfig, not yet run.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_bin());
        c.env("KUBECONFIG", self.kubeconfig())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs kubectl and fails the test unless it exits 0; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A kubeconfig (in the data dir) for the ServiceAccount `namespace/name`,
    /// created if missing, with a token from `kubectl create token`.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let exists = self.kubectl(&["get", "serviceaccount", name, "-n", namespace]);
        if !exists.status.success() {
            self.kubectl_ok(&["create", "serviceaccount", name, "-n", namespace]);
        }
        let token = self.kubectl_ok(&["create", "token", name, "-n", namespace]);
        let path = self
            .dir
            .path()
            .join(format!("{namespace}-{name}.kubeconfig"));
        std::fs::write(&path, with_token(&self.kubeconfig(), token.trim()))
            .expect("writing a kubeconfig");
        path
    }

    /// The sandbox of run `attempt` of task `ns/name` (uid `uid`) on agent
    /// `agent` started by [`TestServer::spawn_agent`]. (Tasks see no path
    /// outside their task's directory: a test hands them files through it.)
    pub fn sandbox(&self, agent: &str, ns: &str, name: &str, uid: &str, attempt: u32) -> PathBuf {
        self.dir
            .path()
            .join("agents")
            .join(agent)
            .join("sandboxes")
            .join(ns)
            .join(format!("{name}-{uid}"))
            .join(attempt.to_string())
    }

    /// Runs Helm 4 with the admin kubeconfig and a Helm home of this test's own.
    pub fn helm(&self, args: &[&str]) -> Output {
        let home = self.dir.path().join("helm-home");
        Command::new(helm_bin())
            .current_dir(repo_root())
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .stdin(Stdio::null())
            .output()
            .expect("running helm")
    }

    /// A kube-rs client with the admin identity.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from(&self.kubeconfig()).await
    }
}

/// The kubeconfig at `admin` with its user's token replaced by `token`.
pub fn with_token(admin: &Path, token: &str) -> String {
    let text = std::fs::read_to_string(admin).expect("reading the admin kubeconfig");
    text.lines()
        .map(|l| match l.split_once("token: ") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}token: {token}"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A kube-rs client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// Waits for `cond` to hold, polling, for at most `timeout`; fails with `what`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut cond: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// Writes `contents` to a file in `dir` and returns its path as a string.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("writing a test file");
    p.to_string_lossy().into_owned()
}

/// A Task manifest.
pub fn task_yaml(name: &str, cpus: &str) -> String {
    format!(
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: {name}\n  labels:\n    app: demo\nspec:\n  command: echo Hello World\n  resources:\n    cpus: {cpus}\n    memory: 64Mi\n"
    )
}

/// A Mosaic kind as a kube-rs dynamic resource.
pub fn mosaic(kind: &str, plural: &str) -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: "mosaic.dev".into(),
        version: "v1alpha1".into(),
        api_version: "mosaic.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Tasks in the `default` namespace.
pub fn tasks_api(client: kube::Client) -> kube::Api<kube::api::DynamicObject> {
    kube::Api::namespaced_with(client, "default", &mosaic("Task", "tasks"))
}

/// A minimal Task object.
pub fn task(name: &str) -> kube::api::DynamicObject {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name}, "spec": {"command": "true"}}))
    .expect("a valid Task")
}

/// A child process killed (SIGKILL) when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    /// SIGTERM first, so an agent kills its tasks and removes their cgroups; SIGKILL after 10 s.
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl TestServer {
    /// Starts `mosaic agent` against this server with the agent identity.
    pub fn spawn_agent(&self, name: &str, resources: &str) -> ChildGuard {
        self.spawn_agent_with(name, resources, &[])
    }

    /// Starts `mosaic agent` with extra flags.
    /// Simulated agents (`--simulate`) take the admin's kubeconfig: one process
    /// of many agents has no identity of its own.
    pub fn spawn_agent_with(&self, name: &str, resources: &str, extra: &[&str]) -> ChildGuard {
        let kubeconfig = if extra.contains(&"--simulate") {
            self.kubeconfig()
        } else {
            self.agent_kubeconfig()
        };
        self.spawn_agent_via(&kubeconfig, name, resources, extra)
    }

    /// An agent reaching the API through `kubeconfig` (a balancer's, say).
    pub fn spawn_agent_via(
        &self,
        kubeconfig: &Path,
        name: &str,
        resources: &str,
        extra: &[&str],
    ) -> ChildGuard {
        let child = Command::new(mosaic_bin())
            .args([
                "agent",
                "--name",
                name,
                "--resources",
                resources,
                // Tests leave nothing running behind them.
                "--kill-tasks-on-exit",
                "--listen",
                "127.0.0.1:0",
                "--kubeconfig",
            ])
            .arg(kubeconfig)
            .arg("--data-dir")
            .arg(self.dir.path().join("agents").join(name))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir.path().join(format!("agent-{name}.log"))))
            .spawn()
            .expect("spawning mosaic agent");
        ChildGuard(child)
    }
}

/// Waits for a Task to reach a phase that matches `done`; returns its status.
pub async fn wait_task(
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        if let Ok(t) = api.get(name).await {
            last = t.data["status"].clone();
            if done(&last) {
                return Ok(last);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("task {name} did not get there within {timeout:?}; last status: {last}")
}

/// The Helm 4 binary: `$HELM`, else `.tools/bin/helm` (installed by `tests/run`),
/// else `helm` on PATH.
pub fn helm_bin() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM") {
        return h.into();
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/helm");
    if local.exists() {
        return local;
    }
    "helm".into()
}

/// The repository's root (where `charts/` and `crds/` are).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, the source checks read, with whether it is
/// a unit test's own file (`tests.rs`, `*_tests.rs`).
pub fn rust_sources(dir: &Path) -> Vec<(PathBuf, bool)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, bool)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let name = p.file_name().unwrap().to_string_lossy();
                let test = name == "tests.rs" || name.ends_with("_tests.rs");
                out.push((p, test));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// `helm template` of charts/mosaic into namespace mosaic-system with extra flags
/// (paths relative to the repository's root):
/// every rendered object, as JSON.
pub fn render_chart(extra: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(helm_bin())
        .current_dir(repo_root())
        .args(["template", "mosaic"])
        .arg(repo_root().join("charts/mosaic"))
        .args(["--namespace", "mosaic-system"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm template {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("helm prints UTF-8");
    serde_saphyr::from_multiple::<serde_json::Value>(&text)
        .expect("helm template prints YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// `mosaic up` on a free port in a temp dir, ready to use.
pub struct Up {
    /// Its temp dir (the data dir is `data/` in it).
    pub dir: tempfile::TempDir,
    _child: ChildGuard,
}

impl Up {
    /// Starts it (an agent with 2 CPUs and 4 GiB) and waits for the agent to be Ready.
    pub async fn start() -> Up {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(mosaic_bin())
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--agent-resources",
                "cpus=2,memory=4Gi",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("up.log")).unwrap())
            .spawn()
            .unwrap();
        let up = Up {
            dir,
            _child: ChildGuard(child),
        };
        let kc = up.kubeconfig();
        wait_for(
            Duration::from_secs(60),
            "mosaic up to have a Ready agent",
            || async {
                let Ok(client) = crate::support::client_from(&kc).await else {
                    return false;
                };
                let agents: kube::Api<kube::api::DynamicObject> =
                    kube::Api::all_with(client, &crate::support::mosaic("Agent", "agents"));
                agents.list(&Default::default()).await.is_ok_and(|l| {
                    l.items.iter().any(|a| {
                        a.data["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                    })
                })
            },
        )
        .await
        .unwrap();
        up
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data/kubeconfig")
    }

    /// Runs `mosaic` with the admin kubeconfig.
    pub fn mosaic(&self, args: &[&str]) -> Output {
        Command::new(mosaic_bin())
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    }

    /// A kube-rs client with the admin identity.
    pub async fn client(&self) -> kube::Client {
        crate::support::client_from(&self.kubeconfig())
            .await
            .unwrap()
    }
}
