//! `mosaic apply -f FILE|DIR|- [--wait]`: server-side apply (field manager
//! `mosaic`, `fieldValidation=Strict`) of the objects in YAML or JSON
//! manifests, as `kubectl apply --server-side` does: an unknown field is an
//! error naming it with its file and line, and a field this manager applied
//! before and no longer applies is removed. Then, with `--wait`, shows their
//! progress until each is Ready (a Task: running, and healthy with a health
//! check, or finished) or one fails for good (Stalled).
//!
//! Objects of kinds that report no Ready condition count as done once applied.

use crate::cluster;
use crate::manifest::{Doc, read_all};
use anyhow::{Context, bail};
use clap::Args;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiResource, Scope};
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags of `mosaic apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them (*.yaml, *.yml, *.json), or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Wait until every object is Ready (or one fails for good).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 90s, 5m.
    #[arg(long, default_value = "5m")]
    pub timeout: String,
    /// The namespace for objects that name none.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Take over fields another field manager owns (as kubectl's --force-conflicts).
    #[arg(long)]
    pub force_conflicts: bool,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// The field manager of `mosaic apply`, as kubectl's is `kubectl`.
pub const FIELD_MANAGER: &str = "mosaic";

/// Applies the manifests; with --wait, waits. Returns the exit code.
pub fn run(args: ApplyArgs) -> anyhow::Result<i32> {
    let timeout: Duration = crate::cluster::parse_duration(&args.timeout)
        .ok()
        .with_context(|| {
            format!(
                "--timeout {:?} is not a duration like 90s or 5m",
                args.timeout
            )
        })?;
    let docs = read_all(&args.files)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (client, _) = cluster::user_client(args.kubeconfig.as_deref()).await?;
        let mut applied = Vec::new();
        let mut kinds = HashMap::new();
        for d in &docs {
            applied.push(apply(&client, &mut kinds, d, &args).await?);
        }
        if !args.wait {
            return Ok(0);
        }
        wait(&applied, timeout).await
    })
}

/// What was applied, to wait on.
struct Applied {
    api: Api<DynamicObject>,
    name: String,
    label: String,
}

async fn resource(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> anyhow::Result<(ApiResource, Scope)> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((ar, caps)) => Ok((ar, caps.scope)),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            bail!(
                "the server has no kind {kind:?} in {api_version} (is the apiVersion right? `kubectl api-resources` lists what it has)"
            )
        }
        Err(kube::Error::Discovery(_)) => {
            bail!(
                "the server has no kind {kind:?} in {api_version} (`kubectl api-resources` lists what it has)"
            )
        }
        Err(e) => Err(e).context(format!("looking up kind {kind} in {api_version}")),
    }
}

/// Kinds looked up so far, by (apiVersion, kind).
type Kinds = HashMap<(String, String), (ApiResource, Scope)>;

async fn apply(
    client: &Client,
    kinds: &mut Kinds,
    d: &Doc,
    args: &ApplyArgs,
) -> anyhow::Result<Applied> {
    let default_ns = args.namespace.as_str();
    let o = &d.object;
    let (Some(api_version), Some(kind)) = (o["apiVersion"].as_str(), o["kind"].as_str()) else {
        bail!("{}: an object needs apiVersion and kind", d.source);
    };
    let Some(name) = o["metadata"]["name"].as_str() else {
        bail!("{}: the {kind} has no metadata.name", d.source);
    };
    let key = (api_version.to_string(), kind.to_string());
    let (ar, scope) = match kinds.get(&key) {
        Some(found) => found.clone(),
        None => {
            let found = resource(client, api_version, kind)
                .await
                .with_context(|| d.source.clone())?;
            kinds.insert(key, found.clone());
            found
        }
    };
    let api: Api<DynamicObject> = match scope {
        Scope::Namespaced => {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or(default_ns);
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        Scope::Cluster => Api::all_with(client.clone(), &ar),
    };
    // As kubectl names objects: the lowercase kind, then the group.
    let label = format!(
        "{}{}/{name}",
        ar.kind.to_lowercase(),
        if ar.group.is_empty() {
            String::new()
        } else {
            format!(".{}", ar.group)
        }
    );
    let explain = |e: kube::Error| match e {
        kube::Error::Api(s) => explain_status(d, &label, &s.message),
        e => anyhow::anyhow!("{}: {label}: {e}", d.source),
    };
    let before = api.get_opt(name).await.map_err(explain)?;
    let mut params = PatchParams::apply(FIELD_MANAGER).validation_strict();
    if args.force_conflicts {
        params = params.force();
    }
    let after = api
        .patch(name, &params, &Patch::Apply(o))
        .await
        .map_err(explain)?;
    match before {
        None => println!("{label} created"),
        Some(b) if b.resource_version() == after.resource_version() => {
            println!("{label} unchanged")
        }
        Some(_) => println!("{label} configured"),
    }
    Ok(Applied {
        api,
        name: name.to_string(),
        label,
    })
}

/// The server's refusal, with the file and line of each unknown field it names.
fn explain_status(d: &Doc, label: &str, message: &str) -> anyhow::Error {
    let mut lines = Vec::new();
    for part in message.split("unknown field \"").skip(1) {
        if let Some(field) = part.split('"').next() {
            match d.locate(field) {
                Some(at) => lines.push(format!("  {at}: unknown field {field:?}")),
                None => lines.push(format!("  {}: unknown field {field:?}", d.source)),
            }
        }
    }
    if lines.is_empty() {
        anyhow::anyhow!("{}: {label}: {message}", d.source)
    } else {
        anyhow::anyhow!(
            "{}: {label}: the server does not know these fields (a typo?):\n{}",
            d.source,
            lines.join("\n")
        )
    }
}

/// Where an object stands: done, failed (with why), or still going (with a summary).
enum Progress {
    Ready(String),
    Failed(String),
    Waiting(String),
}

fn progress(o: &DynamicObject) -> Progress {
    let st = &o.data["status"];
    let cond = |t: &str| {
        st["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
    };
    let phase = st["phase"].as_str().unwrap_or("");
    let current = st["observedGeneration"].as_i64().is_none()
        || st["observedGeneration"].as_i64() >= o.metadata.generation;
    let ready = cond("Ready");
    // What it is doing: its phase (and reason), else its Ready condition's reason.
    let summary = match (phase, st["reason"].as_str()) {
        ("", _) => ready
            .as_ref()
            .and_then(|c| c["reason"].as_str().map(str::to_string))
            .unwrap_or_else(|| "no status yet".to_string()),
        (p, Some(r)) => format!("{p} ({r})"),
        (p, None) => p.to_string(),
    };
    if let Some(c) = cond("Stalled")
        && c["status"] == "True"
        && current
    {
        return Progress::Failed(format!(
            "{summary}: {}",
            c["message"].as_str().unwrap_or_default()
        ));
    }
    match ready {
        Some(c) if c["status"] == "True" && current => Progress::Ready(summary),
        Some(_) => Progress::Waiting(summary),
        // A Task always gets a Ready condition; other kinds may report none.
        None if o.types.as_ref().is_some_and(|t| t.kind == "Task") => Progress::Waiting(summary),
        None => Progress::Ready("applied".into()),
    }
}

async fn wait(applied: &[Applied], timeout: Duration) -> anyhow::Result<i32> {
    let deadline = Instant::now() + timeout;
    let mut shown: HashMap<String, String> = HashMap::new();
    loop {
        let mut waiting = Vec::new();
        for a in applied {
            let o = a
                .api
                .get(&a.name)
                .await
                .with_context(|| format!("reading {}", a.label))?;
            let (line, state) = match progress(&o) {
                Progress::Ready(s) => (format!("ready: {s}"), 0),
                Progress::Failed(s) => (format!("failed: {s}"), 2),
                Progress::Waiting(s) => (s, 1),
            };
            if shown.get(&a.label) != Some(&line) {
                println!("{}: {line}", a.label);
                shown.insert(a.label.clone(), line.clone());
            }
            match state {
                2 => {
                    eprintln!("error: {} failed for good: {line}", a.label);
                    return Ok(1);
                }
                1 => waiting.push(a.label.clone()),
                _ => {}
            }
        }
        if waiting.is_empty() {
            println!("all {} object(s) ready", applied.len());
            return Ok(0);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "error: timed out after {timeout:?} waiting for: {}",
                waiting.join(", ")
            );
            return Ok(1);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
