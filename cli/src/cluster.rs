//! Pieces `mosaic up`, `mosaic agent` and `mosaic controllers` share: clients
//! from kubeconfigs, agent names, and the local agents of `mosaic up`.

use anyhow::Context;
use std::path::Path;

/// The client configuration of a kubeconfig file (`KUBECONFIG` when `path` is `None`, as kubectl does).
pub async fn config(path: Option<&Path>) -> anyhow::Result<kube::Config> {
    match path {
        Some(p) if !p.exists() => anyhow::bail!(
            "there is no kubeconfig at {} (pass --kubeconfig FILE or set KUBECONFIG; `mosaic up` writes DATA_DIR/kubeconfig)",
            p.display()
        ),
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading the kubeconfig {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("using the kubeconfig {}", p.display()))
        }
        None => kube::Config::infer()
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no kubeconfig: pass --kubeconfig FILE or set KUBECONFIG (`mosaic up` writes DATA_DIR/kubeconfig)"
                )
            }),
    }
}

/// A duration as Kubernetes flags write it (`1h`, `30m`, `1h30m`, `90s`, `500ms`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("not a duration like 1h, 30m or 90s: {e}"))?;
    std::time::Duration::try_from(d).map_err(|_| "a duration must not be negative".to_string())
}

/// A client for one of Mosaic's components (`mosaic-agent`, `mosaic-controllers`):
/// its User-Agent (`mosaic-agent/0.1.0`) names it, as kubectl's does, so the API
/// server records it as the field manager of the component's writes.
pub async fn component_client(
    path: Option<&Path>,
    component: &str,
) -> anyhow::Result<kube::Client> {
    let cfg = component_config(path, component).await?;
    kube::Client::try_from(cfg).context("building the API client")
}

/// The configuration of [`component_client`].
pub async fn component_config(
    path: Option<&Path>,
    component: &str,
) -> anyhow::Result<kube::Config> {
    let mut cfg = config(path).await?;
    let ua = format!("{component}/{}", env!("CARGO_PKG_VERSION"));
    cfg.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&ua).context("a User-Agent header")?,
    ));
    Ok(cfg)
}

/// A client from a kubeconfig file (`KUBECONFIG` when `path` is `None`, as kubectl does).
pub async fn client(path: Option<&Path>) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(config(path).await?).context("building the API client")
}

/// A client for a user's command: like [`client`], and the server is known to
/// answer, or the error says plainly that it does not and where it was looked for.
pub async fn user_client(path: Option<&Path>) -> anyhow::Result<(kube::Client, kube::Config)> {
    let cfg = config(path).await?;
    let url = cfg.cluster_url.clone();
    let client = kube::Client::try_from(cfg.clone()).context("building the API client")?;
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.apiserver_version(),
    )
    .await
    {
        Ok(Ok(_)) => Ok((client, cfg)),
        Ok(Err(kube::Error::Api(s))) if s.code == 401 => anyhow::bail!(
            "the API server at {url} does not accept these credentials (401): is the kubeconfig for this cluster?"
        ),
        Ok(Err(e)) => anyhow::bail!(
            "cannot reach the API server at {url} ({e}): is Mosaic running there? (`mosaic up` or `mosaic server`)"
        ),
        Err(_) => anyhow::bail!("the API server at {url} did not answer within 10 s"),
    }
}

/// Starts the API server, its /metrics carrying the controllers'.
pub async fn start_server(
    mut cfg: mosaic_apiserver::ServerConfig,
) -> anyhow::Result<mosaic_apiserver::RunningServer> {
    cfg.extra_metrics = Some(mosaic_controllers::metrics::register);
    let (listen, data_dir) = (cfg.listen, cfg.data_dir.clone());
    mosaic_apiserver::start(cfg).await.with_context(|| {
        format!(
            "starting the API server on {listen} with data dir {}",
            data_dir.display()
        )
    })
}

/// This process as a leader election candidate: `<hostname>-<pid>`.
pub fn process_identity() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

/// This machine's name, as an Agent name (a lowercase DNS label).
pub fn hostname() -> String {
    let raw =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    let name: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Parses `cpus=4,memory=8Gi` into (millicores, bytes); what is not given
/// is what the machine has. Ports are left to [`parse_ports`].
pub fn parse_resources(s: &str) -> anyhow::Result<(u64, u64)> {
    let (mut cpus, mut memory) = (None, None);
    for part in split_resources(s) {
        if part.starts_with("ports=") {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("--resources: {part:?} is not key=value"))?;
        let q = Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            v.to_string(),
        ));
        let rq = match k {
            "cpus" => mosaic_crds::ResourceQuantities {
                cpus: q,
                ..Default::default()
            },
            "memory" => mosaic_crds::ResourceQuantities {
                memory: q,
                ..Default::default()
            },
            other => anyhow::bail!("--resources: unknown resource {other:?} (cpus, memory, ports)"),
        };
        cpus = cpus.or(rq.cpus_milli()?);
        memory = memory.or(rq.memory_bytes()?);
    }
    let (dc, dm) = mosaic_agent::detect_resources();
    Ok((cpus.unwrap_or(dc), memory.unwrap_or(dm)))
}

/// The host ports `--resources` offers (`ports=[31000-32000,40000-40010]`),
/// or Mesos agents' default, `[31000-32000]`.
pub fn parse_ports(s: &str) -> anyhow::Result<mosaic_crds::ports::PortRanges> {
    match split_resources(s).find_map(|p| p.strip_prefix("ports=")) {
        Some(p) => p.parse().with_context(|| "--resources: ports".to_string()),
        None => Ok(mosaic_crds::ports::PortRanges::mesos_default()),
    }
}

/// `--resources`'s `key=value` parts: split at commas outside brackets (a
/// port list has its own).
fn split_resources(s: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0i32;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// Parses `k=v,k2=v2`.
pub fn parse_labels(s: &str) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--labels: {p:?} is not key=value"))
        })
        .collect()
}
