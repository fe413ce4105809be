//! The API server benchmark: create throughput and latency through the full
//! HTTPS API path with 1 and 64 concurrent clients, and watch fan-out to 100
//! watchers, beside etcd (one member, same disk) doing the equivalent puts
//! through its HTTP gateway in the same run; and, when built with `--features
//! etcd`, the same creates through a second server whose store is a 3-member
//! etcd cluster (the HA layout of docs/ha.md) on this machine.
//!
//! `cargo run --release -p mosaic-bench --bin apiserver-bench -- --help`

mod idle;

use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The allocator the `mosaic` binary ships with, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Objects created per concurrency level.
    #[arg(long, default_value_t = 5000)]
    creates: usize,
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,64")]
    concurrency: String,
    /// Watchers for the fan-out figure.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Objects written while the watchers watch.
    #[arg(long, default_value_t = 1000)]
    watched_writes: usize,
    /// Watchers that each select the Tasks of one framework (as each agent
    /// selects the Tasks bound to it), for the selective fan-out figure (0: skip it).
    #[arg(long, default_value_t = 1000)]
    selective_watchers: usize,
    /// Tasks created for each selective watcher's framework.
    #[arg(long, default_value_t = 5)]
    selective_writes: usize,
    /// The etcd binary (skipped when absent).
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd: PathBuf,
    /// Where both stores keep their data (the same disk for both).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Members of the etcd cluster behind the second server (0: no such server;
    /// needs a build with `--features etcd`).
    #[arg(long, default_value_t = 3)]
    etcd_members: usize,
    /// Idle TLS connections held open while the highest concurrency level runs again.
    #[arg(long, default_value_t = 2000)]
    idle_connections: usize,
}

/// A Task of about the size users write.
fn task(name: &str) -> serde_json::Value {
    json!({"apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name, "labels": {"app": "bench", "team": "data"}},
        "spec": {"command": "python3 -c 'print(42)'", "resources": {"cpus": "500m", "memory": "256Mi"},
                 "env": [{"name": "MODE", "value": "bench"}], "restartPolicy": "OnFailure"}})
}

struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn figures(mut lat: Vec<Duration>, wall: Duration) -> Figures {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    Figures {
        per_second: lat.len() as f64 / wall.as_secs_f64(),
        p50_ms: q(0.50),
        p99_ms: q(0.99),
    }
}

/// Runs `n` operations over `c` concurrent workers; returns latencies and wall time.
async fn drive<F, Fut>(n: usize, c: usize, op: F) -> Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c {
        let (op, next) = (op.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await??);
    }
    Ok((all, start.elapsed()))
}

/// Starts the API server on a runtime and threads of its own, as a separate
/// `mosaic server` process would have; returns its kubeconfig and a stop switch.
fn start_server(
    data_dir: PathBuf,
    etcd: Option<mosaic_apiserver::store::EtcdConfig>,
) -> Result<(PathBuf, tokio::sync::oneshot::Sender<()>)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("a runtime for the server");
        rt.block_on(async move {
            let mut cfg = mosaic_apiserver::ServerConfig::new(
                data_dir,
                "127.0.0.1:0".parse().expect("a valid address"),
            );
            cfg.etcd = etcd;
            let started = mosaic_apiserver::start(cfg).await;
            match started {
                Ok(server) => {
                    let _ = ready_tx.send(Ok(server.admin_kubeconfig.clone()));
                    let _ = stop_rx.await;
                    server.stop().await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!(e)));
                }
            }
        });
    });
    let kubeconfig = ready_rx.recv().context("the server thread died")??;
    Ok((kubeconfig, stop_tx))
}

async fn mosaic_client(kubeconfig: &std::path::Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

async fn mosaic_create(client: &kube::Client, ns: &str, name: &str) -> Result<()> {
    post_task(client, ns, task(name)).await
}

/// Creates `task` in `ns` through the API.
async fn post_task(client: &kube::Client, ns: &str, task: serde_json::Value) -> Result<()> {
    let body = serde_json::to_vec(&task)?;
    let req = http::Request::post(format!("/apis/mosaic.dev/v1alpha1/namespaces/{ns}/tasks"))
        .header("content-type", "application/json")
        .body(body)?;
    client.request_text(req).await.context("create")?;
    Ok(())
}

/// Creates the namespace `ns`.
async fn namespace(client: &kube::Client, ns: &str) -> Result<()> {
    let req = http::Request::post("/api/v1/namespaces")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?)?;
    client.request_text(req).await?;
    Ok(())
}

/// Selective fan-out: `w` watchers each select one framework's Tasks with a
/// field selector (as each agent selects the Tasks bound to it), and `per`
/// Tasks of each framework are created; prints the creates' rate while so
/// many watch, and the events delivered. Each change should cost the server
/// one look at the field, not one per watcher.
async fn selective_fan_out(client: &kube::Client, w: usize, per: usize) -> Result<()> {
    let selectors: Vec<String> = (0..w).map(|i| format!("spec.framework=fw-{i}")).collect();
    let (delivered, wall, secs) =
        watched_creates(client, "selective", &selectors, per, w * per, move |i| {
            let mut t = task(&format!("s{i}"));
            t["spec"]["framework"] = json!(format!("fw-{}", i % w));
            t
        })
        .await?;
    println!(
        "{:<26} {:>12.0} creates/s ({delivered} of {} events to {w} selective watchers in {secs:.2} s)",
        "mosaic selective watches",
        (w * per) as f64 / wall.as_secs_f64(),
        w * per
    );
    Ok(())
}

/// Opens a watch of the Tasks in a new namespace `ns` for each field selector
/// of `selectors` ("" selects all), each reading until it has seen `each`
/// events, then creates the `n` Tasks `make` builds from 64 clients. Returns
/// the events the watches saw, the creates' wall time, and the seconds from the
/// first create to the last event.
async fn watched_creates(
    client: &kube::Client,
    ns: &str,
    selectors: &[String],
    each: usize,
    n: usize,
    make: impl Fn(usize) -> serde_json::Value + Send + Sync + 'static,
) -> Result<(usize, Duration, f64)> {
    namespace(client, ns).await?;
    let mut watches = Vec::new();
    for sel in selectors {
        let req = http::Request::get(format!(
            "/apis/mosaic.dev/v1alpha1/namespaces/{ns}/tasks?watch=1&resourceVersion=1&fieldSelector={}",
            sel.replace('=', "%3D")
        ))
        .body(Vec::new())?;
        let resp = client.send(req.map(kube::client::Body::from)).await?;
        watches.push(tokio::spawn(count_lines(
            resp.into_body(),
            each,
            b"\"type\":",
        )));
    }
    let start = Instant::now();
    let (cl, ns2) = (client.clone(), ns.to_string());
    let (_, wall) = drive(n, 64, move |i| {
        let (cl, ns2, t) = (cl.clone(), ns2.clone(), make(i));
        async move { post_task(&cl, &ns2, t).await }
    })
    .await?;
    let mut delivered = 0;
    for h in watches {
        delivered += h.await?;
    }
    Ok((delivered, wall, start.elapsed().as_secs_f64()))
}

/// Creates `n` Tasks in a new namespace `ns` through `c` concurrent clients
/// and prints the rate and latency on a line headed `label`.
async fn creates(client: &kube::Client, ns: &str, c: usize, n: usize, label: &str) -> Result<()> {
    namespace(client, ns).await?;
    // Warm up first: open the pool's connections (a TLS handshake each)
    // outside the measurement, which is of the steady state, as the
    // Kubernetes API latency SLO is.
    let (cl, n2) = (client.clone(), ns.to_string());
    drive(c * 8, c, move |i| {
        let (cl, n2) = (cl.clone(), n2.clone());
        async move { mosaic_create(&cl, &n2, &format!("warm{i}")).await }
    })
    .await?;
    let (cl, n2) = (client.clone(), ns.to_string());
    let (lat, wall) = drive(n, c, move |i| {
        let (cl, n2) = (cl.clone(), n2.clone());
        async move { mosaic_create(&cl, &n2, &format!("t{i}")).await }
    })
    .await?;
    let f = figures(lat, wall);
    println!(
        "{label:<26} {:>12.0} {:>9.2} {:>9.2}",
        f.per_second, f.p50_ms, f.p99_ms
    );
    Ok(())
}

type Http = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

struct Etcd {
    child: std::process::Child,
    url: String,
    http: Http,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts an etcd cluster of `n` members on loopback ports, their data in
/// `dir/m<i>`; returns the members (the first carries the HTTP client).
async fn start_etcd_cluster(bin: &PathBuf, dir: &std::path::Path, n: usize) -> Result<Vec<Etcd>> {
    let ports: Vec<(u16, u16)> = (0..n)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_>>()?;
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let url = format!("http://127.0.0.1:{client}");
        let child = std::process::Command::new(bin)
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(dir.join(format!("m{i}")))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args(["--initial-cluster", &cluster])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting etcd")?;
        let http: Http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build_http();
        members.push(Etcd { child, url, http });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if etcd_put(&members[0], "/probe", b"x").await.is_ok() {
            return Ok(members);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("etcd did not become ready within 20 s")
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn etcd_post(
    etcd: &Etcd,
    path: &str,
    body: serde_json::Value,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let req = http::Request::post(format!("{}{path}", etcd.url))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
    let resp = etcd.http.request(req).await?;
    if !resp.status().is_success() {
        bail!("etcd answered {}", resp.status());
    }
    Ok(resp)
}

async fn etcd_put(etcd: &Etcd, key: &str, value: &[u8]) -> Result<()> {
    let resp = etcd_post(
        etcd,
        "/v3/kv/put",
        json!({"key": b64(key.as_bytes()), "value": b64(value)}),
    )
    .await?;
    resp.into_body().collect().await?;
    Ok(())
}

/// Counts newline-delimited events on a streaming response until `want` arrived.
/// Gives up after 60 s, so a lost event shows as a short count, not a hang.
async fn count_lines<B>(body: B, want: usize, needle: &'static [u8]) -> usize
where
    B: http_body::Body<Data = Bytes> + Send + Unpin,
{
    let mut stream = body.into_data_stream();
    let mut seen = 0;
    // The end of the previous chunk, so a needle split across chunks is counted once.
    let mut carry: Vec<u8> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
        carry.extend_from_slice(&chunk);
        seen += carry.windows(needle.len()).filter(|w| *w == needle).count();
        let keep = carry.len().saturating_sub(needle.len() - 1);
        carry.drain(..keep);
        if seen >= want {
            break;
        }
    }
    seen
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let levels: Vec<usize> = args
        .concurrency
        .split(',')
        .map(|c| c.trim().parse())
        .collect::<Result<_, _>>()?;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    let tmp = tempfile::tempdir_in(parent)?;
    let (kubeconfig, stop_server) = start_server(tmp.path().join("mosaic"), None)?;
    let client = mosaic_client(&kubeconfig).await?;
    let etcd = if args.etcd.exists() {
        let mut one = start_etcd_cluster(&args.etcd, &tmp.path().join("etcd"), 1).await?;
        Some(Arc::new(one.remove(0)))
    } else {
        eprintln!(
            "etcd not found at {}: its column is skipped",
            args.etcd.display()
        );
        None
    };
    // The second server, on an etcd cluster of its own (the HA layout).
    let mut on_etcd = None;
    if args.etcd_members > 0 && args.etcd.exists() && cfg!(feature = "etcd") {
        let members = start_etcd_cluster(
            &args.etcd,
            &tmp.path().join("etcd-cluster"),
            args.etcd_members,
        )
        .await?;
        let cfg = mosaic_apiserver::store::EtcdConfig {
            endpoints: members.iter().map(|m| m.url.clone()).collect(),
            prefix: "/mosaic".into(),
            ..Default::default()
        };
        let (kc, stop) = start_server(tmp.path().join("mosaic-etcd"), Some(cfg))?;
        on_etcd = Some((mosaic_client(&kc).await?, stop, members));
    } else if args.etcd_members > 0 {
        eprintln!("the server on an etcd cluster is skipped (build with --features etcd)");
    }
    let value = serde_json::to_vec(&task("a-task-of-typical-size"))?;
    println!(
        "creates: {} per level; object size {} bytes; machine: {} cores, {}",
        args.creates,
        value.len(),
        std::thread::available_parallelism()?.get(),
        cpu_model()
    );
    println!(
        "{:<26} {:>12} {:>9} {:>9}",
        "create path", "objects/s", "p50 ms", "p99 ms"
    );
    for &c in &levels {
        let ns = format!("c{c}");
        let label = format!("mosaic HTTPS, {c} clients");
        creates(&client, &ns, c, args.creates, &label).await?;
        if let Some((client, _, members)) = &on_etcd {
            let label = format!("mosaic on {}-etcd, {c} cl.", members.len());
            creates(client, &ns, c, args.creates, &label).await?;
        }
        if let Some(etcd) = &etcd {
            let (e2, v) = (etcd.clone(), Arc::new(value.clone()));
            drive(c * 8, c, move |i| {
                let (etcd, v) = (e2.clone(), v.clone());
                async move { etcd_put(&etcd, &format!("/registry/c{c}/warm{i}"), &v).await }
            })
            .await?;
            let (etcd, v) = (etcd.clone(), Arc::new(value.clone()));
            let (lat, wall) = drive(args.creates, c, move |i| {
                let (etcd, v) = (etcd.clone(), v.clone());
                async move { etcd_put(&etcd, &format!("/registry/c{c}/t{i}"), &v).await }
            })
            .await?;
            let f = figures(lat, wall);
            println!(
                "{:<26} {:>12.0} {:>9.2} {:>9.2}",
                format!("etcd 3.4 put, {c} clients"),
                f.per_second,
                f.p50_ms,
                f.p99_ms
            );
        }
    }
    // The highest level again, with idle connections held open meanwhile
    // (a listener's cap and idle timeout must not cost the busy clients).
    if args.idle_connections > 0
        && let Some(&c) = levels.iter().max()
    {
        let held = idle::hold(&kubeconfig, args.idle_connections).await?;
        let label = format!("+{} idle, {c} clients", held.len());
        creates(&client, "idle", c, args.creates, &label).await?;
        drop(held);
    }

    // Watch fan-out: W watchers each receive every one of M creates.
    let (w, m) = (args.watchers, args.watched_writes);
    let everything = vec![String::new(); w];
    let (delivered, _, secs) = watched_creates(&client, "fanout", &everything, m, m, |i| {
        task(&format!("f{i}"))
    })
    .await?;
    println!(
        "{:<26} {:>12.0} events/s ({delivered} events to {w} watchers in {secs:.2} s)",
        "mosaic watch fan-out",
        delivered as f64 / secs
    );
    if let Some(etcd) = &etcd {
        let prefix = b"/fanout/";
        let mut etcd_watches = Vec::new();
        for _ in 0..w {
            let resp = etcd_post(
                etcd,
                "/v3/watch",
                json!({"create_request": {"key": b64(prefix), "range_end": b64(b"/fanout0")}}),
            )
            .await?;
            // etcd may put several events in one watch response: count the events' "kv"s.
            etcd_watches.push(tokio::spawn(count_lines(resp.into_body(), m, b"\"kv\":")));
        }
        let (etcd_s, v) = (etcd.clone(), Arc::new(value.clone()));
        let start = Instant::now();
        drive(m, 64, move |i| {
            let (etcd_s, v) = (etcd_s.clone(), v.clone());
            async move { etcd_put(&etcd_s, &format!("/fanout/f{i}"), &v).await }
        })
        .await?;
        let mut delivered = 0;
        for h in etcd_watches {
            delivered += h.await?;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:<26} {:>12.0} events/s ({delivered} events to {w} watchers in {secs:.2} s)",
            "etcd 3.4 watch fan-out",
            delivered as f64 / secs
        );
    }
    if args.selective_watchers > 0 {
        let per = args.selective_writes.max(1);
        selective_fan_out(&client, args.selective_watchers, per).await?;
    }
    drop(etcd);
    if let Some((_, stop, members)) = on_etcd {
        let _ = stop.send(());
        drop(members);
    }
    let _ = stop_server.send(());
    Ok(())
}

/// The CPU's model from /proc/cpuinfo: the same build measures very
/// differently on different processors, so the figures carry it.
fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    };
    format!(
        "{} (family {}, model {})",
        field("model name").as_deref().unwrap_or("unknown CPU"),
        field("cpu family").as_deref().unwrap_or("?"),
        field("model").as_deref().unwrap_or("?")
    )
}
